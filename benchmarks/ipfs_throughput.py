"""Time adding and reading a 50 MiB file on a local Kubo node.

The script starts its own Kubo node in a temporary folder. Each run adds a
new file of seeded random bytes through :class:`KuboClient` and reads it
back. Then it does the same with the ``ipfs`` command line, sent to the same
daemon with the same add parameters. Blocks and pins are removed between
the adds, so every add stores the file anew. The medians and best times of
the runs replace the section between the ``ipfs`` markers in
docs/benchmarks.md; other sections stay.

Run: .venv/bin/python benchmarks/ipfs_throughput.py
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import statistics
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from merchant_app.ipfs import KuboClient
from merchant_app.services.kubo import KuboNode
from merchant_app.services.kubo_config import generate_swarm_key
from merchant_app.services.tools import PROJECT_ROOT, find_tool

logger = logging.getLogger("benchmarks.ipfs_throughput")

BENCHMARKS_MD = PROJECT_ROOT / "docs" / "benchmarks.md"
START_MARKER = "<!-- ipfs:start -->"
END_MARKER = "<!-- ipfs:end -->"
TARGET_SECONDS = 2.0
MEBIBYTE = 1024 * 1024
CLI_ADD_OPTIONS = (
    "--cid-version=1",
    "--raw-leaves",
    "--hash=sha2-256",
    "--chunker=size-262144",
)


@dataclass
class Timings:
    """Durations in seconds of one operation over all runs."""

    operation: str
    tool: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)


class Cli:
    """The ``ipfs`` command line, sent to the benchmark node's daemon."""

    def __init__(self, binary: Path, repo_path: Path) -> None:
        self.binary = binary
        self.environment = {**os.environ, "IPFS_PATH": str(repo_path)}

    def run(self, *arguments: str, capture: bool = True) -> str:
        result = subprocess.run(
            [str(self.binary), *arguments],
            env=self.environment,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=True,
            timeout=600,
        )
        return result.stdout.decode().strip() if capture else ""

    def remove_all_content(self, cid: str) -> None:
        """Unpin ``cid`` and collect garbage, so the next add stores anew."""
        self.run("pin", "rm", cid)
        self.run("repo", "gc", "--quiet")


def run_benchmark(size: int, runs: int, work_dir: Path) -> list[Timings]:
    binary = find_tool("ipfs")
    swarm_key = generate_swarm_key()
    node = KuboNode(work_dir / "kubo", swarm_key=swarm_key)
    peer = KuboNode(work_dir / "kubo-peer", swarm_key=swarm_key)
    timings = RunTimings()

    with node, peer, KuboClient(node.api_url, timeout=600) as client:
        cli = Cli(binary, node.repo_path)
        with KuboClient(peer.api_url, timeout=600) as peer_client:
            peer_client.swarm_connect(node.peer_multiaddr)
            for run in range(1, runs + 1):
                path = work_dir / f"run-{run}.bin"
                path.write_bytes(random.Random(run).randbytes(size))
                measure_run(client, peer_client, cli, path, timings)
                path.unlink()
                logger.info(
                    "run %d: add %.2f s (cli %.2f s), read %.2f s (cli %.2f s, "
                    "peer %.2f s)",
                    run,
                    timings.client_add.seconds[-1],
                    timings.cli_add.seconds[-1],
                    timings.client_read.seconds[-1],
                    timings.cli_read.seconds[-1],
                    timings.peer_read.seconds[-1],
                )
    return timings.all()


@dataclass
class RunTimings:
    client_add: Timings = field(
        default_factory=lambda: Timings("add and pin", "KuboClient.add_file")
    )
    cli_add: Timings = field(default_factory=lambda: Timings("add and pin", "ipfs add"))
    client_read: Timings = field(
        default_factory=lambda: Timings("read back", "KuboClient.cat")
    )
    cli_read: Timings = field(default_factory=lambda: Timings("read back", "ipfs cat"))
    peer_read: Timings = field(
        default_factory=lambda: Timings("read from a connected node", "KuboClient.cat")
    )

    def all(self) -> list[Timings]:
        return [
            self.client_add,
            self.cli_add,
            self.client_read,
            self.cli_read,
            self.peer_read,
        ]


def measure_run(
    client: KuboClient,
    peer_client: KuboClient,
    cli: Cli,
    path: Path,
    timings: RunTimings,
) -> None:
    """Add and read ``path`` through the client, then through the command line.

    The connected peer fetches the client's copy before it is removed.
    """
    data = path.read_bytes()

    started = time.perf_counter()
    cid = client.add_file(path)
    timings.client_add.seconds.append(time.perf_counter() - started)

    started = time.perf_counter()
    fetched = client.cat(cid, max_size=len(data))
    timings.client_read.seconds.append(time.perf_counter() - started)
    if fetched != data:
        raise RuntimeError(f"bytes read back from {cid} differ from {path}")

    started = time.perf_counter()
    fetched = peer_client.cat(cid, max_size=len(data))
    timings.peer_read.seconds.append(time.perf_counter() - started)
    if fetched != data:
        raise RuntimeError(f"bytes fetched by the peer for {cid} differ from {path}")
    cli.remove_all_content(cid)

    started = time.perf_counter()
    cli_cid = cli.run("add", *CLI_ADD_OPTIONS, "-Q", str(path))
    timings.cli_add.seconds.append(time.perf_counter() - started)
    if cli_cid != cid:
        raise RuntimeError(f"ipfs add gave {cli_cid} for {path}, the client {cid}")

    started = time.perf_counter()
    cli.run("cat", cid, capture=False)
    timings.cli_read.seconds.append(time.perf_counter() - started)
    cli.remove_all_content(cid)


def machine_description() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError as exc:
        logger.warning("cannot read /proc/cpuinfo: %s", exc)
    cpus = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    return f"{cpus} CPUs (nproc), {model}, {platform.system()} {platform.release()}"


def load_average() -> str:
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def kubo_version() -> str:
    result = subprocess.run(
        [str(find_tool("ipfs")), "version", "--number"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return result.stdout.decode().strip()


def render_section(results: list[Timings], *, size: int, runs: int) -> str:
    megabytes = size / MEBIBYTE
    summary = (
        f"A {megabytes:g} MiB file of seeded random bytes is added (and pinned) "
        "on a local Kubo node and read back from the same node, through "
        "`KuboClient` and through the `ipfs` command line sent to the same "
        "daemon, both with CIDv1, raw leaves, sha2-256 and 256 KiB chunks. A "
        "second node in the same private network, connected over loopback TCP, "
        "then fetches the file through its own client. Each run uses a new "
        "file, and pins and blocks are removed between adds. "
        f"{runs} runs. Target: under {TARGET_SECONDS:g} s for each client "
        "operation."
    )
    lines = [
        START_MARKER,
        "## IPFS add and read throughput",
        "",
        textwrap.fill(summary, width=72),
        "",
        "| operation | tool | median s | best s | MiB/s (median) | target met |",
        "|---|---|---:|---:|---:|---|",
    ]
    for timing in results:
        met = ""
        if timing.tool.startswith("KuboClient"):
            met = "yes" if timing.median < TARGET_SECONDS else "no"
        lines.append(
            f"| {timing.operation} | `{timing.tool}` | {timing.median:.2f} | "
            f"{timing.best:.2f} | {megabytes / timing.median:.0f} | {met} |"
        )
    note = (
        "Reads on the adding node come from its own blockstore. The fetch "
        "from a connected node includes the Bitswap transfer over the private "
        "network's encrypted TCP connection. The machine is shared with other "
        "jobs, which the load average below shows."
    )
    lines += [
        "",
        textwrap.fill(note, width=72),
        "",
        f"- Machine: {machine_description()}",
        f"- Load average (1, 5, 15 min) after the runs: {load_average()}",
        f"- Kubo: {kubo_version()}, flatfs blockstore in a temporary folder",
        "- Command: `.venv/bin/python benchmarks/ipfs_throughput.py`",
        END_MARKER,
    ]
    return "\n".join(lines)


def write_section(section: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the ``ipfs`` section of ``path``, or append it, and keep the rest."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if START_MARKER in text and END_MARKER in text:
        head, rest = text.split(START_MARKER, 1)
        _, tail = rest.split(END_MARKER, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size-mib", type=int, default=50, help="file size in MiB (default 50)"
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="runs per operation (default 5)"
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print the section instead of writing docs/benchmarks.md",
    )
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    size = arguments.size_mib * MEBIBYTE
    with tempfile.TemporaryDirectory(prefix="ipfs-benchmark-") as folder:
        results = run_benchmark(size, arguments.runs, Path(folder))
    section = render_section(results, size=size, runs=arguments.runs)
    if arguments.no_write:
        print(section)
    else:
        write_section(section)
        logger.info("wrote the ipfs section of %s", BENCHMARKS_MD)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
