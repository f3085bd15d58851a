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

    assert indexes == {
        "events_by_user": "events",
        "events_by_product": "events",
        "events_unique_row": "events",
    }


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
    steps: list[int] = []

    def add_note_column(connection: sqlite3.Connection) -> None:
        steps.append(1)
        connection.execute("ALTER TABLE events ADD COLUMN note TEXT")

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(schema.MIGRATIONS, 1, add_note_column)

    with EventStore.open(path) as store:
        columns = [
            row[1] for row in store.connection.execute("PRAGMA table_info(events)")
        ]
        version = store.connection.execute("PRAGMA user_version").fetchone()[0]

    assert steps == [1]
    assert "note" in columns
    assert version == 2


def test_failed_migration_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.sqlite"
    EventStore.open(path).close()

    def broken(connection: sqlite3.Connection) -> None:
        connection.execute("ALTER TABLE events ADD COLUMN note TEXT")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(schema.MIGRATIONS, 1, broken)

    with pytest.raises(InputDataError, match="disk I/O error"):
        EventStore.open(path)

    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(events)")]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    assert "note" not in columns
    assert version == 1


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
