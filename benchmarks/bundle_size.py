"""Size and build time of the PyInstaller bundle.

Runs ``scripts/build-bundle.sh`` into ``--dist`` (default ``dist/``), times
it, then measures the bundle folder: its total size, the largest entries of
``_internal/`` and the NVIDIA CUDA libraries inside it. Writes the ``bundle``
section of docs/benchmarks.md. ``--no-build`` measures an existing bundle
and leaves the build time out.

    .venv/bin/python benchmarks/bundle_size.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
from markdown_section import PROJECT_ROOT, machine_description, write_section

BUILD_SCRIPT = PROJECT_ROOT / "scripts" / "build-bundle.sh"
TOP_ENTRIES = 10
MIB = 1024 * 1024
SITE_PACKAGES = Path(torch.__file__).resolve().parents[1]


def tree_size(path: Path) -> int:
    """Return the bytes of the files under ``path``, not following symlinks."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for child in path.rglob("*"):
        if child.is_symlink() or child.is_file():
            total += child.lstat().st_size
    return total


def build_bundle(dist_dir: Path) -> float:
    """Run the build script into ``dist_dir`` and return the seconds it took."""
    started = time.perf_counter()
    subprocess.run(
        [str(BUILD_SCRIPT), str(dist_dir)],
        check=True,
    )
    return time.perf_counter() - started


def largest_entries(folder: Path, count: int) -> list[tuple[str, int]]:
    """Return the ``count`` largest direct children of ``folder`` with sizes."""
    sizes = [(child.name, tree_size(child)) for child in folder.iterdir()]
    sizes.sort(key=lambda item: item[1], reverse=True)
    return sizes[:count]


def format_mib(size: int) -> str:
    if size < 10 * MIB:
        return f"{size / MIB:.1f} MiB"
    return f"{size / MIB:,.0f} MiB"


def installed_size(package: str) -> int | None:
    """Return the bytes of the installed top-level package folder, if any."""
    folder = SITE_PACKAGES / package
    return tree_size(folder) if folder.is_dir() else None


def render_section(bundle: Path, build_seconds: float | None) -> str:
    """Return the markdown section for the bundle folder ``bundle``."""
    internal = bundle / "_internal"
    total = tree_size(bundle)
    lines = [
        "## PyInstaller bundle",
        "",
        f"Machine: {machine_description()}.",
        "Command: `.venv/bin/python benchmarks/bundle_size.py`, which runs "
        "`scripts/build-bundle.sh` (PyInstaller, one-folder bundle from "
        "`resources/merchant-app.spec`).",
        "",
        f"- Bundle size: {format_mib(total)} (`dist/merchant-app/`).",
    ]
    if build_seconds is not None:
        lines.append(
            f"- Build time: {build_seconds:.0f} s, with a clean PyInstaller cache."
        )
    lines += [
        "",
        f"The {TOP_ENTRIES} largest entries of `_internal/`:",
        "",
        "| entry | size |",
        "|---|---:|",
    ]
    for name, size in largest_entries(internal, TOP_ENTRIES):
        lines.append(f"| `{name}` | {format_mib(size)} |")

    nvidia = internal / "nvidia"
    if nvidia.is_dir():
        lines += [
            "",
            "NVIDIA CUDA libraries in the bundle. The PyPI torch build links "
            "them, so torch does not import without them even on the CPU; the "
            "spec keeps only the linked ones:",
            "",
            "| library | size |",
            "|---|---:|",
        ]
        libraries = sorted(
            (path for path in nvidia.rglob("*.so*") if path.is_file()),
            key=lambda path: path.lstat().st_size,
            reverse=True,
        )
        for path in libraries:
            relative = path.relative_to(internal)
            lines.append(f"| `{relative}` | {format_mib(path.lstat().st_size)} |")
        lines.append(f"| all of `nvidia/` | {format_mib(tree_size(nvidia))} |")

    left_out = []
    for package in ("nvidia", "triton"):
        size = installed_size(package)
        if size is not None:
            left_out.append(f"`{package}/` {format_mib(size)}")
    if left_out:
        lines += [
            "",
            "For comparison, installed in the virtual environment: "
            + ", ".join(left_out)
            + ". The spec leaves triton out and takes from `nvidia/` only "
            "the libraries torch links.",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dist",
        type=Path,
        default=PROJECT_ROOT / "dist",
        help="folder the bundle is built into (default: dist/)",
    )
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="measure the bundle already in --dist, without building it",
    )
    args = parser.parse_args()

    build_seconds = None if args.no_build else build_bundle(args.dist)
    bundle = args.dist / "merchant-app"
    if not (bundle / "_internal").is_dir():
        print(f"error: no bundle in {bundle}; run without --no-build", file=sys.stderr)
        return 1
    section = render_section(bundle, build_seconds)
    write_section("bundle", section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
