"""The merchant's event store: one SQLite database file per merchant profile."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from merchant_app.errors import InputDataError, StoreError
from merchant_app.store import csv_import, edits, export, native_rows, queries
from merchant_app.store.hashing import ROW_HASH_SCHEME, columns_from_rows, row_hashes
from merchant_app.store.queries import EventFilter
from merchant_app.store.report import ImportMode, ImportReport
from merchant_app.store.rows import EVENT_COLUMNS, Event, StoreCounts
from merchant_app.store.schema import ensure_schema

logger = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000
# Page cache of a connection during an import, in KiB. The cache bounds the
# memory SQLite uses for an import. When it is full, SQLite writes dirty
# pages to the WAL during the inserts, which run beside the parsing threads,
# instead of all at once at the commit. Import wall times with 64 / 16 / 4
# MiB, measured with schema version 2 and values bound from Python (files
# of benchmarks/import_speed.py, 4 KiB pages, SQLite 3.40, 2 cores):
#   1M events sorted by time: 3.9 / 3.4 / 3.1 s
#   the same events shuffled: 4.1 / 4.3 / 5.0 s (the unique index grows at
#   random places, so a small cache rereads its pages)
#   5M events sorted by time: 18.7 / 17.0 / 17.6 s
_CACHE_KIB = 16 * 1024
_REHASH_ROWS = 50_000
# Page size of a new database file, in bytes. An existing file keeps its own.
# Importing the 1M events of benchmarks/import_speed.py into a new file took
# 3.0 to 3.2 s with 8 KiB pages and 3.35 to 3.4 s with SQLite's default of
# 4 KiB (schema version 2, values bound from Python). Larger pages mean half
# as many to write to the WAL, checkpoint and index. 16 KiB was no faster
# (SQLite 3.40, 2 cores).
_NEW_FILE_PAGE_BYTES = 8192


class EventStore:
    """A merchant's events, products and import log in one SQLite file.

    The connection may be used from any thread, one call at a time (a lock
    serialises calls). A long import holds that lock, so open a second store on
    the same file to read while it runs (WAL mode lets readers go on).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self._lock = threading.RLock()
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> EventStore:
        """Open the store at ``path``, creating or migrating it as needed."""
        path = Path(path)
        # Before connecting: merchant_rows reaches connections opened later.
        native_rows.install()
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        try:
            _configure(connection)
            ensure_schema(connection, path=str(path))
            _check_hash_scheme(connection)
        except BaseException as exc:
            connection.close()
            if not isinstance(exc, sqlite3.DatabaseError):
                raise
            raise InputDataError(
                f"cannot open the event store {path}: {exc}",
                user_message="The merchant's data file cannot be opened.",
            ) from exc
        logger.info("event store opened: %s", path)
        return cls(connection, path)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._connection.close()
        logger.info("event store closed: %s", self.path)

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _guard(self, operation: str) -> Iterator[None]:
        """Serialise a call and convert SQLite errors into StoreError."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                logger.error("event store %s failed: %s: %s", operation, self.path, exc)
                raise StoreError(
                    f"event store {self.path}: {operation} failed: {exc}"
                ) from exc

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for read queries the store does not offer."""
        return self._connection

    def import_csv(
        self,
        path: str | Path,
        *,
        mode: ImportMode = ImportMode.STRICT,
        progress: csv_import.ProgressCallback | None = None,
        cancel: csv_import.CancelSignal | None = None,
        chunk_rows: int = csv_import.DEFAULT_CHUNK_ROWS,
    ) -> ImportReport:
        """Import a CSV file, as ``csv_import.import_csv`` describes."""
        with self._guard("import"), _bulk_cache(self._connection):
            return csv_import.import_csv(
                self._connection,
                path,
                mode=mode,
                progress=progress,
                cancel=cancel,
                chunk_rows=chunk_rows,
            )

    def export_csv(
        self,
        path: str | Path,
        *,
        event_filter: EventFilter | None = None,
        progress: Callable[[int], None] | None = None,
        cancel: csv_import.CancelSignal | None = None,
    ) -> int:
        """Export events to a CSV file, as ``export.export_csv`` describes."""
        with self._guard("export_csv"):
            return export.export_csv(
                self._connection,
                path,
                event_filter=event_filter,
                progress=progress,
                cancel=cancel,
            )

    def add_event(self, values: Mapping[str, object]) -> int:
        """Add one event, as ``edits.add_event`` describes."""
        with self._guard("add_event"):
            return edits.add_event(self._connection, values)

    def update_event(self, event_id: int, changes: Mapping[str, object]) -> Event:
        """Edit one event, as ``edits.update_event`` describes."""
        with self._guard("update_event"):
            return edits.update_event(self._connection, event_id, changes)

    def delete_event(self, event_id: int) -> None:
        """Delete one event, as ``edits.delete_event`` describes."""
        with self._guard("delete_event"):
            edits.delete_event(self._connection, event_id)

    def set_included(self, event_ids: Iterable[int], included: bool) -> int:
        """Mark events for the next contribution (``edits.set_included``)."""
        with self._guard("set_included"):
            return edits.set_included(self._connection, event_ids, included)

    def get_event(self, event_id: int) -> Event | None:
        """Return the event with this id, or None."""
        with self._guard("get_event"):
            return queries.get_event(self._connection, event_id)

    def count_events(self, event_filter: EventFilter | None = None) -> int:
        """Return the number of events that match the filter."""
        with self._guard("count_events"):
            return queries.count_events(self._connection, event_filter)

    def fetch_events(
        self,
        *,
        limit: int,
        offset: int = 0,
        after_id: int | None = None,
        sort: str = "id",
        descending: bool = False,
        event_filter: EventFilter | None = None,
    ) -> list[Event]:
        """Return one page of events, as ``queries.fetch_events`` describes."""
        with self._guard("fetch_events"):
            return queries.fetch_events(
                self._connection,
                limit=limit,
                offset=offset,
                after_id=after_id,
                sort=sort,
                descending=descending,
                event_filter=event_filter,
            )

    def counts(self) -> StoreCounts:
        """Return the numbers of events, customers and products."""
        with self._guard("counts"):
            return queries.store_counts(self._connection)

    def interactions(self, *, included_only: bool = True) -> list[tuple[int, int, str]]:
        """Return (user_id, product_id, event_type) of the counted interactions."""
        with self._guard("interactions"):
            return list(
                queries.interactions(self._connection, included_only=included_only)
            )


def _configure(connection: sqlite3.Connection) -> None:
    # Only a file without tables takes a page size, and switching to WAL
    # writes the first page, so this comes first.
    connection.execute(f"PRAGMA page_size = {_NEW_FILE_PAGE_BYTES}")
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        logger.warning("event store journal mode is %s, not wal", mode)
    connection.execute("PRAGMA foreign_keys = ON")
    # With WAL, NORMAL keeps committed data through an app crash, but the
    # last commits can roll back after a power loss or an OS crash.
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")


@contextmanager
def _bulk_cache(connection: sqlite3.Connection) -> Iterator[None]:
    """Enlarge the page cache for the duration of an import."""
    previous = connection.execute("PRAGMA cache_size").fetchone()[0]
    connection.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    try:
        yield
    finally:
        connection.execute(f"PRAGMA cache_size = {int(previous)}")


def _check_hash_scheme(connection: sqlite3.Connection) -> None:
    row = connection.execute(
        "SELECT value FROM meta WHERE key = 'row_hash_scheme'"
    ).fetchone()
    if row is not None and row[0] == ROW_HASH_SCHEME:
        return
    logger.info("row hash scheme changed to %s: rehashing events", ROW_HASH_SCHEME)
    connection.execute("BEGIN IMMEDIATE")
    try:
        rehash_events(connection)
        connection.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('row_hash_scheme', ?)",
            (ROW_HASH_SCHEME,),
        )
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def rehash_events(connection: sqlite3.Connection) -> None:
    """Recompute ``row_hash`` of every timed event from its stored values.

    Runs inside the caller's transaction.
    """
    connection.execute("UPDATE event_rows SET row_hash = NULL")
    for batch in _timed_event_batches(connection):
        ids = [row[0] for row in batch]
        hashes = row_hashes(columns_from_rows([row[1:] for row in batch]))
        connection.executemany(
            "UPDATE OR IGNORE event_rows SET row_hash = ? WHERE id = ?",
            zip(hashes.tolist(), ids, strict=True),
        )


def _timed_event_batches(
    connection: sqlite3.Connection,
) -> Iterator[list[tuple[object, ...]]]:
    last_id = 0
    query = (
        f"SELECT id, {', '.join(EVENT_COLUMNS)} FROM events "
        "WHERE id > ? AND event_time IS NOT NULL ORDER BY id LIMIT ?"
    )
    while batch := connection.execute(query, (last_id, _REHASH_ROWS)).fetchall():
        yield batch
        last_id = int(batch[-1][0])
