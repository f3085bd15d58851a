"""Helpers shared by the tests of ``merchant-app --self-test``."""

from __future__ import annotations


def status_line(output: str, check: str) -> str:
    """Return the line of ``output`` that reports ``check``, as "STATUS check: ..."."""
    for line in output.splitlines():
        status, _, rest = line.partition(" ")
        if rest.strip().startswith(f"{check}:"):
            return f"{status} {rest.strip()}"
    raise AssertionError(f"no line for the check {check!r} in:\n{output}")
