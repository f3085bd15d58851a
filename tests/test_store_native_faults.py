"""Faults around the import's parse threads and the merchant_rows batches.

First errors in file order with two parse threads, batch shapes, scans that
outlive their token, and a full registry. Real SQLite databases and files.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from merchant_app.errors import InputDataError
from merchant_app.store import EventStore, ImportMode, csv_import, native_rows
from merchant_app.store.native_rows import ColumnBatch, NumberColumn
from tests.store_support import REES46_HEADER, SLIM_HEADER, dump, write_csv

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path, import_route: str) -> Iterator[EventStore]:
    with EventStore.open(tmp_path / "store.sqlite") as opened:
        yield opened


def _rees46_rows(count: int) -> list[str]:
    return [
        f"2019-10-01 00:{index // 60 % 60:02d}:{index % 60:02d} UTC,view,"
        f"{index + 1},,,,1.5,{index + 7},s{index}"
        for index in range(count)
    ]


@pytest.mark.parametrize("unreadable_row", ["extra field", "not UTF-8"])
def test_strict_error_is_first_bad_line(
    store: EventStore, tmp_path: Path, unreadable_row: str
) -> None:
    """A strict import reports the first bad line in file order.

    Line 1500 has an unknown event type and line 2500 cannot be read (an
    extra field, or a byte that is not UTF-8), with 1000 rows per chunk. The
    reading of chunk 3 fails while chunk 2 is still being parsed, and the
    error of chunk 2 must still come first.
    """
    rows = _rees46_rows(4000)
    rows[1498] = rows[1498].replace(",view,", ",bogus,")
    if unreadable_row == "extra field":
        rows[2498] += ",extra"
    else:
        rows[2498] = rows[2498].replace("s2498", "s\udcff")
    path = tmp_path / "two-errors.csv"
    text = REES46_HEADER + "\n" + "\n".join(rows) + "\n"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    before = dump(store)

    with pytest.raises(InputDataError) as raised:
        store.import_csv(path, mode=ImportMode.STRICT, chunk_rows=1000)

    assert "line 1500" in str(raised.value)
    assert dump(store) == before


def test_column_batch_rejects_short_null_mask() -> None:
    """ColumnBatch rejects a NULL mask shorter than its values.

    merchant_rows reads one mask byte per row, so a shorter mask would be
    read past its end.
    """
    values = np.arange(64, dtype=np.int64)

    with pytest.raises(ValueError):
        ColumnBatch([NumberColumn(values, np.array([True]))])


_SCAN_AFTER_RELEASE = """
import gc
import sqlite3

import numpy as np

from merchant_app.store import native_rows
from merchant_app.store.native_rows import ColumnBatch, NumberColumn

assert native_rows.install()
connection = sqlite3.connect(":memory:", isolation_level=None)
batch = ColumnBatch([NumberColumn(np.arange(1_000_000, dtype=np.int64))])
with batch.registered() as token:
    cursor = connection.execute("SELECT c0 FROM merchant_rows(?)", (token,))
    assert cursor.fetchone() == (0,)
del batch
gc.collect()
try:
    print("rows", cursor.fetchmany(3))
except sqlite3.Error as exc:
    print("error", exc)
"""


def test_scan_outlives_released_token() -> None:
    """A scan still open when its token is released reads the right values.

    Any connection of the process can open such a scan, because tokens are
    small sequential numbers. The scan keeps its copy of the batch after
    Python frees the arrays. The script runs in a subprocess, because a read
    of freed memory could crash it.
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCAN_AFTER_RELEASE)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "merchant_rows is not installed" in result.stderr:
        pytest.skip("merchant_rows is not available here")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "rows [(1,), (2,), (3,)]"


def test_import_with_registry_full_still_loads(tmp_path: Path) -> None:
    """An import succeeds when all 64 merchant_rows slots are taken.

    It then binds its values from Python, as it does whenever merchant_rows
    is unavailable.
    """
    if not native_rows.install():
        pytest.skip("merchant_rows is not available here")
    path = write_csv(tmp_path, "one.csv", [SLIM_HEADER, "1,2,,,,view"])
    registrations = [ColumnBatch([]).registered() for _ in range(64)]
    for registration in registrations:
        registration.__enter__()
    try:
        with EventStore.open(tmp_path / "store.sqlite") as store:
            report = store.import_csv(path)
    finally:
        for registration in registrations:
            registration.__exit__(None, None, None)

    assert report.rows_added == 1


def test_parse_thread_error_rolls_back(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in a parse thread reaches the caller and leaves no thread."""
    calls = 0
    hash_rows = csv_import.row_hashes

    def fail_on_third_chunk(columns: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("parse thread failed")
        return hash_rows(columns)  # type: ignore[arg-type]

    monkeypatch.setattr(csv_import, "row_hashes", fail_on_third_chunk)
    path = write_csv(tmp_path, "six-chunks.csv", [REES46_HEADER, *_rees46_rows(6000)])
    before = dump(store)

    with pytest.raises(RuntimeError, match="parse thread failed"):
        store.import_csv(path, chunk_rows=1000)

    assert dump(store) == before
    left = [t.name for t in threading.enumerate() if t.name.startswith("import-")]
    assert left == []
