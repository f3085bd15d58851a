"""The merchant_rows table function: values, NULLs, tokens and rejections.

Imports through it are covered by the import tests, which run once with it
and once with the Python route (the ``import_route`` fixture). Here the
function itself is checked on a real SQLite connection.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import merchant_app.store
from merchant_app.store import EventStore, native_rows
from merchant_app.store.hashing import TextColumn, Utf8Texts
from merchant_app.store.native_rows import ColumnBatch, NumberColumn
from tests.store_support import REES46_HEADER, write_csv


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    if not native_rows.install():
        pytest.skip("merchant_rows is not available here")
    opened = sqlite3.connect(tmp_path / "rows.sqlite", isolation_level=None)
    yield opened
    opened.close()


def _texts(*values: str) -> TextColumn:
    objects = np.empty(len(values), dtype=object)
    objects[:] = values
    return TextColumn(np.arange(len(values), dtype=np.int64), objects)


def _select(connection: sqlite3.Connection, batch: ColumnBatch, columns: str) -> list:
    with batch.registered() as token:
        return connection.execute(
            f"SELECT {columns} FROM merchant_rows(?)", (token,)
        ).fetchall()


@pytest.mark.skipif(sys.platform != "linux", reason="the library is found on Linux")
@pytest.mark.skipif(
    os.environ.get(native_rows.DISABLE_VARIABLE, "") not in ("", "0"),
    reason=f"{native_rows.DISABLE_VARIABLE} turns merchant_rows off",
)
def test_install_finds_the_sqlite_library_of_python() -> None:
    # setup.sh builds the C module; on Linux the import must use it.
    assert native_rows.install()

    probe = sqlite3.connect(":memory:")
    assert native_rows.usable(probe)
    probe.close()


def test_install_rejects_another_sqlite_version(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(native_rows, "_state", {})
    monkeypatch.delenv(native_rows.DISABLE_VARIABLE, raising=False)
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.0.0")

    with caplog.at_level(logging.INFO, logger="merchant_app.store.native_rows"):
        installed = native_rows.install()

    assert not installed
    assert "Python's sqlite3 reports 3.0.0" in caplog.text


def test_install_without_the_c_module_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As on a machine where pip could not build the module.
    monkeypatch.setattr(native_rows, "_state", {})
    monkeypatch.delenv(native_rows.DISABLE_VARIABLE, raising=False)
    monkeypatch.setitem(sys.modules, "merchant_app.store._rowsource", None)
    monkeypatch.delattr(merchant_app.store, "_rowsource", raising=False)

    with caplog.at_level(logging.INFO, logger="merchant_app.store.native_rows"):
        installed = native_rows.install()

    assert not installed
    assert "the import binds values from Python" in caplog.text


def test_numbers_come_back_exactly_with_nulls(connection: sqlite3.Connection) -> None:
    ints = np.array([0, -(2**63), 2**63 - 1, 19], dtype=np.int64)
    floats = np.array([1.5, -0.0, math.nan, 35.79])
    batch = ColumnBatch(
        [
            NumberColumn(ints, np.array([False, False, False, True])),
            NumberColumn(floats, np.array([False, True, False, False])),
            NumberColumn(ints),
        ]
    )

    rows = _select(connection, batch, "c0, c1, c2, typeof(c0), typeof(c1)")

    assert rows == [
        (0, 1.5, 0, "integer", "real"),
        (-(2**63), None, -(2**63), "integer", "null"),
        # SQLite turns NaN into NULL.
        (2**63 - 1, None, 2**63 - 1, "integer", "null"),
        (None, 35.79, 19, "null", "real"),
    ]


def test_texts_keep_unicode_empty_and_null(connection: sqlite3.Connection) -> None:
    values = np.array(["über", "", "a,b\r\nc"], dtype=object)
    column = TextColumn(np.array([0, -1, 1, 2, 0], dtype=np.int64), values)

    rows = _select(connection, ColumnBatch([column]), "c0, typeof(c0)")

    assert rows == [
        ("über", "text"),
        (None, "null"),
        ("", "text"),
        ("a,b\r\nc", "text"),
        ("über", "text"),
    ]


def test_only_empty_texts_are_not_null(connection: sqlite3.Connection) -> None:
    # The texts' buffer is then empty, and SQLite reads a NULL pointer as NULL.
    column = TextColumn(np.array([0, -1], dtype=np.int64), np.array([""], dtype=object))

    rows = _select(connection, ColumnBatch([column]), "c0, typeof(c0)")

    assert rows == [("", "text"), (None, "null")]


def test_texts_read_from_given_utf8_bytes(connection: sqlite3.Connection) -> None:
    # The byte parser hands over its joined bytes, with separators between.
    data = "abc\nüber\n".encode()
    utf8 = Utf8Texts(data, np.array([0, 4]), np.array([3, 5]))
    column = TextColumn(
        np.array([1, 0], dtype=np.int64), np.array(["abc", "über"], dtype=object), utf8
    )

    assert _select(connection, ColumnBatch([column]), "c0") == [("über",), ("abc",)]


def test_rows_come_in_batch_order(connection: sqlite3.Connection) -> None:
    values = np.arange(10_000, dtype=np.int64)[::-1].copy()

    rows = _select(connection, ColumnBatch([NumberColumn(values)]), "rowid, c0")

    assert rows == list(enumerate(values.tolist()))


def test_token_column_gives_the_token(connection: sqlite3.Connection) -> None:
    batch = ColumnBatch([NumberColumn(np.array([5, 6], dtype=np.int64))])

    with batch.registered() as token:
        tokens = connection.execute(
            "SELECT token, c0 FROM merchant_rows(?)", (token,)
        ).fetchall()
        # SQLite may test the constraint again on every row.
        filtered = connection.execute(
            "SELECT c0 FROM merchant_rows(?) WHERE token = ?", (token, token)
        ).fetchall()

    assert tokens == [(token, 5), (token, 6)]
    assert filtered == [(5,), (6,)]


def test_columns_past_the_batch_are_null(connection: sqlite3.Connection) -> None:
    batch = ColumnBatch([NumberColumn(np.array([5], dtype=np.int64))])

    assert _select(connection, batch, "c0, c1, c15") == [(5, None, None)]


def test_insert_select_loads_a_table(connection: sqlite3.Connection) -> None:
    connection.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, k INTEGER)"
    )
    insert = native_rows.NativeInsert("t", ["n", "s"], constants={"k": 9})
    batch = ColumnBatch(
        [NumberColumn(np.array([3, 4], dtype=np.int64)), _texts("x", "y")]
    )

    insert.run(connection, batch)

    assert connection.execute("SELECT id, n, s, k FROM t").fetchall() == [
        (1, 3, "x", 9),
        (2, 4, "y", 9),
    ]


def test_unknown_token_is_rejected(connection: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no batch is registered as 987"):
        connection.execute("SELECT * FROM merchant_rows(987)").fetchall()


def test_released_token_is_rejected(connection: sqlite3.Connection) -> None:
    batch = ColumnBatch([NumberColumn(np.array([1], dtype=np.int64))])
    with batch.registered() as token:
        pass

    with pytest.raises(sqlite3.OperationalError, match="no batch is registered"):
        connection.execute("SELECT * FROM merchant_rows(?)", (token,)).fetchall()


def test_scan_without_token_is_rejected(connection: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.OperationalError):
        connection.execute("SELECT * FROM merchant_rows").fetchall()


def test_view_in_a_database_file_cannot_use_it(connection: sqlite3.Connection) -> None:
    # A database file from elsewhere must not reach registered memory.
    connection.execute("CREATE VIEW v AS SELECT c0 FROM merchant_rows(1)")

    with pytest.raises(sqlite3.OperationalError, match="unsafe use"):
        connection.execute("SELECT * FROM v").fetchall()


def test_text_outside_its_buffer_is_not_registered() -> None:
    if not native_rows.install():
        pytest.skip("merchant_rows is not available here")
    utf8 = Utf8Texts(b"abc", np.array([2]), np.array([5]))
    column = TextColumn(
        np.array([0], dtype=np.int64), np.array(["abc"], dtype=object), utf8
    )

    with (
        pytest.raises(RuntimeError, match="could not be registered"),
        ColumnBatch([column]).registered(),
    ):
        pass


def test_text_code_out_of_range_fails_the_statement(
    connection: sqlite3.Connection,
) -> None:
    column = TextColumn(np.array([0, 3], dtype=np.int64), np.array(["a"], dtype=object))

    with pytest.raises(sqlite3.OperationalError, match="text code out of range"):
        _select(connection, ColumnBatch([column]), "c0")


def test_batch_shape_is_checked() -> None:
    one_row = NumberColumn(np.array([1], dtype=np.int64))
    two_rows = NumberColumn(np.array([1, 2], dtype=np.int64))

    with pytest.raises(ValueError, match="differ in length"):
        ColumnBatch([one_row, two_rows])
    with pytest.raises(ValueError, match="has 16 columns, got 17"):
        ColumnBatch([one_row] * 17)


def test_disabled_by_environment_falls_back_with_a_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(native_rows, "_state", {})
    monkeypatch.setenv(native_rows.DISABLE_VARIABLE, "1")
    path = write_csv(
        tmp_path,
        "one.csv",
        [
            REES46_HEADER,
            "2019-10-01 00:00:00 UTC,view,1,2,,,3.5,4,s",
        ],
    )

    with caplog.at_level(logging.INFO, logger="merchant_app.store.native_rows"):
        installed = native_rows.install()
        with EventStore.open(tmp_path / "m.sqlite") as store:
            route = native_rows.usable(store.connection)
            report = store.import_csv(path)

    assert not installed
    assert not route
    assert report.rows_added == 1
    assert native_rows.DISABLE_VARIABLE in caplog.text


def _stored_tables(store: EventStore) -> dict[str, list[tuple[object, ...]]]:
    """Return every stored value with its SQLite type, except import times."""
    queries = {
        "event_rows": "SELECT *, typeof(price), typeof(category_id) FROM event_rows",
        "products": "SELECT *, typeof(price) FROM products ORDER BY product_id",
        "brands": "SELECT * FROM brands ORDER BY id",
        "category_codes": "SELECT * FROM category_codes ORDER BY id",
        "imports": "SELECT id, file_name, sha256, layout, rows_read, rows_added, "
        "duplicates, rejected, negative_prices FROM imports",
    }
    return {
        table: store.connection.execute(query).fetchall()
        for table, query in queries.items()
    }


def _edge_case_file(tmp_path: Path) -> Path:
    """A file with NULLs, negative and whole prices, repeats and a quoted tail."""
    rows = [REES46_HEADER]
    for index in range(3_000):
        code = "" if index % 5 == 0 else f"cat.{index % 7}"
        brand = "" if index % 3 == 0 else f"brand-{index % 11}"
        category = "" if index % 13 == 0 else str(2_053_013_552_226_107_000 + index)
        price = ["", "-3.5", "12", "0.01"][index % 4]
        rows.append(
            f"2019-10-01 00:{index // 60 % 60:02d}:{index % 60:02d} UTC,"
            f"{['view', 'cart', 'purchase', 'remove_from_cart'][index % 4]},"
            f"{index % 50},{category},{code},{brand},{price},{index % 97},"
            f"{'' if index % 17 == 0 else f'session-{index % 40}'}"
        )
        if index % 29 == 0:
            rows.append(rows[-1])
    # A quoted field hands the rest of the file to pandas.
    rows.append('2019-10-02 00:00:00 UTC,view,7,,"a,b",ünï,1.25,3,"s, t"')
    return write_csv(tmp_path, "edges.csv", rows)


def _stored_by_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[Path]
) -> dict[str, dict[str, list[tuple[object, ...]]]]:
    """Import ``files`` once per route into new stores; return their tables."""
    if not native_rows.install():
        pytest.skip("merchant_rows is not available here")
    stored = {}
    for route in ("native", "python"):
        with monkeypatch.context() as patch:
            if route == "python":
                patch.setattr(native_rows, "usable", lambda connection: False)
            with EventStore.open(tmp_path / f"{route}.sqlite") as store:
                assert native_rows.usable(store.connection) == (route == "native")
                for path in files:
                    store.import_csv(path, chunk_rows=1_000)
                stored[route] = _stored_tables(store)
    return stored


def test_both_routes_store_the_same_edge_cases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _stored_by_route(tmp_path, monkeypatch, [_edge_case_file(tmp_path)])

    assert len(stored["native"]["event_rows"]) > 3_000
    assert stored["native"] == stored["python"]


def test_both_routes_store_the_same_real_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    path = shared_data / "rees46-raw" / "2019-Oct-head17k.csv"

    stored = _stored_by_route(tmp_path, monkeypatch, [path])

    assert stored["native"]["event_rows"]
    assert stored["native"] == stored["python"]
