"""Helpers shared by the store tests: stores in temporary folders, dumps, CSV text."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from merchant_app.store import EventStore

REES46_HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,"
    "user_id,user_session"
)
SLIM_HEADER = "user_id,product_id,category_code,brand,price,event_type"

# Two valid REES46 rows with made-up values in the shape of the public file.
REES46_ROWS = [
    "2019-10-01 00:00:00 UTC,view,1000978,2090000000000012345,,acme,35.79,"
    "500000001,0a8c5e52-7d3b-4c4f-9d0e-1f2a3b4c5d6e",
    "2019-10-01 00:00:01 UTC,cart,2000345,2090000000000067890,"
    "appliances.kitchen.kettle,brandco,33.20,500000002,"
    "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed",
]


def write_csv(folder: Path, name: str, lines: list[str], *, bom: bool = False) -> Path:
    """Write ``lines`` as a UTF-8 file (with a BOM if asked) and return its path."""
    path = folder / name
    text = "\n".join(lines) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def dump(store: EventStore) -> list[str]:
    """Return the full SQL dump of the store, to compare before and after."""
    return list(store.connection.iterdump())


def read_rows(path: Path) -> list[list[str]]:
    """Return the data rows of a CSV file read with the csv module."""
    with path.open(newline="", encoding="utf-8-sig") as stream:
        rows = list(csv.reader(stream))
    return rows[1:]


def utc_microseconds(text: str) -> int:
    """Return microseconds since the epoch of a `YYYY-MM-DD HH:MM:SS UTC` time."""
    moment = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000
