"""Tables and indexes of the store, its schema version and migrations.

The schema version lives in ``PRAGMA user_version``. A database with a lower
version is brought up to date by the steps in ``MIGRATIONS``, in one
transaction. A database with a higher version was written by a newer app
and is not opened.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from merchant_app.errors import InputDataError
from merchant_app.store.hashing import ROW_HASH_SCHEME

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# The event type CHECK is a chain of `=` because `IN (...)` made inserts twice
# as slow (measured with SQLite 3.40).
# `event_time` is microseconds since 1970-01-01 UTC (NULL for slim rows), so
# sorting and range filters work on integers. `row_hash` is set only for rows
# with a time (see hashing.py). Slim rows have none and are never duplicates.
_TABLES = """
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
"""

# Secondary indexes of `events` that a large import drops and rebuilds,
# because building an index once is faster than growing it row by row.
BULK_INDEXES: dict[str, str] = {
    "events_by_user": "CREATE INDEX events_by_user ON events (user_id)",
    "events_by_product": "CREATE INDEX events_by_product ON events (product_id)",
}

# Duplicate detection: rows are inserted with INSERT OR IGNORE, so a row
# whose time and hash equal a stored row's is skipped.
_DUPLICATE_INDEX = """
CREATE UNIQUE INDEX events_unique_row ON events (event_time, row_hash)
    WHERE row_hash IS NOT NULL
"""

Migration = Callable[[sqlite3.Connection], None]

# MIGRATIONS[n] upgrades a database from version n to n + 1.
MIGRATIONS: dict[int, Migration] = {}


def ensure_schema(connection: sqlite3.Connection, *, path: str) -> None:
    """Create the tables of a new database, or migrate an older one."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise InputDataError(
            f"{path}: the store has schema version {version}, newer than this "
            f"app's {SCHEMA_VERSION}; update the app to open it",
            user_message="This data was saved by a newer version of the app.",
        )

    connection.execute("BEGIN IMMEDIATE")
    try:
        if version == 0:
            _create(connection)
        else:
            _migrate(connection, version)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    logger.info("store schema set to version %d: %s", SCHEMA_VERSION, path)


def create_bulk_indexes(connection: sqlite3.Connection) -> None:
    """Create the secondary indexes that a bulk import may have dropped."""
    for name, statement in BULK_INDEXES.items():
        connection.execute(statement.replace(name, f"IF NOT EXISTS {name}", 1))


def _create(connection: sqlite3.Connection) -> None:
    _run_script(connection, _TABLES)
    connection.execute(_DUPLICATE_INDEX)
    create_bulk_indexes(connection)
    connection.execute(
        "INSERT INTO meta (key, value) VALUES ('row_hash_scheme', ?)",
        (ROW_HASH_SCHEME,),
    )


def _migrate(connection: sqlite3.Connection, version: int) -> None:
    for step in range(version, SCHEMA_VERSION):
        logger.info("store migration from version %d", step)
        MIGRATIONS[step](connection)


def _run_script(connection: sqlite3.Connection, script: str) -> None:
    # executescript() would commit the open transaction, so run statements
    # one by one inside it.
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)
