"""Import of event CSV files (REES46 or slim layout) into the store.

An import runs in one transaction: it lands whole or not at all. A reading
thread reads the file in chunks (``chunk_reader``) and hands each to one of
two parsing threads: plain chunks are converted straight from their bytes
with numpy (``byte_parse``), and from the first chunk that is not plain on,
pandas reads every field as text and ``chunk_parse`` converts it. The
parsing threads also hash the rows. The reading thread then gives new
category codes and brands their ids, in file order, and queues the chunk.
The calling thread inserts each chunk while the next ones are parsed:
through the C module's ``merchant_rows`` function (``native_rows``), or,
where that is unavailable, with multi-row INSERT statements bound from
Python (``bulk_insert``). At most a few chunks are in memory, so memory
stays flat as files grow.

pandas does not read the ids as int64, because with ``dtype="int64"`` it
accepts ` 5`, `+5` and `5.0`, and when one value of a chunk is `1e3` it reads
the whole column through float64, which rounds 19-digit ids (pandas 3.1).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from merchant_app.errors import Cancelled, InvalidRowError
from merchant_app.store import native_rows
from merchant_app.store.bulk_insert import (
    PRODUCT_COLUMNS,
    NameIdColumns,
    NameIds,
    PreparedRows,
    RowBlocks,
    event_arrays,
    event_columns,
    event_insert,
    max_variables,
    product_arrays,
    product_upsert,
)
from merchant_app.store.byte_parse import parse_fields
from merchant_app.store.chunk_parse import ParsedChunk, parse_chunk
from merchant_app.store.chunk_reader import (
    ByteChunk,
    FrameChunk,
    Header,
    read_chunks,
    read_header,
    unreadable,
)
from merchant_app.store.hashing import IntArray, row_hashes
from merchant_app.store.layouts import LAYOUT_COLUMNS, Layout, detect_layout
from merchant_app.store.native_rows import ColumnBatch, ColumnData
from merchant_app.store.report import (
    ImportMode,
    ImportProgress,
    ImportReport,
    RejectedRow,
)
from merchant_app.store.schema import NAME_TABLES

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[ImportProgress], None]
CancelSignal = threading.Event | Callable[[], bool]

DEFAULT_CHUNK_ROWS = 50_000
_READ_BLOCK_BYTES = 1 << 20
_CANCEL_POLL_SECONDS = 0.05
# Threads that parse chunks. Importing 1M events took 1.55 to 1.7 s with
# two, 1.7 to 1.8 s with one and 1.65 to 1.75 s with three (2 cores).
_PARSE_WORKERS = 2
# Prepared chunks waiting for the inserting thread. One is enough to keep
# it busy (two were not faster), and each one costs memory.
_QUEUED_CHUNKS = 1


def import_csv(
    connection: sqlite3.Connection,
    path: str | Path,
    *,
    mode: ImportMode = ImportMode.STRICT,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ImportReport:
    """Import the events of a CSV file and return what was added and skipped.

    Raises InvalidRowError (an InputDataError) for an invalid file or, in
    strict mode, the first invalid row. Raises Cancelled when ``cancel`` is
    set. In both cases the database is left as it was. ``connection`` must be
    in autocommit mode (``isolation_level=None``) with no open transaction.
    """
    path = Path(path)
    size = _file_size(path)
    header = read_header(path)
    layout = detect_layout(header.fields, file_name=path.name)
    file_import = _FileImport(
        path=path,
        size=size,
        header=header,
        layout=layout,
        mode=mode,
        progress=progress,
        cancel=cancel,
        chunk_rows=chunk_rows,
    )

    with _FileDigest(path) as digest, _foreign_keys_off(connection):
        connection.execute("BEGIN IMMEDIATE")
        try:
            report = _import_in_transaction(connection, file_import, digest)
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("ROLLBACK" if report.already_imported else "COMMIT")

    if report.already_imported:
        logger.info(
            "import skipped, same content as import %d: %s", report.import_id, path
        )
    else:
        logger.info(
            "import %d done: %s, %d rows added, %d duplicates, %d rejected",
            report.import_id,
            path.name,
            report.rows_added,
            report.duplicates,
            report.rejected_count,
        )
    return report


@dataclass(frozen=True, slots=True)
class _FileImport:
    """The file an import reads and how the caller asked to import it."""

    path: Path
    size: int
    header: Header
    layout: Layout
    mode: ImportMode
    progress: ProgressCallback | None
    cancel: CancelSignal | None
    chunk_rows: int


def _import_in_transaction(
    connection: sqlite3.Connection, file_import: _FileImport, digest: _FileDigest
) -> ImportReport:
    """Load the file inside the caller's transaction and return the report.

    The parsing thread starts before the file's SHA-256 is known, so both run
    at once. A file with the content of an earlier import returns a report
    with ``already_imported`` set, and the caller rolls back.
    """
    path = file_import.path
    plan = _ChunkPlan.create(connection, file_import)
    with _ChunkProducer(plan) as chunks:
        sha256 = digest.result(file_import.cancel)
        earlier = connection.execute(
            "SELECT id FROM imports WHERE sha256 = ?", (sha256,)
        ).fetchone()
        if earlier is not None:
            report = ImportReport(
                file_name=path.name, sha256=sha256, layout=None, mode=file_import.mode
            )
            report.already_imported = True
            report.import_id = int(earlier[0])
            return report

        report = ImportReport(
            file_name=path.name,
            sha256=sha256,
            layout=file_import.layout,
            mode=file_import.mode,
        )
        columns = set(LAYOUT_COLUMNS[file_import.layout])
        report.ignored_columns = [
            name for name in file_import.header.fields if name.strip() not in columns
        ]
        report.import_id = _insert_import_row(connection, report)
        first_new_id = _max_event_id(connection) + 1
        loaded = _insert_chunks(connection, chunks, file_import, report)
    _count_new_rows(connection, report, first_new_id, loaded)
    _finish_import_row(connection, report)
    return report


def is_cancelled(cancel: CancelSignal | None) -> bool:
    """Return True when the cancel event is set or the callback returns True."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise unreadable(path, exc) from exc


class _FileDigest:
    """The SHA-256 of a file, computed in a thread while the import starts.

    hashlib releases the GIL while it hashes a large block, so the digest
    (about 0.1 s for the 125 MiB of 1M events) runs alongside the parsing of
    the first chunks instead of before it. Leaving the ``with`` block stops
    the thread and waits for it.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self._done = threading.Event()
        self._digest: str | None = None
        self._error: OSError | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"import-sha256-{path.name}", daemon=True
        )

    def __enter__(self) -> _FileDigest:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self, cancel: CancelSignal | None) -> str:
        """Wait for the digest, checking ``cancel`` in the calling thread.

        Raises Cancelled when ``cancel`` is set, and InputDataError when the
        file cannot be read.
        """
        while not self._done.wait(_CANCEL_POLL_SECONDS):
            if is_cancelled(cancel):
                raise Cancelled(f"import of {self._path.name} cancelled")
        if is_cancelled(cancel):
            raise Cancelled(f"import of {self._path.name} cancelled")
        if self._error is not None:
            raise unreadable(self._path, self._error) from self._error
        assert self._digest is not None
        return self._digest

    def _run(self) -> None:
        digest = hashlib.sha256()
        try:
            with self._path.open("rb") as stream:
                while block := stream.read(_READ_BLOCK_BYTES):
                    if self._stop.is_set():
                        return
                    digest.update(block)
            self._digest = digest.hexdigest()
        except OSError as exc:
            # Raised in the calling thread by result().
            self._error = exc
        finally:
            self._done.set()


def _insert_import_row(connection: sqlite3.Connection, report: ImportReport) -> int:
    assert report.layout is not None
    cursor = connection.execute(
        "INSERT INTO imports (file_name, sha256, layout, mode, started_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            report.file_name,
            report.sha256,
            report.layout.value,
            report.mode.value,
            _now(),
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


@contextlib.contextmanager
def _foreign_keys_off(connection: sqlite3.Connection) -> Iterator[None]:
    """Turn off SQLite's foreign key checks for the import's transaction.

    Every event row of an import refers to the import row made in the same
    transaction, whose id is a constant in the SQL text. Its category code
    and brand ids are inserted before it. So the per-row checks would always
    pass, and they cost about 15% of the insert's CPU time (1M events of
    benchmarks/import_speed.py, SQLite 3.40). The pragma has no effect
    inside a transaction, so it is set before BEGIN and after COMMIT.
    """
    enabled = int(connection.execute("PRAGMA foreign_keys").fetchone()[0])
    connection.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        connection.execute(f"PRAGMA foreign_keys = {enabled}")


def _max_event_id(connection: sqlite3.Connection) -> int:
    return int(
        connection.execute("SELECT coalesce(max(id), 0) FROM event_rows").fetchone()[0]
    )


def _insert_chunks(
    connection: sqlite3.Connection,
    chunks: _ChunkProducer,
    file_import: _FileImport,
    report: ImportReport,
) -> _LoadedRows:
    """Insert the chunks that the parsing threads read, validate and prepare.

    The parsing of later chunks overlaps the insert of chunk k: numpy,
    pandas' tokenizer and SQLite's step release the GIL. The queue contains
    at most _QUEUED_CHUNKS prepared chunks, so memory stays flat. Report,
    progress and cancel are handled in the calling thread.
    """
    assert report.import_id is not None
    limit = max_variables(connection)
    events = event_insert(
        timed=file_import.layout is Layout.REES46,
        import_id=report.import_id,
        max_variables=limit,
        native=chunks.native,
    )
    products = product_upsert(max_variables=limit, native=chunks.native)
    path = file_import.path
    loaded = _LoadedRows()
    for chunk in chunks:
        if is_cancelled(file_import.cancel):
            raise Cancelled(f"import of {path.name} cancelled")
        if chunk.rejected and report.mode is ImportMode.STRICT:
            raise _rejected_error(path, chunk.rejected[0])
        report.add_rejected(chunk.rejected)
        report.blank_lines += chunk.blank_lines
        report.rows_read += chunk.rows - chunk.blank_lines

        for table, added in chunk.new_names:
            connection.executemany(
                f"INSERT INTO {table} (id, name) VALUES (?, ?)", added
            )
        # INSERT OR IGNORE counts no change for a skipped duplicate.
        changes_before = connection.total_changes
        events.run(connection, chunk.events)
        loaded.added += connection.total_changes - changes_before
        loaded.negative_prices_read += chunk.negative_prices
        products.run(connection, chunk.products)
        if file_import.progress is not None:
            file_import.progress(
                ImportProgress(report.rows_read, chunk.bytes_done, file_import.size)
            )
    return loaded


@dataclass(slots=True)
class _LoadedRows:
    """Events inserted by an import, and valid rows read with a negative price."""

    added: int = 0
    negative_prices_read: int = 0


@dataclass(slots=True)
class _PreparedChunk:
    """A parsed chunk: insert parameters, new names, rejected rows and counts.

    ``new_names`` lists per dictionary table the (id, name) pairs to insert
    before the chunk's events.
    """

    events: PreparedRows | ColumnBatch
    products: PreparedRows | ColumnBatch
    new_names: list[tuple[str, list[tuple[int, str]]]]
    rejected: list[RejectedRow]
    rows: int
    blank_lines: int
    negative_prices: int
    bytes_done: int


@dataclass(slots=True)
class _ChunkPlan:
    """The parsing side's input file, layout and parameter grouping.

    ``names`` are the category code and brand ids, in NAME_TABLES order. The
    reading thread alone uses them once the import starts. With ``native``
    the chunks are prepared as ColumnBatch objects for merchant_rows
    (native_rows.py), else as parameter lists grouped by ``events`` and
    ``products``.
    """

    path: Path
    header: Header
    layout: Layout
    chunk_rows: int
    native: bool
    events: RowBlocks
    products: RowBlocks
    names: list[NameIds]

    def prepare(
        self, blocks: RowBlocks, columns: list[ColumnData]
    ) -> PreparedRows | ColumnBatch:
        """Return the rows of ``columns`` in the form the inserting thread needs."""
        return ColumnBatch(columns) if self.native else blocks.prepare(columns)

    @classmethod
    def create(
        cls, connection: sqlite3.Connection, file_import: _FileImport
    ) -> _ChunkPlan:
        """Plan the import of ``file_import``, inside its transaction."""
        limit = max_variables(connection)
        timed = file_import.layout is Layout.REES46
        return cls(
            path=file_import.path,
            header=file_import.header,
            layout=file_import.layout,
            chunk_rows=file_import.chunk_rows,
            native=native_rows.usable(connection),
            events=RowBlocks.fit(len(event_columns(timed=timed)), limit),
            products=RowBlocks.fit(len(PRODUCT_COLUMNS), limit),
            names=[NameIds.load(connection, table) for table in NAME_TABLES],
        )


@dataclass(slots=True)
class _ParsedWork:
    """A parsed chunk with its row hashes (REES46 only) and product rows."""

    parsed: ParsedChunk
    hashes: IntArray | None
    products: PreparedRows | ColumnBatch
    bytes_done: int


def _records(chunk: ByteChunk | FrameChunk) -> int:
    """Return the number of records of a chunk, blank ones included."""
    if isinstance(chunk, ByteChunk):
        return chunk.bounds.rows
    return len(chunk.frame)


class _ChunkProducer:
    """A thread that reads, parses and prepares chunks into a bounded queue.

    Iterate to receive the chunks in file order. An exception of the thread
    is raised in the iterating thread. Leaving the ``with`` block stops the
    thread and waits for it.
    """

    def __init__(self, plan: _ChunkPlan) -> None:
        self._plan = plan
        self._queue: queue.Queue[_PreparedChunk | BaseException | None] = queue.Queue(
            maxsize=_QUEUED_CHUNKS
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"import-parse-{plan.path.name}", daemon=True
        )

    @property
    def native(self) -> bool:
        """True when the chunks are ColumnBatch objects (see _ChunkPlan)."""
        return self._plan.native

    def __enter__(self) -> _ChunkProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        # Unblock a thread waiting on a full queue, then wait for it to end.
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def __iter__(self) -> Iterator[_PreparedChunk]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # noqa: BLE001 - raised again by __iter__
            self._put(exc)
            return
        self._put(None)

    def _produce(self) -> None:
        """Read chunks here, parse them in the pool, and prepare them in order.

        Reading and cutting a chunk into lines takes a fifth of the parsing
        time. The rest, mostly numpy, which releases the GIL, runs in
        _PARSE_WORKERS threads. Names get their ids here, in file order, so
        new names are numbered as in a single-threaded import.
        """
        plan = self._plan
        chunks = read_chunks(plan.path, plan.header, plan.chunk_rows)
        pending: collections.deque[Future[_ParsedWork]] = collections.deque()
        with (
            contextlib.closing(chunks),
            ThreadPoolExecutor(
                _PARSE_WORKERS, thread_name_prefix=f"import-parse-{plan.path.name}"
            ) as pool,
        ):
            try:
                next_line = 2
                while (chunk := self._read_next(chunks, pending)) is not None:
                    pending.append(pool.submit(self._parse, chunk, next_line))
                    # NOTE: pandas chunks count records, so a quoted field
                    # that spans lines makes later line numbers smaller than
                    # the physical ones.
                    next_line += _records(chunk)
                    if len(pending) >= _PARSE_WORKERS and not self._put_next(pending):
                        return
                while pending:
                    if not self._put_next(pending):
                        return
            finally:
                for future in pending:
                    future.cancel()

    def _read_next(
        self,
        chunks: Iterator[ByteChunk | FrameChunk],
        pending: collections.deque[Future[_ParsedWork]],
    ) -> ByteChunk | FrameChunk | None:
        """Return the next chunk, or None at the end of the file.

        When the file cannot be read further, the chunks before that point
        are queued first and the error is raised after them, so a strict
        import reports the first bad line in file order.
        """
        try:
            return next(chunks)
        except StopIteration:
            return None
        except Exception:
            while pending:
                if not self._put_next(pending):
                    break
            raise

    def _put_next(self, pending: collections.deque[Future[_ParsedWork]]) -> bool:
        """Prepare the oldest parsed chunk and queue it; False if stopped."""
        return self._put(self._prepare(pending.popleft().result()))

    def _parse(self, chunk: ByteChunk | FrameChunk, first_line: int) -> _ParsedWork:
        """Parse a chunk and compute what does not depend on other chunks."""
        plan = self._plan
        if isinstance(chunk, ByteChunk):
            positions = {
                name.strip(): index for index, name in enumerate(plan.header.fields)
            }
            parsed = parse_fields(
                chunk.data,
                chunk.bounds,
                positions=positions,
                layout=plan.layout,
                first_line=first_line,
            )
        else:
            parsed = parse_chunk(chunk.frame, layout=plan.layout, first_line=first_line)
        columns = parsed.columns
        products = product_arrays(columns)
        return _ParsedWork(
            parsed=parsed,
            hashes=row_hashes(columns) if plan.layout is Layout.REES46 else None,
            products=plan.prepare(plan.products, products),
            bytes_done=chunk.bytes_done,
        )

    def _prepare(self, work: _ParsedWork) -> _PreparedChunk:
        plan = self._plan
        parsed = work.parsed
        columns = parsed.columns
        category_codes, brands = plan.names
        code_ids, new_codes = category_codes.encode(columns.category_code)
        brand_ids, new_brands = brands.encode(columns.brand)
        events = event_arrays(
            columns, NameIdColumns(code_ids, brand_ids), hashes=work.hashes
        )
        return _PreparedChunk(
            events=plan.prepare(plan.events, events),
            products=work.products,
            new_names=[
                (category_codes.table, new_codes),
                (brands.table, new_brands),
            ],
            rejected=parsed.rejected,
            rows=parsed.rows,
            blank_lines=parsed.blank_lines,
            negative_prices=int(
                np.count_nonzero((columns.price < 0) & ~columns.price_null)
            ),
            bytes_done=work.bytes_done,
        )

    def _put(self, item: _PreparedChunk | BaseException | None) -> bool:
        """Queue ``item`` unless the consumer stopped; return False if it did."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False


def _rejected_error(path: Path, rejected: RejectedRow) -> InvalidRowError:
    return InvalidRowError(
        f"{path.name}: {rejected.describe()}. Fix the row, or import with "
        "skip-bad-rows to leave such rows out. Nothing was imported",
        line=rejected.line,
        column=rejected.column,
        value=rejected.value,
        user_message=(
            f"Line {rejected.line} of {path.name} has an invalid "
            f"{rejected.column}: {rejected.value!r}. Nothing was imported."
        ),
    )


def _count_new_rows(
    connection: sqlite3.Connection,
    report: ImportReport,
    first_new_id: int,
    loaded: _LoadedRows,
) -> None:
    report.rows_added = loaded.added
    report.negative_prices = 0
    # Only added rows count, and a duplicate may have had a negative price,
    # so the new rows are counted in the table, which is rarely needed.
    if loaded.negative_prices_read:
        report.negative_prices = int(
            connection.execute(
                "SELECT count(*) FROM event_rows WHERE id >= ? AND negative_price = 1",
                (first_new_id,),
            ).fetchone()[0]
        )
    report.duplicates = report.rows_read - report.rejected_count - report.rows_added


def _finish_import_row(connection: sqlite3.Connection, report: ImportReport) -> None:
    connection.execute(
        "UPDATE imports SET rows_read = ?, rows_added = ?, duplicates = ?, "
        "rejected = ?, negative_prices = ?, finished_at = ? WHERE id = ?",
        (
            report.rows_read,
            report.rows_added,
            report.duplicates,
            report.rejected_count,
            report.negative_prices,
            _now(),
            report.import_id,
        ),
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
