"""Measure the gas of one update submission on a real anvil chain.

For each consortium size, every member submits one update in round 1 and
the gas used is averaged over the members (the last submission also closes
the round). The same is measured for ``NaiveRegistry``, a baseline that
stores the CID as a string in a struct. The result replaces the section
between the ``gas`` markers in docs/benchmarks.md; other sections stay.

Run: .venv/bin/python benchmarks/gas_submission.py
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from merchant_app.chain.artifact import load_artifact
from merchant_app.chain.cid import CODEC_RAW, Cid
from merchant_app.chain.client import ChainClient
from merchant_app.chain.consortium import ConsortiumContract
from merchant_app.services.anvil import DEFAULT_CHAIN_ID, AnvilChain
from merchant_app.services.tools import PROJECT_ROOT, find_tool

logger = logging.getLogger("benchmarks.gas_submission")

BENCHMARKS_MD = PROJECT_ROOT / "docs" / "benchmarks.md"
START_MARKER = "<!-- gas:start -->"
END_MARKER = "<!-- gas:end -->"
GAS_TARGET = 60_000
MEMBER_COUNTS = (3, 10)


@dataclass(frozen=True)
class Measurement:
    contract: str
    members: int
    gas: list[int]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.gas)


def update_cid(index: int) -> Cid:
    return Cid(
        codec=CODEC_RAW, digest=hashlib.sha256(f"update {index}".encode()).digest()
    )


def measure_consortium(
    client_for: Callable[[LocalAccount], ChainClient],
    owner_account: LocalAccount,
    member_accounts: list[LocalAccount],
) -> Measurement:
    members = len(member_accounts)
    owner, _ = ConsortiumContract.deploy(
        client_for(owner_account),
        min_updates=members,
        approval_threshold=members,
        round_seconds=3600,
    )
    for index, account in enumerate(member_accounts):
        owner.add_member(account.address, f"shop-{index}")
    owner.open_first_round(Cid(CODEC_RAW, hashlib.sha256(b"starter").digest()))

    gas = []
    for index, account in enumerate(member_accounts):
        member = ConsortiumContract(client_for(account), owner.address)
        gas.append(member.submit_update(1, update_cid(index), 1_000 + index).gas_used)
    return Measurement("Consortium", members, gas)


def measure_naive(
    client_for: Callable[[LocalAccount], ChainClient],
    owner_account: LocalAccount,
    member_accounts: list[LocalAccount],
) -> Measurement:
    artifact = load_artifact("NaiveRegistry")
    owner_client = client_for(owner_account)
    deployed = owner_client.transact(to=None, data=artifact.bytecode)
    assert deployed.contract_address is not None
    registry = owner_client.w3.eth.contract(
        address=deployed.contract_address, abi=artifact.abi
    )
    for account in member_accounts:
        data = registry.encode_abi("addMember", args=[account.address])
        owner_client.transact(to=registry.address, data=data)

    gas = []
    for index, account in enumerate(member_accounts):
        data = registry.encode_abi(
            "submitUpdate", args=[1, update_cid(index).encode(), 1_000 + index]
        )
        gas.append(
            client_for(account).transact(to=registry.address, data=data).gas_used
        )
    return Measurement("NaiveRegistry", len(member_accounts), gas)


def machine_description() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError as exc:
        logger.warning("cannot read /proc/cpuinfo: %s", exc)
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} CPUs (nproc), {model}, {system}"


def render_section(results: list[Measurement], anvil_version: str) -> str:
    lines = [
        START_MARKER,
        "## Gas of an update submission",
        "",
        "Gas used by `submitUpdate`, averaged over the members of one round in",
        "which every member submits once (the last submission also closes the",
        f"round). Target: at most {GAS_TARGET:,} gas on average for `Consortium`.",
        "`NaiveRegistry` (contracts/bench/NaiveRegistry.sol) is the baseline",
        "that stores the CID string, sender, weight and timestamp in storage.",
        "",
        "| contract | members | mean gas | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.contract} | {result.members} | {result.mean:,.0f} | "
            f"{min(result.gas):,} | {max(result.gas):,} |"
        )
    lines += [
        "",
        "Gas does not depend on the machine; it is listed for completeness.",
        "",
        f"- Machine: {machine_description()}",
        f"- Chain: {anvil_version}, chain id {DEFAULT_CHAIN_ID}, solc 0.8.28 "
        "(optimizer on, 200 runs, evm cancun)",
        "- Command: `.venv/bin/python benchmarks/gas_submission.py`",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def write_section(section: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace this benchmark's section in ``path``, keeping the others."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if START_MARKER in text and END_MARKER in text:
        head, rest = text.split(START_MARKER, 1)
        _, tail = rest.split(END_MARKER, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def run(member_counts: tuple[int, ...]) -> list[Measurement]:
    abi = load_artifact("Consortium").abi
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="gas-bench-") as folder:
        chain = AnvilChain(Path(folder) / "state.json", accounts=max(member_counts) + 1)
        with chain:
            owner_account, *others = chain.dev_accounts()

            def client_for(account: LocalAccount) -> ChainClient:
                return ChainClient(
                    chain.rpc_url,
                    expected_chain_id=DEFAULT_CHAIN_ID,
                    account=account,
                    abi=abi,
                )

            for members in member_counts:
                accounts = others[:members]
                results.append(measure_consortium(client_for, owner_account, accounts))
                results.append(measure_naive(client_for, owner_account, accounts))
    return results


def anvil_version() -> str:
    output = subprocess.run(
        [str(find_tool("anvil")), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The first line reads "anvil Version: 1.7.1".
    return output.splitlines()[0].replace("Version: ", "").strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print the section instead of writing docs/benchmarks.md",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    results = run(MEMBER_COUNTS)
    section = render_section(results, anvil_version())
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"updated {BENCHMARKS_MD}")
    consortium_means = [r.mean for r in results if r.contract == "Consortium"]
    return 0 if max(consortium_means) <= GAS_TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
