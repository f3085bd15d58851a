"""Import cases where the byte-level parser and pandas could disagree.

Empty records at chunk boundaries, encoding errors after the hand-over to
pandas, non-ASCII digits in times, and text with a carriage return that
must survive an export and a new import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from merchant_app.errors import InputDataError, InvalidRowError
from merchant_app.store import EventStore, ImportMode
from tests.store_support import REES46_HEADER, SLIM_HEADER, dump, write_csv


@pytest.fixture
def store(tmp_path: Path, import_route: str) -> Iterator[EventStore]:
    with EventStore.open(tmp_path / "merchant.sqlite") as opened:
        yield opened


def _rees46_row(index: int, **changes: str) -> str:
    """Return a valid REES46 row with a distinct user and time per ``index``."""
    fields = {
        "event_time": f"2019-10-01 00:{index // 60 % 60:02d}:{index % 60:02d} UTC",
        "event_type": "view",
        "product_id": str(1000 + index),
        "category_id": "2090000000000012345",
        "category_code": "appliances.kettle",
        "brand": "acme",
        "price": "35.79",
        "user_id": str(500000000 + index),
        "user_session": f"session-{index}",
    }
    fields.update(changes)
    return ",".join(fields[name] for name in REES46_HEADER.split(","))


def _slim_row(index: int) -> str:
    return f"{500000000 + index},{1000 + index},appliances.kettle,acme,35.79,view"


@pytest.mark.parametrize("chunk_rows", [2, 3, 7])
@pytest.mark.parametrize(
    ("header", "make_row", "empty_record"),
    [
        (REES46_HEADER, _rees46_row, "," * 8),
        (SLIM_HEADER, _slim_row, "," * 5),
    ],
    ids=["rees46", "slim"],
)
def test_all_empty_record_is_blank_line(
    store: EventStore,
    tmp_path: Path,
    chunk_rows: int,
    header: str,
    make_row: Callable[[int], str],
    empty_record: str,
) -> None:
    """A record of empty fields only (`,,,,,,,,`) counts as a blank line.

    pandas reads such a record as blank, so the byte path hands its chunk to
    pandas; otherwise the result would depend on chunk_rows.
    """
    rows = [make_row(index) for index in range(6)]
    path = write_csv(
        tmp_path, "empty-record.csv", [header, *rows[:3], empty_record, *rows[3:]]
    )

    report = store.import_csv(
        path, mode=ImportMode.SKIP_BAD_ROWS, chunk_rows=chunk_rows
    )

    assert report.rejected == []
    assert report.blank_lines == 1
    assert report.rows_added == 6


def test_all_empty_record_same_with_quote_later(
    store: EventStore, tmp_path: Path
) -> None:
    """The same file gives the same report whether or not a quote follows.

    With chunk_rows=3 the empty record is in a plain chunk before the quote;
    with 50,000 the whole file goes to pandas, because the quote is in the
    only chunk.
    """
    rows = [_rees46_row(index) for index in range(6)]
    quoted = _rees46_row(9, brand='"acme, inc"')
    lines = [REES46_HEADER, *rows[:3], "," * 8, *rows[3:], quoted]
    path = write_csv(tmp_path, "empty-record-quote.csv", lines)

    reports = []
    for chunk_rows in (3, 50_000):
        with EventStore.open(tmp_path / f"store-{chunk_rows}.sqlite") as other:
            report = other.import_csv(
                path, mode=ImportMode.SKIP_BAD_ROWS, chunk_rows=chunk_rows
            )
            reports.append(
                (report.rows_added, report.blank_lines, report.rejected_count)
            )

    assert reports[0] == reports[1]


def test_not_utf8_error_names_file_offset(store: EventStore, tmp_path: Path) -> None:
    """The not-UTF-8 message gives the byte offset in the file, not in a chunk.

    After the hand-over to pandas the decoder counts from the start of its
    own stream, which begins with a prefix and then the file's later part.
    """
    rows = [_rees46_row(index) for index in range(1500)]
    head = (REES46_HEADER + "\n" + "\n".join(rows) + "\n").encode("utf-8")
    bad_row = _rees46_row(1500, brand="acmeXbrand").encode("utf-8")
    bad_row = bad_row.replace(b"acmeXbrand", b"acme\xe9brand")
    data = head + bad_row + b"\n" + "\n".join(rows[:100]).encode("utf-8") + b"\n"
    bad_offset = data.index(b"\xe9")
    path = tmp_path / "latin1-late.csv"
    path.write_bytes(data)
    before = dump(store)

    with pytest.raises(InputDataError) as caught:
        store.import_csv(path, chunk_rows=7)

    match = re.search(r"offset about (\d+)", str(caught.value))
    assert match is not None
    assert abs(int(match.group(1)) - bad_offset) < 1024, str(caught.value)
    assert dump(store) == before


@pytest.mark.parametrize(
    "event_time",
    [
        "\u0662\u0660\u0661\u0669-10-01 00:00:00 UTC",
        "2019-10-01 00:00:00.\u0665 UTC",
        "2019-\uff11\uff10-01 00:00:00 UTC",
    ],
    ids=["arabic-indic-year", "arabic-indic-fraction", "fullwidth-month"],
)
def test_time_rejects_non_ascii_digits(
    store: EventStore, tmp_path: Path, event_time: str
) -> None:
    """A time written with non-ASCII digits is invalid, as such ids are.

    A regular expression's `\\d` matches every Unicode digit and int()
    converts them, so the time pattern must name the ASCII digits.
    """
    rows = [_rees46_row(0), _rees46_row(1, event_time=event_time)]
    path = write_csv(tmp_path, "unicode-time.csv", [REES46_HEADER, *rows])
    before = dump(store)

    with pytest.raises(InvalidRowError) as caught:
        store.import_csv(path, chunk_rows=3)

    assert caught.value.line == 3
    assert caught.value.column == "event_time"
    assert dump(store) == before


def test_export_with_carriage_return_reimports(
    store: EventStore, tmp_path: Path
) -> None:
    """A brand with a bare `\\r` (imported from a quoted field) survives export.

    A csv writer with the `\\n` terminator leaves such a field unquoted, and a
    reader then ends the record at the `\\r`, so export quotes that row.
    """
    rows = [_rees46_row(0, brand='"line\rbreak"')]
    store.import_csv(write_csv(tmp_path, "cr.csv", [REES46_HEADER, *rows]))
    exported = tmp_path / "export.csv"
    store.export_csv(exported)

    with EventStore.open(tmp_path / "other.sqlite") as other:
        other.import_csv(exported)
        brands = other.connection.execute("SELECT brand FROM events").fetchall()

    assert brands == [("line\rbreak",)]
