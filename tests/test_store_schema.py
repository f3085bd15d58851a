"""Opening the store: pragmas, schema version, migrations, hash scheme."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from merchant_app.errors import InputDataError, StoreError
from merchant_app.store import EventStore, schema
from tests.store_support import REES46_HEADER, REES46_ROWS, write_csv


def test_open_sets_wal_and_foreign_keys(tmp_path: Path) -> None:
    with EventStore.open(tmp_path / "m.sqlite") as store:
        mode = store.connection.execute("PRAGMA journal_mode").fetchone()[0]
        keys = store.connection.execute("PRAGMA foreign_keys").fetchone()[0]
        version = store.connection.execute("PRAGMA user_version").fetchone()[0]

    assert mode == "wal"
    assert keys == 1
    assert version == schema.SCHEMA_VERSION


def test_open_creates_indexes(tmp_path: Path) -> None:
    with EventStore.open(tmp_path / "m.sqlite") as store:
        indexes = dict(
            store.connection.execute(
                "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' "
                "AND name NOT LIKE 'sqlite_autoindex%'"
            ).fetchall()
        )

    assert indexes == {"events_unique_row": "event_rows"}


def test_events_view_takes_writes(tmp_path: Path) -> None:
    with EventStore.open(tmp_path / "m.sqlite") as store:
        connection = store.connection
        connection.execute(
            "INSERT INTO events (event_type, product_id, user_id, brand) "
            "VALUES ('cart', 5, 6, 'brandx')"
        )
        connection.execute(
            "UPDATE events SET included = 0, category_code = 'a.b', brand = NULL "
            "WHERE product_id = 5"
        )
        updated = connection.execute(
            "SELECT event_type, product_id, user_id, category_code, brand, "
            "included, source FROM events"
        ).fetchall()
        names = connection.execute(
            "SELECT (SELECT group_concat(name) FROM brands), "
            "(SELECT group_concat(name) FROM category_codes)"
        ).fetchone()
        connection.execute("DELETE FROM events WHERE product_id = 5")
        remaining = store.count_events()

    assert updated == [("cart", 5, 6, "a.b", None, 0, None)]
    assert names == ("brandx", "a.b")
    assert remaining == 0


def test_events_view_rejects_unknown_type(tmp_path: Path) -> None:
    with EventStore.open(tmp_path / "m.sqlite") as store:
        with pytest.raises(sqlite3.IntegrityError, match="event_type"):
            store.connection.execute(
                "INSERT INTO events (event_type, product_id, user_id) "
                "VALUES ('like', 5, 6)"
            )
        assert store.count_events() == 0


def test_count_reads_event_rows_only(tmp_path: Path) -> None:
    with EventStore.open(tmp_path / "m.sqlite") as store:
        plan = store.connection.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM events"
        ).fetchall()

    details = " ".join(str(row[-1]) for row in plan)
    assert "brands" not in details
    assert "category_codes" not in details


def test_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with EventStore.open(path) as store:
        store.import_csv(write_csv(tmp_path, "a.csv", [REES46_HEADER, *REES46_ROWS]))

    with EventStore.open(path) as store:
        assert store.count_events() == 2


def test_open_newer_schema_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    EventStore.open(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")

    with pytest.raises(InputDataError, match="newer than this app"):
        EventStore.open(path)


def test_open_runs_migrations_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.sqlite"
    EventStore.open(path).close()
    current = schema.SCHEMA_VERSION
    steps: list[int] = []

    def add_note_column(connection: sqlite3.Connection) -> None:
        steps.append(current)
        connection.execute("ALTER TABLE event_rows ADD COLUMN note TEXT")

    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(schema.MIGRATIONS, current, add_note_column)

    with EventStore.open(path) as store:
        columns = [
            row[1] for row in store.connection.execute("PRAGMA table_info(event_rows)")
        ]
        version = store.connection.execute("PRAGMA user_version").fetchone()[0]

    assert steps == [current]
    assert "note" in columns
    assert version == current + 1


def test_failed_migration_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.sqlite"
    EventStore.open(path).close()
    current = schema.SCHEMA_VERSION

    def broken(connection: sqlite3.Connection) -> None:
        connection.execute("ALTER TABLE event_rows ADD COLUMN note TEXT")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(schema.MIGRATIONS, current, broken)

    with pytest.raises(InputDataError, match="disk I/O error"):
        EventStore.open(path)

    with sqlite3.connect(path) as connection:
        columns = [
            row[1] for row in connection.execute("PRAGMA table_info(event_rows)")
        ]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    assert "note" not in columns
    assert version == current


def test_changed_hash_scheme_rehashes_rows(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with EventStore.open(path) as store:
        store.import_csv(write_csv(tmp_path, "a.csv", [REES46_HEADER, *REES46_ROWS]))
        original = store.connection.execute(
            "SELECT id, row_hash FROM events ORDER BY id"
        ).fetchall()
        store.connection.execute("UPDATE events SET row_hash = id")
        store.connection.execute(
            "UPDATE meta SET value = 'old' WHERE key = 'row_hash_scheme'"
        )

    with EventStore.open(path) as store:
        rehashed = store.connection.execute(
            "SELECT id, row_hash FROM events ORDER BY id"
        ).fetchall()
        report = store.import_csv(
            write_csv(tmp_path, "b.csv", [REES46_HEADER, *REES46_ROWS], bom=True)
        )

    assert rehashed == original
    assert report.duplicates == 2


def test_not_a_database_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)

    with pytest.raises(InputDataError, match="cannot open the event store"):
        EventStore.open(path)


def test_locked_database_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with EventStore.open(path) as store:
        store.connection.execute("PRAGMA busy_timeout = 50")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(
                StoreError, match="add_event failed: database is locked"
            ):
                store.add_event(
                    {"event_type": "view", "product_id": "1", "user_id": "2"}
                )
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.count_events() == 0
