"""Short forms of long identifiers for the window's cells and labels."""

from __future__ import annotations


def short_id(text: str, *, head: int = 10, tail: int = 6) -> str:
    """Shorten a CID, hash or address to its ends; shorter text is returned as is.

    The ends are what people compare by eye. Show the whole value in a tooltip.
    """
    if len(text) <= head + tail + 1:
        return text
    return f"{text[:head]}…{text[-tail:]}"


def describe_size(size: int, *, exact: bool = True) -> str:
    """Return a byte count for people: "1.2 MB (1,244,284 bytes)".

    With ``exact`` False the exact count in brackets is left out.
    """
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            rounded = f"{size / scale:.1f} {unit}"
            return f"{rounded} ({size:,} bytes)" if exact else rounded
    return f"{size:,} bytes"
