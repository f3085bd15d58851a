"""Bad CSV input gets errors naming line, column and value, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from merchant_app.errors import InputDataError, InvalidRowError
from merchant_app.store import EventStore, ImportMode
from tests.store_support import (
    REES46_HEADER,
    REES46_ROWS,
    SLIM_HEADER,
    dump,
    write_csv,
)

GOOD_ROW = REES46_ROWS[0]


def _rees46_row(**changes: str) -> str:
    """Return the good REES46 row with some columns replaced."""
    names = REES46_HEADER.split(",")
    fields = dict(zip(names, GOOD_ROW.split(","), strict=True))
    fields.update(changes)
    return ",".join(fields[name] for name in names)


@pytest.fixture
def store(tmp_path: Path, import_route: str) -> EventStore:
    """A store that already contains one import, so a dump has rows to compare."""
    with EventStore.open(tmp_path / "merchant.sqlite") as opened:
        opened.import_csv(
            write_csv(tmp_path, "seed.csv", [REES46_HEADER, *REES46_ROWS])
        )
        yield opened


# (case, data lines after the header, line, column, value, words of the reason)
ROW_CASES = [
    (
        "unknown event type",
        [_rees46_row(event_type="click")],
        2,
        "event_type",
        "click",
        "unknown event type",
    ),
    (
        "non-numeric product id",
        [_rees46_row(product_id="12a")],
        2,
        "product_id",
        "12a",
        "integer id",
    ),
    ("negative user id", [_rees46_row(user_id="-5")], 2, "user_id", "-5", "integer id"),
    (
        "id above 2^63-1",
        [_rees46_row(user_id="9223372036854775808")],
        2,
        "user_id",
        "9223372036854775808",
        "outside the range",
    ),
    (
        "20-digit category id",
        [_rees46_row(category_id="12345678901234567890")],
        2,
        "category_id",
        "12345678901234567890",
        "outside the range",
    ),
    (
        "float id",
        [_rees46_row(product_id="1.5e6")],
        2,
        "product_id",
        "1.5e6",
        "integer id",
    ),
    ("missing user id", [_rees46_row(user_id="")], 2, "user_id", "", "missing"),
    (
        "hour 25",
        [_rees46_row(event_time="2019-10-01 25:00:00 UTC")],
        2,
        "event_time",
        "2019-10-01 25:00:00 UTC",
        "not a valid date or time",
    ),
    (
        "day 32",
        [_rees46_row(event_time="2019-10-32 00:00:00 UTC")],
        2,
        "event_time",
        "2019-10-32 00:00:00 UTC",
        "not a valid date or time",
    ),
    (
        "time without zone",
        [_rees46_row(event_time="2019-10-01 00:00:00")],
        2,
        "event_time",
        "2019-10-01 00:00:00",
        "UTC time",
    ),
    (
        "slashes in date",
        [_rees46_row(event_time="2019/10/01 00:00:00 UTC")],
        2,
        "event_time",
        "2019/10/01 00:00:00 UTC",
        "UTC time",
    ),
    ("missing time", [_rees46_row(event_time="")], 2, "event_time", "", "missing"),
    (
        "non-numeric price",
        [_rees46_row(price="abc")],
        2,
        "price",
        "abc",
        "expected a number",
    ),
    (
        "decimal comma price",
        [_rees46_row(price='"12,5"')],
        2,
        "price",
        "12,5",
        "expected a number",
    ),
    ("infinite price", [_rees46_row(price="1e999")], 2, "price", "1e999", "not finite"),
    ("nan price", [_rees46_row(price="nan")], 2, "price", "nan", "expected a number"),
    (
        "bad row after good rows",
        [GOOD_ROW, REES46_ROWS[1], _rees46_row(brand="x", event_type="View")],
        4,
        "event_type",
        "View",
        "unknown event type",
    ),
]


@pytest.mark.parametrize(
    ("lines", "line", "column", "value", "reason"),
    [case[1:] for case in ROW_CASES],
    ids=[case[0] for case in ROW_CASES],
)
def test_strict_import_bad_row(
    store: EventStore,
    tmp_path: Path,
    lines: list[str],
    line: int,
    column: str,
    value: str,
    reason: str,
) -> None:
    path = write_csv(tmp_path, "bad.csv", [REES46_HEADER, *lines])
    before = dump(store)

    with pytest.raises(InvalidRowError) as caught:
        store.import_csv(path)

    message = str(caught.value)
    assert f"line {line}" in message
    assert f"column {column!r}" in message
    assert f"value {value!r}" in message
    assert reason in message
    assert (caught.value.line, caught.value.column, caught.value.value) == (
        line,
        column,
        value,
    )
    assert dump(store) == before


@pytest.mark.parametrize(
    ("lines", "line", "column", "value", "reason"),
    [case[1:] for case in ROW_CASES],
    ids=[case[0] for case in ROW_CASES],
)
def test_skip_mode_bad_row(
    store: EventStore,
    tmp_path: Path,
    lines: list[str],
    line: int,
    column: str,
    value: str,
    reason: str,
) -> None:
    fresh_rows = [_rees46_row(user_id="777"), _rees46_row(user_id="778")]
    path = write_csv(tmp_path, "bad.csv", [REES46_HEADER, *lines, *fresh_rows])
    events_before = store.count_events()

    report = store.import_csv(path, mode=ImportMode.SKIP_BAD_ROWS)

    assert report.rejected_count == 1
    rejected = report.rejected[0]
    assert (rejected.line, rejected.column, rejected.value) == (line, column, value)
    assert reason in rejected.reason
    assert report.rows_added == 2
    assert store.count_events() == events_before + 2


def test_import_later_chunk_line_number(store: EventStore, tmp_path: Path) -> None:
    good = [f"{user},{user % 50},,,2.5,view" for user in range(2_500)]
    lines = [SLIM_HEADER, *good[:1_234], "1,2,,,3,like", *good[1_234:]]
    path = write_csv(tmp_path, "long.csv", lines)
    before = dump(store)

    with pytest.raises(InvalidRowError) as caught:
        store.import_csv(path, chunk_rows=500)

    assert caught.value.line == 1_236
    assert "line 1236" in str(caught.value)
    assert dump(store) == before


def test_import_missing_column_lists_layouts(store: EventStore, tmp_path: Path) -> None:
    header = REES46_HEADER.replace(",user_session", "")
    row = GOOD_ROW.rsplit(",", 1)[0]
    path = write_csv(tmp_path, "missing.csv", [header, row])
    before = dump(store)

    with pytest.raises(InvalidRowError) as caught:
        store.import_csv(path)

    message = str(caught.value)
    assert "missing column(s) user_session" in message
    assert REES46_HEADER in message
    assert SLIM_HEADER in message
    assert caught.value.column == "user_session"
    assert dump(store) == before


def test_import_missing_slim_column_named(store: EventStore, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "slim.csv", ["user_id,product_id,price,event_type", "1,2,3,view"]
    )

    with pytest.raises(InvalidRowError) as caught:
        store.import_csv(path)

    assert "missing column(s) category_code, brand" in str(caught.value)
    assert "for the slim layout" in str(caught.value)


def test_import_repeated_column_rejected(store: EventStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "twice.csv", [SLIM_HEADER + ",brand", "1,2,,,3,view,x"])

    with pytest.raises(InvalidRowError, match="'brand' appears more than once"):
        store.import_csv(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"\xef\xbb\xbf", b"\n\n  \n"],
    ids=["zero bytes", "bom only", "blank"],
)
def test_import_empty_file_rejected(
    store: EventStore, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    before = dump(store)

    with pytest.raises(InvalidRowError) as caught:
        store.import_csv(path)

    assert "empty.csv is empty" in str(caught.value)
    assert caught.value.line == 1
    assert dump(store) == before


def test_import_semicolon_file_rejected(store: EventStore, tmp_path: Path) -> None:
    lines = [REES46_HEADER.replace(",", ";"), GOOD_ROW.replace(",", ";")]
    path = write_csv(tmp_path, "semi.csv", lines)
    before = dump(store)

    with pytest.raises(InputDataError) as caught:
        store.import_csv(path)

    message = str(caught.value)
    assert "delimited by semicolons (';')" in message
    assert "line 1" in message
    assert "event_time;event_type" in message
    assert "semicolons" in caught.value.user_message
    assert dump(store) == before


def test_import_row_too_wide(store: EventStore, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "extra.csv", [SLIM_HEADER, "1,2,,,3,view", "1,2,,,3,view,9"]
    )
    before = dump(store)

    with pytest.raises(InvalidRowError) as caught:
        store.import_csv(path)

    assert caught.value.line == 3
    assert "line 3" in str(caught.value)
    assert dump(store) == before


def test_import_non_utf8_file_rejected(store: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((SLIM_HEADER + "\n1,2,,Caf\xe9,3,view\n").encode("latin-1"))
    before = dump(store)

    with pytest.raises(InputDataError, match="latin1.csv is not UTF-8"):
        store.import_csv(path)

    assert dump(store) == before


def test_import_missing_file_rejected(store: EventStore, tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="cannot read"):
        store.import_csv(tmp_path / "absent.csv")


def test_import_skip_mode_counts_all_rejected(
    store: EventStore, tmp_path: Path
) -> None:
    lines = (
        [SLIM_HEADER] + [f"{i},1,,,x{i},view" for i in range(1_500)] + ["5,6,,,7,view"]
    )
    path = write_csv(tmp_path, "many.csv", lines)

    report = store.import_csv(path, mode=ImportMode.SKIP_BAD_ROWS)

    assert report.rejected_count == 1_500
    assert len(report.rejected) == 1_000
    assert report.rejected[0].line == 2
    assert report.rows_added == 1


def test_import_first_row_too_wide(store: EventStore, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "shifted.csv", [SLIM_HEADER, "1,2,,,3,view,9", "4,5,,,6,view"]
    )
    before = dump(store)

    with pytest.raises(InvalidRowError) as caught:
        store.import_csv(path)

    assert caught.value.line == 2
    assert "expected 6 fields as in the header, saw 7" in str(caught.value)
    assert dump(store) == before


def test_import_header_only_adds_nothing(store: EventStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "header.csv", [SLIM_HEADER])

    report = store.import_csv(path)

    assert report.rows_read == 0
    assert report.rows_added == 0
    assert not report.already_imported


def test_import_folder_path_rejected(store: EventStore, tmp_path: Path) -> None:
    folder = tmp_path / "folder.csv"
    folder.mkdir()

    with pytest.raises(
        InputDataError, match="cannot read .*folder.csv: Is a directory"
    ):
        store.import_csv(folder)
