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
from merchant_app.store.rows import EVENT_TYPES

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3

# Version 2 keeps the events in `event_rows`, with the event type as its
# index in EVENT_TYPES and category code and brand as ids into
# `category_codes` and `brands`, where id 0 has the name NULL. The view
# `events` has the columns of version 1, so readers keep their SQL.
# Inserting the 1M events of benchmarks/import_speed.py took 1.36 s of CPU
# time with text columns, 1.14 s with ids and NULL, and 0.97 s with id 0 in
# place of NULL (SQLite 3.40, Python 3.11). Python's sqlite3 binds None far
# slower than an int.
#
# `event_time` is microseconds since 1970-01-01 UTC (NULL for slim rows), so
# sorting and range filters work on integers. `row_hash` is set only for rows
# with a time (see hashing.py). Slim rows have none and are never duplicates.
_IMPORTS_TABLE = """
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
)
"""

_PRODUCT_AND_META_TABLES = """
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

# Names of the two dictionary tables, each with columns (id, name).
NAME_TABLES = ("category_codes", "brands")

_EVENT_ROWS_TABLE = f"""
CREATE TABLE event_rows (
    id INTEGER PRIMARY KEY,
    event_time INTEGER,
    event_type_id INTEGER NOT NULL CHECK (
        event_type_id BETWEEN 0 AND {len(EVENT_TYPES) - 1}
    ),
    product_id INTEGER NOT NULL CHECK (product_id >= 0),
    category_id INTEGER CHECK (category_id >= 0),
    category_code_id INTEGER NOT NULL DEFAULT 0 REFERENCES category_codes (id),
    brand_id INTEGER NOT NULL DEFAULT 0 REFERENCES brands (id),
    price REAL,
    user_id INTEGER NOT NULL CHECK (user_id >= 0),
    user_session TEXT,
    negative_price INTEGER GENERATED ALWAYS AS (coalesce(price < 0, 0)) VIRTUAL,
    source INTEGER REFERENCES imports (id) ON DELETE SET NULL,
    included INTEGER NOT NULL DEFAULT 1 CHECK (included IN (0, 1)),
    row_hash INTEGER
)
"""


def _event_type_name(id_column: str) -> str:
    cases = " ".join(
        f"WHEN {index} THEN '{name}'" for index, name in enumerate(EVENT_TYPES)
    )
    return f"CASE {id_column} {cases} END"


def _event_type_id(name_column: str) -> str:
    cases = " ".join(
        f"WHEN '{name}' THEN {index}" for index, name in enumerate(EVENT_TYPES)
    )
    return f"CASE {name_column} {cases} END"


def _name_id(table: str, name_column: str) -> str:
    return f"coalesce((SELECT id FROM {table} WHERE name = {name_column}), 0)"


# LEFT JOINs on the primary key let SQLite skip a join whose columns a query
# does not read, so `SELECT count(*) FROM events` reads only event_rows.
_EVENTS_VIEW = f"""
CREATE VIEW events AS
SELECT
    e.id AS id,
    e.event_time AS event_time,
    {_event_type_name("e.event_type_id")} AS event_type,
    e.product_id AS product_id,
    e.category_id AS category_id,
    c.name AS category_code,
    b.name AS brand,
    e.price AS price,
    e.user_id AS user_id,
    e.user_session AS user_session,
    e.negative_price AS negative_price,
    e.source AS source,
    e.included AS included,
    e.row_hash AS row_hash
FROM event_rows AS e
LEFT JOIN category_codes AS c ON c.id = e.category_code_id
LEFT JOIN brands AS b ON b.id = e.brand_id
"""

_TYPE_NAMES = ", ".join(f"'{name}'" for name in EVENT_TYPES)
# Statements shared by the INSERT and UPDATE triggers: reject an unknown
# event type, and add new category codes and brands to their tables. The
# NOT EXISTS test avoids a conflict, so the outer statement's conflict
# clause (OR REPLACE) cannot renumber a name.
_TRIGGER_CHECKS = f"""
    SELECT RAISE(ABORT, 'CHECK constraint failed: event_type')
    WHERE NEW.event_type IS NULL OR NEW.event_type NOT IN ({_TYPE_NAMES});
    INSERT INTO category_codes (name) SELECT NEW.category_code
    WHERE NEW.category_code IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM category_codes WHERE name = NEW.category_code);
    INSERT INTO brands (name) SELECT NEW.brand
    WHERE NEW.brand IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM brands WHERE name = NEW.brand);
"""

# INSTEAD OF triggers let other code write `events` as it wrote the table of
# version 1. A write through the view does not set `lastrowid` or
# `rowcount`, so the store itself writes event_rows.
_EVENTS_TRIGGERS = [
    f"""
CREATE TRIGGER events_insert INSTEAD OF INSERT ON events
BEGIN
{_TRIGGER_CHECKS}
    INSERT INTO event_rows (
        id, event_time, event_type_id, product_id, category_id,
        category_code_id, brand_id, price, user_id, user_session, source,
        included, row_hash
    )
    VALUES (
        NEW.id, NEW.event_time, {_event_type_id("NEW.event_type")},
        NEW.product_id, NEW.category_id,
        {_name_id("category_codes", "NEW.category_code")},
        {_name_id("brands", "NEW.brand")},
        NEW.price, NEW.user_id, NEW.user_session, NEW.source,
        coalesce(NEW.included, 1), NEW.row_hash
    );
END
""",
    f"""
CREATE TRIGGER events_update INSTEAD OF UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'cannot UPDATE generated column "negative_price"')
    WHERE NEW.negative_price IS NOT OLD.negative_price;
{_TRIGGER_CHECKS}
    UPDATE event_rows SET
        id = NEW.id,
        event_time = NEW.event_time,
        event_type_id = {_event_type_id("NEW.event_type")},
        product_id = NEW.product_id,
        category_id = NEW.category_id,
        category_code_id = {_name_id("category_codes", "NEW.category_code")},
        brand_id = {_name_id("brands", "NEW.brand")},
        price = NEW.price,
        user_id = NEW.user_id,
        user_session = NEW.user_session,
        source = NEW.source,
        included = NEW.included,
        row_hash = NEW.row_hash
    WHERE id = OLD.id;
END
""",
    """
CREATE TRIGGER events_delete INSTEAD OF DELETE ON events
BEGIN
    DELETE FROM event_rows WHERE id = OLD.id;
END
""",
]

# Duplicate detection: rows are inserted with INSERT OR IGNORE, so a row
# whose time and hash equal a stored row's is skipped.
_DUPLICATE_INDEX = """
CREATE UNIQUE INDEX events_unique_row ON event_rows (event_time, row_hash)
    WHERE row_hash IS NOT NULL
"""

Migration = Callable[[sqlite3.Connection], None]


def _migrate_from_1(connection: sqlite3.Connection) -> None:
    """Move the `events` table of version 1 into event_rows and the view.

    Every row keeps its id and values. Category codes and brands move into
    their tables, and the view returns the same texts as before.
    """
    _create_name_tables(connection)
    for table, column in zip(NAME_TABLES, ("category_code", "brand"), strict=True):
        connection.execute(
            f"INSERT INTO {table} (name) SELECT DISTINCT {column} FROM events "
            f"WHERE {column} IS NOT NULL ORDER BY {column}"
        )
    connection.execute(_EVENT_ROWS_TABLE)
    connection.execute(
        f"""
        INSERT INTO event_rows (
            id, event_time, event_type_id, product_id, category_id,
            category_code_id, brand_id, price, user_id, user_session, source,
            included, row_hash
        )
        SELECT
            v1.id, v1.event_time, {_event_type_id("v1.event_type")},
            v1.product_id, v1.category_id, coalesce(c.id, 0), coalesce(b.id, 0),
            v1.price, v1.user_id, v1.user_session, v1.source, v1.included,
            v1.row_hash
        FROM events AS v1
        LEFT JOIN category_codes AS c ON c.name = v1.category_code
        LEFT JOIN brands AS b ON b.name = v1.brand
        ORDER BY v1.id
        """
    )
    moved = connection.execute("SELECT count(*) FROM event_rows").fetchone()[0]
    connection.execute("DROP TABLE events")
    _create_events_view(connection)
    logger.info("store migration moved %d events into event_rows", moved)


# Version 2 had indexes on event_rows (user_id) and (product_id). Building
# them took 0.85 s of every 1M-event import, and the app's own queries
# hardly used them: the window's search and sorts scan the table anyway.
# docs/data.md#indexes has the query times with and without them.
_DROPPED_IN_3 = ("events_by_user", "events_by_product")


def _migrate_from_2(connection: sqlite3.Connection) -> None:
    """Drop the per-customer and per-product indexes of version 2."""
    for name in _DROPPED_IN_3:
        connection.execute(f"DROP INDEX IF EXISTS {name}")


# MIGRATIONS[n] upgrades a database from version n to n + 1.
MIGRATIONS: dict[int, Migration] = {1: _migrate_from_1, 2: _migrate_from_2}


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


def _create(connection: sqlite3.Connection) -> None:
    connection.execute(_IMPORTS_TABLE)
    _create_name_tables(connection)
    connection.execute(_EVENT_ROWS_TABLE)
    _run_script(connection, _PRODUCT_AND_META_TABLES)
    _create_events_view(connection)
    connection.execute(
        "INSERT INTO meta (key, value) VALUES ('row_hash_scheme', ?)",
        (ROW_HASH_SCHEME,),
    )


def _create_name_tables(connection: sqlite3.Connection) -> None:
    for table in NAME_TABLES:
        connection.execute(
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"
        )
        connection.execute(f"INSERT INTO {table} (id, name) VALUES (0, NULL)")


def _create_events_view(connection: sqlite3.Connection) -> None:
    """Create the index of event_rows, and the view with its triggers."""
    connection.execute(_DUPLICATE_INDEX)
    connection.execute(_EVENTS_VIEW)
    for trigger in _EVENTS_TRIGGERS:
        connection.execute(trigger)


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
