"""Imports that switch from the byte path to pandas partway through a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from merchant_app.errors import InputDataError, InvalidRowError
from merchant_app.store import EventStore, ImportMode
from tests.store_support import SLIM_HEADER, write_csv


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    with EventStore.open(tmp_path / "merchant.sqlite") as opened:
        yield opened


def _slim_rows(count: int, first_user: int = 1) -> list[str]:
    return [f"{first_user + i},{100 + i},a.b,acme,{i}.5,view" for i in range(count)]


def _stored(store: EventStore) -> list[tuple[object, ...]]:
    return store.connection.execute(
        "SELECT user_id, product_id, category_code, brand, price, event_type "
        "FROM events ORDER BY id"
    ).fetchall()


def test_quoted_field_in_later_chunk(store: EventStore, tmp_path: Path) -> None:
    lines = [
        SLIM_HEADER,
        *_slim_rows(5),
        '6,106,"kitchen, big",acme,6.5,view',
        '7,107,"two\nlines",acme,7.5,cart',
        *_slim_rows(3, first_user=8),
    ]
    path = write_csv(tmp_path, "quoted.csv", lines)

    report = store.import_csv(path, chunk_rows=2)

    stored = _stored(store)
    assert report.rows_added == 10
    assert stored[5] == (6, 106, "kitchen, big", "acme", 6.5, "view")
    assert stored[6] == (7, 107, "two\nlines", "acme", 7.5, "cart")
    assert stored[7] == (8, 100, "a.b", "acme", 0.5, "view")


def test_bad_row_after_switch_has_its_line(store: EventStore, tmp_path: Path) -> None:
    lines = [
        SLIM_HEADER,
        *_slim_rows(3),
        '4,104,"a, b",acme,1.5,view',
        *_slim_rows(2, first_user=5),
        "7,107,a.b,acme,1.5,like",
    ]
    path = write_csv(tmp_path, "bad.csv", lines)

    with pytest.raises(InvalidRowError) as raised:
        store.import_csv(path, chunk_rows=2)

    assert raised.value.line == 8
    assert store.count_events() == 0


def test_wide_row_starting_switch_rejected(store: EventStore, tmp_path: Path) -> None:
    # pandas drops extra fields of the first row it reads, so the row that
    # starts the switch must still raise, as it does in a whole-file read.
    lines = [
        SLIM_HEADER,
        *_slim_rows(2),
        "3,103,a.b,acme,1.5,view,extra",
        *_slim_rows(2),
    ]
    path = write_csv(tmp_path, "wide.csv", lines)

    with pytest.raises(InvalidRowError) as raised:
        store.import_csv(path, chunk_rows=2)

    assert raised.value.line == 4
    assert store.count_events() == 0


def test_blank_line_in_later_chunk(store: EventStore, tmp_path: Path) -> None:
    lines = [SLIM_HEADER, *_slim_rows(4), "", *_slim_rows(3, first_user=5)]
    path = write_csv(tmp_path, "blank.csv", lines)

    report = store.import_csv(path, chunk_rows=2)

    assert report.rows_added == 7
    assert report.blank_lines == 1
    assert [row[0] for row in _stored(store)] == [1, 2, 3, 4, 5, 6, 7]


def test_crlf_file_same_as_lf(store: EventStore, tmp_path: Path) -> None:
    rows = _slim_rows(5)
    lf = write_csv(tmp_path, "lf.csv", [SLIM_HEADER, *rows])
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(lf.read_bytes().replace(b"\n", b"\r\n"))

    with EventStore.open(tmp_path / "other.sqlite") as other:
        other.import_csv(lf, chunk_rows=2)
        expected = _stored(other)
    report = store.import_csv(crlf, chunk_rows=2)

    assert report.rows_added == 5
    assert _stored(store) == expected


def test_invalid_utf8_in_later_chunk(store: EventStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "latin.csv", [SLIM_HEADER, *_slim_rows(4)])
    path.write_bytes(path.read_bytes() + b"5,105,caf\xe9,acme,1.5,view\n")

    with pytest.raises(InputDataError, match="not UTF-8"):
        store.import_csv(path, chunk_rows=2)

    assert store.count_events() == 0


def test_last_line_without_line_break(store: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "no-break.csv"
    path.write_bytes(("\n".join([SLIM_HEADER, *_slim_rows(3)])).encode("utf-8"))

    report = store.import_csv(path, chunk_rows=2, mode=ImportMode.SKIP_BAD_ROWS)

    assert report.rows_added == 3
    assert _stored(store)[-1] == (3, 102, "a.b", "acme", 2.5, "view")
