"""Opening a version-1 store moves its events into event_rows and the view."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from merchant_app.errors import InputDataError, InvalidRowError
from merchant_app.store import EventStore, schema
from merchant_app.store.hashing import ROW_HASH_SCHEME, columns_from_rows, row_hashes
from tests.store_support import REES46_HEADER, write_csv

# The tables of schema version 1, as that version created them.
V1_TABLES = """
CREATE TABLE imports (
    id INTEGER PRIMARY KEY,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    layout TEXT NOT NULL CHECK (layout IN ('rees46', 'slim')),
    mode TEXT NOT NULL,
    rows_read INTEGER NOT NULL DEFAULT 0,
    rows_added INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    negative_prices INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    event_time INTEGER,
    event_type TEXT NOT NULL CHECK (
        event_type = 'view' OR event_type = 'cart'
        OR event_type = 'remove_from_cart' OR event_type = 'purchase'
    ),
    product_id INTEGER NOT NULL CHECK (product_id >= 0),
    category_id INTEGER CHECK (category_id >= 0),
    category_code TEXT,
    brand TEXT,
    price REAL,
    user_id INTEGER NOT NULL CHECK (user_id >= 0),
    user_session TEXT,
    negative_price INTEGER GENERATED ALWAYS AS (coalesce(price < 0, 0)) VIRTUAL,
    source INTEGER REFERENCES imports (id) ON DELETE SET NULL,
    included INTEGER NOT NULL DEFAULT 1 CHECK (included IN (0, 1)),
    row_hash INTEGER
);
CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    category_id INTEGER,
    category_code TEXT,
    brand TEXT,
    price REAL
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE INDEX events_by_user ON events (user_id);
CREATE INDEX events_by_product ON events (product_id);
CREATE UNIQUE INDEX events_unique_row ON events (event_time, row_hash)
    WHERE row_hash IS NOT NULL
"""

# id, event_time, event_type, product_id, category_id, category_code, brand,
# price, user_id, user_session, source, included
V1_EVENTS: list[tuple[object, ...]] = [
    (
        1,
        1_569_888_000_000_000,
        "view",
        44_600_062,
        2_232_732_093_077_520_756,
        "appliances.kitchen.kettle",
        "acme",
        35.79,
        541_312_140,
        "72d76fde-8bb3-4e00-8c23-a032dfed738c",
        1,
        1,
    ),
    (
        2,
        1_569_888_001_000_000,
        "remove_from_cart",
        3_900_821,
        None,
        None,
        None,
        -3.5,
        554_748_717,
        None,
        1,
        0,
    ),
    (
        3,
        None,
        "cart",
        7,
        None,
        "a.b",
        "über",
        None,
        9_223_372_036_854_775_807,
        None,
        None,
        1,
    ),
    (10, None, "purchase", 0, 0, "", "", 0.0, 0, "", None, 1),
    (
        11,
        None,
        "cart",
        7,
        None,
        "a.b",
        "über",
        None,
        9_223_372_036_854_775_807,
        None,
        None,
        1,
    ),
]

V1_PRODUCTS = [
    (44_600_062, 2_232_732_093_077_520_756, "appliances.kitchen.kettle", "acme", 35.79)
]


def _create_v1_store(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    for statement in V1_TABLES.split(";"):
        connection.execute(statement)
    connection.execute(
        "INSERT INTO meta (key, value) VALUES ('row_hash_scheme', ?)",
        (ROW_HASH_SCHEME,),
    )
    connection.execute(
        "INSERT INTO imports (id, file_name, sha256, layout, mode, started_at) "
        "VALUES (1, 'old.csv', 'abc', 'rees46', 'strict', '2024-01-01T00:00:00')"
    )
    for event in V1_EVENTS:
        values = event[1:10]
        row_hash = (
            None
            if values[0] is None
            else int(row_hashes(columns_from_rows([values]))[0])
        )
        connection.execute(
            "INSERT INTO events (id, event_time, event_type, product_id, "
            "category_id, category_code, brand, price, user_id, user_session, "
            "source, included, row_hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*event, row_hash),
        )
    connection.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?)", V1_PRODUCTS)
    connection.execute("PRAGMA user_version = 1")
    connection.close()


def _v1_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT id, event_time, event_type, product_id, category_id, "
            "category_code, brand, price, user_id, user_session, negative_price, "
            "source, included, row_hash FROM events ORDER BY id"
        ).fetchall()


@pytest.fixture
def v1_path(tmp_path: Path) -> Path:
    path = tmp_path / "v1.sqlite"
    _create_v1_store(path)
    return path


def test_migration_keeps_every_event_value(v1_path: Path) -> None:
    before = _v1_rows(v1_path)

    with EventStore.open(v1_path) as store:
        after = store.connection.execute(
            "SELECT id, event_time, event_type, product_id, category_id, "
            "category_code, brand, price, user_id, user_session, negative_price, "
            "source, included, row_hash FROM events ORDER BY id"
        ).fetchall()
        version = store.connection.execute("PRAGMA user_version").fetchone()[0]

    assert len(before) == len(V1_EVENTS)
    assert after == before
    assert version == schema.SCHEMA_VERSION


def test_migration_keeps_types_of_values(v1_path: Path) -> None:
    with EventStore.open(v1_path) as store:
        types = store.connection.execute(
            "SELECT typeof(category_id), typeof(category_code), typeof(brand), "
            "typeof(price), typeof(user_id) FROM events WHERE id = 10"
        ).fetchone()
        largest = store.get_event(3)

    assert types == ("integer", "text", "text", "real", "integer")
    assert largest is not None
    assert largest.user_id == 9_223_372_036_854_775_807
    assert largest.brand == "über"


def test_migration_moves_names_and_drops_lookup_indexes(v1_path: Path) -> None:
    with EventStore.open(v1_path) as store:
        objects = dict(
            store.connection.execute(
                "SELECT name, type FROM sqlite_master WHERE name IN "
                "('events', 'event_rows', 'events_by_user', 'events_by_product', "
                "'events_unique_row')"
            ).fetchall()
        )
        brands = store.connection.execute(
            "SELECT name FROM brands ORDER BY id"
        ).fetchall()
        products = store.connection.execute("SELECT * FROM products").fetchall()
        imports = store.connection.execute(
            "SELECT id, file_name FROM imports"
        ).fetchall()

    assert objects == {
        "events": "view",
        "event_rows": "table",
        "events_unique_row": "index",
    }
    assert brands == [(None,), ("",), ("acme",), ("über",)]
    assert products == V1_PRODUCTS
    assert imports == [(1, "old.csv")]


def test_migrated_rows_still_detect_duplicates(v1_path: Path, tmp_path: Path) -> None:
    stored = (
        "2019-10-01 00:00:00 UTC,view,44600062,2232732093077520756,"
        "appliances.kitchen.kettle,acme,35.79,541312140,"
        "72d76fde-8bb3-4e00-8c23-a032dfed738c"
    )
    path = write_csv(tmp_path, "again.csv", [REES46_HEADER, stored])

    with EventStore.open(v1_path) as store:
        report = store.import_csv(path)
        with pytest.raises(InvalidRowError, match="identical event"):
            store.add_event(
                {
                    "event_time": 1_569_888_001_000_000,
                    "event_type": "remove_from_cart",
                    "product_id": 3_900_821,
                    "price": -3.5,
                    "user_id": 554_748_717,
                }
            )

    assert report.rows_added == 0
    assert report.duplicates == 1


def test_migration_from_2_drops_lookup_indexes(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    with EventStore.open(path) as store:
        store.add_event(
            {"event_type": "view", "product_id": 7, "user_id": 8, "price": 1.5}
        )
    # Version 2 differed from 3 only by these two indexes.
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE INDEX events_by_user ON event_rows (user_id)")
        connection.execute("CREATE INDEX events_by_product ON event_rows (product_id)")
        connection.execute("PRAGMA user_version = 2")
    connection.close()

    with EventStore.open(path) as store:
        indexes = {
            row[0]
            for row in store.connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND name NOT LIKE 'sqlite_autoindex%'"
            )
        }
        version = store.connection.execute("PRAGMA user_version").fetchone()[0]
        events = store.connection.execute(
            "SELECT event_type, product_id, user_id, price FROM events"
        ).fetchall()

    assert indexes == {"events_unique_row"}
    assert version == 3
    assert events == [("view", 7, 8, 1.5)]


def test_failed_migration_keeps_version_1(
    v1_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _v1_rows(v1_path)

    def broken_view(connection: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "_create_events_view", broken_view)

    with pytest.raises(InputDataError, match="disk I/O error"):
        EventStore.open(v1_path)

    with sqlite3.connect(v1_path) as connection:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    assert version == 1
    assert _v1_rows(v1_path) == before


def test_row_hashes_keep_stored_values() -> None:
    # Hashes that version 1 stored for these rows. A change here makes every
    # stored row look new to duplicate detection.
    rows = [
        (
            1_569_888_000_000_000,
            "view",
            44_600_062,
            2_103_807_459_595_387_724,
            None,
            "shiseido",
            35.79,
            541_312_140,
            "72d76fde-8bb3-4e00-8c23-a032dfed738c",
        ),
        (
            1_569_888_001_000_000,
            "purchase",
            3_900_821,
            None,
            "appliances.environment.water_heater",
            None,
            None,
            554_748_717,
            None,
        ),
        (None, "cart", 7, None, "a.b", "über", -3.5, 9, None),
    ]

    hashes = row_hashes(columns_from_rows(rows)).tolist()

    assert hashes == [-740693151300526609, -954042064862994208, -2999056539702923856]
