"""Write one marked section of docs/benchmarks.md and describe the machine.

Used by the recommender benchmarks; each replaces only the text between its
own start and end markers and keeps every other section.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = PROJECT_ROOT / "docs" / "benchmarks.md"


def machine_description() -> str:
    """Return CPU model, CPU count, kernel, torch version and torch threads."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs, {model}, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"with {torch.get_num_threads()} thread(s)"
    )


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the section ``name`` (between its markers) with ``body``.

    Appends the section when the markers are absent and creates the page with
    a ``# Benchmarks`` title when it does not exist.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before = text[: text.index(start)]
        after = text[text.index(end) + len(end) :]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
