"""Import of event CSV files (REES46 or slim layout) into the store.

An import runs in one transaction: it lands whole or not at all. A parsing
thread reads the file in chunks with pandas (every field as text), validates
each chunk with numpy and prepares its parameters. The calling thread inserts
the chunks with multi-row INSERT statements (``bulk_insert``) while the next
chunk is parsed. At most a few chunks are in memory, so memory stays flat as
files grow.

pandas does not read the ids as int64, because with ``dtype="int64"`` it
accepts ` 5`, `+5` and `5.0`, and when one value of a chunk is `1e3` it reads
the whole column through float64, which rounds 19-digit ids (pandas 3.1).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import logging
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from merchant_app.errors import Cancelled, InputDataError, InvalidRowError
from merchant_app.store.bulk_insert import (
    MultiRowInsert,
    PreparedRows,
    event_arrays,
    event_insert,
    max_variables,
    product_arrays,
    product_upsert,
)
from merchant_app.store.chunk_parse import parse_chunk
from merchant_app.store.layouts import (
    LAYOUT_COLUMNS,
    Layout,
    check_delimiter,
    describe_layouts,
    detect_layout,
)
from merchant_app.store.report import (
    ImportMode,
    ImportProgress,
    ImportReport,
    RejectedRow,
)
from merchant_app.store.schema import BULK_INDEXES, create_bulk_indexes

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[ImportProgress], None]
CancelSignal = threading.Event | Callable[[], bool]

DEFAULT_CHUNK_ROWS = 50_000
# A file this many times larger (in estimated rows) than the stored events
# is loaded with the secondary indexes dropped, and they are rebuilt at the end.
_BULK_RATIO = 1.0
_MIN_BULK_ROWS = 50_000
_INDEX_BUILD_CACHE_KIB = 2 * 1024
_HEADER_SAMPLE_BYTES = 1 << 16
_READ_BLOCK_BYTES = 1 << 20
# Prepared chunks waiting for the inserting thread. One is enough to keep
# both threads busy, and each one costs memory.
_QUEUED_CHUNKS = 1

_PANDAS_LINE_RE = re.compile(r"line (\d+)")


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
    digest = _sha256(path, cancel=cancel)
    report = ImportReport(file_name=path.name, sha256=digest, layout=None, mode=mode)

    # Same content as an earlier import, so there is nothing to add.
    earlier = connection.execute(
        "SELECT id FROM imports WHERE sha256 = ?", (digest,)
    ).fetchone()
    if earlier is not None:
        report.already_imported = True
        report.import_id = int(earlier[0])
        logger.info("import skipped, same content as import %d: %s", earlier[0], path)
        return report

    header, bytes_per_line = _read_header(path)
    report.layout = detect_layout(header, file_name=path.name)
    layout_columns = set(LAYOUT_COLUMNS[report.layout])
    report.ignored_columns = [n for n in header if n.strip() not in layout_columns]

    connection.execute("BEGIN IMMEDIATE")
    try:
        report.import_id = _insert_import_row(connection, report)
        first_new_id = _max_event_id(connection) + 1
        bulk = _drop_indexes_for_bulk(connection, size / bytes_per_line)
        loaded = _load_chunks(
            connection,
            path,
            report=report,
            size=size,
            progress=progress,
            cancel=cancel,
            chunk_rows=chunk_rows,
        )
        if bulk:
            _rebuild_indexes(connection)
        _count_new_rows(connection, report, first_new_id, loaded)
        _finish_import_row(connection, report)
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")

    logger.info(
        "import %d done: %s, %d rows added, %d duplicates, %d rejected",
        report.import_id,
        path.name,
        report.rows_added,
        report.duplicates,
        report.rejected_count,
    )
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
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: OSError) -> InputDataError:
    return InputDataError(
        f"cannot read {path}: {exc.strerror}. Check the path and its permissions",
        user_message=f"The file {path.name} cannot be read.",
    )


def _sha256(path: Path, *, cancel: CancelSignal | None) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while block := stream.read(_READ_BLOCK_BYTES):
                if is_cancelled(cancel):
                    raise Cancelled(f"import of {path.name} cancelled")
                digest.update(block)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    return digest.hexdigest()


def _read_header(path: Path) -> tuple[list[str], float]:
    """Return the header fields and the mean bytes per line of the file's start."""
    with path.open("rb") as stream:
        sample = stream.read(_HEADER_SAMPLE_BYTES)
    text = _decode_sample(sample, path)
    if text.strip() == "":
        raise InvalidRowError(
            f"{path.name} is empty: expected a header line and event rows. "
            f"Expected layouts: {describe_layouts()}",
            line=1,
            user_message=f"The file {path.name} is empty.",
        )
    lines = text.splitlines()
    check_delimiter(lines[0], file_name=path.name)
    header = next(csv.reader([lines[0]]))
    if len(lines) > 2:
        _check_first_row_width(lines[1], len(header), path)
    line_breaks = max(sample.count(b"\n"), 1)
    return header, len(sample) / line_breaks


def _check_first_row_width(line: str, width: int, path: Path) -> None:
    """Raise when the first row has more fields than the header.

    pandas would read such a file with the first column as a row index, so
    every column would shift by one. Later rows raise ParserError instead.
    """
    fields = next(csv.reader([line]), [])
    if len(fields) > width:
        raise InvalidRowError(
            f"{path.name}: line 2: expected {width} fields as in the header, "
            f"saw {len(fields)}. Check the delimiters and quotes in that line",
            line=2,
            user_message=f"Line 2 of {path.name} has more fields than the header.",
        )


def _decode_sample(sample: bytes, path: Path) -> str:
    try:
        return sample.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The sample may end inside a multi-byte character: that is no error.
        if exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return sample[: exc.start].decode("utf-8-sig")
        raise _not_utf8(path, exc) from exc


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> InputDataError:
    return InputDataError(
        f"{path.name} is not UTF-8 text: invalid byte at offset about {exc.start}. "
        "Save the file as UTF-8 CSV and import it again",
        user_message=f"The file {path.name} is not UTF-8 text. Save it as UTF-8.",
    )


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


def _max_event_id(connection: sqlite3.Connection) -> int:
    return int(
        connection.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    )


def _drop_indexes_for_bulk(
    connection: sqlite3.Connection, expected_rows: float
) -> bool:
    """Drop the secondary indexes when the file is large next to the table."""
    stored = _max_event_id(connection)
    if expected_rows < max(_MIN_BULK_ROWS, stored * _BULK_RATIO):
        return False
    for name in BULK_INDEXES:
        connection.execute(f"DROP INDEX IF EXISTS {name}")
    logger.debug(
        "bulk import: secondary indexes dropped for about %d rows", expected_rows
    )
    return True


def _rebuild_indexes(connection: sqlite3.Connection) -> None:
    """Create the dropped indexes with a small page cache.

    SQLite's sorter keeps up to a page cache's worth of index entries in
    memory, so a small cache keeps the memory of a large import flat. It was
    also the fastest: on 600,000 events (SQLite 3.40), building both indexes
    took 0.6 s of CPU time with 2 MiB and 0.85 s with 64 MiB, because the
    sorter's runs then fit in the CPU caches.
    """
    previous = connection.execute("PRAGMA cache_size").fetchone()[0]
    connection.execute(f"PRAGMA cache_size = -{_INDEX_BUILD_CACHE_KIB}")
    try:
        create_bulk_indexes(connection)
    finally:
        connection.execute(f"PRAGMA cache_size = {int(previous)}")


def _load_chunks(
    connection: sqlite3.Connection,
    path: Path,
    *,
    report: ImportReport,
    size: int,
    progress: ProgressCallback | None,
    cancel: CancelSignal | None,
    chunk_rows: int,
) -> _LoadedRows:
    """Insert the chunks that a parsing thread reads, validates and prepares.

    The parsing of chunk k + 1 overlaps the insert of chunk k: pandas'
    tokenizer, numpy and SQLite's step release the GIL. The queue contains at
    most _QUEUED_CHUNKS prepared chunks, so memory stays flat. Report,
    progress and cancel are handled in the calling thread.
    """
    assert report.layout is not None and report.import_id is not None
    timed = report.layout is Layout.REES46
    limit = max_variables(connection)
    events = event_insert(timed=timed, import_id=report.import_id, max_variables=limit)
    products = product_upsert(max_variables=limit)
    loaded = _LoadedRows()
    with _ChunkProducer(path, report.layout, chunk_rows, events, products) as chunks:
        for chunk in chunks:
            if is_cancelled(cancel):
                raise Cancelled(f"import of {path.name} cancelled")
            if chunk.rejected and report.mode is ImportMode.STRICT:
                raise _rejected_error(path, chunk.rejected[0])
            report.add_rejected(chunk.rejected)
            report.blank_lines += chunk.blank_lines
            report.rows_read += chunk.rows - chunk.blank_lines

            # NOTE: this insert is the largest remaining cost, about 2 s of CPU
            # time per 1M events, most of it binding 10 parameters per row.
            # INSERT OR IGNORE counts no change for a skipped duplicate.
            changes_before = connection.total_changes
            events.run(connection, chunk.events)
            loaded.added += connection.total_changes - changes_before
            loaded.negative_prices_read += chunk.negative_prices
            products.run(connection, chunk.products)
            if progress is not None:
                progress(ImportProgress(report.rows_read, chunk.bytes_done, size))
    return loaded


@dataclass(slots=True)
class _LoadedRows:
    """Events inserted by an import, and valid rows read with a negative price."""

    added: int = 0
    negative_prices_read: int = 0


@dataclass(slots=True)
class _PreparedChunk:
    """A parsed chunk: insert parameters, rejected rows and counts."""

    events: PreparedRows
    products: PreparedRows
    rejected: list[RejectedRow]
    rows: int
    blank_lines: int
    negative_prices: int
    bytes_done: int


class _ChunkProducer:
    """A thread that reads, parses and prepares chunks into a bounded queue.

    Iterate to receive the chunks in file order. An exception of the thread
    is raised in the iterating thread. Leaving the ``with`` block stops the
    thread and waits for it.
    """

    def __init__(
        self,
        path: Path,
        layout: Layout,
        chunk_rows: int,
        events: MultiRowInsert,
        products: MultiRowInsert,
    ) -> None:
        self._path = path
        self._layout = layout
        self._chunk_rows = chunk_rows
        self._events = events
        self._products = products
        self._queue: queue.Queue[_PreparedChunk | BaseException | None] = queue.Queue(
            maxsize=_QUEUED_CHUNKS
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"import-parse-{path.name}", daemon=True
        )

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
        timed = self._layout is Layout.REES46
        with (
            _CountingFile(self._path) as counter,
            contextlib.closing(
                _read_chunks(counter, self._path, self._layout, self._chunk_rows)
            ) as frames,
        ):
            next_line = 2
            for frame in frames:
                # NOTE: this counts records, so a quoted field that spans lines
                # makes later line numbers smaller than the physical ones.
                parsed = parse_chunk(frame, layout=self._layout, first_line=next_line)
                next_line += len(frame)
                columns = parsed.columns
                chunk = _PreparedChunk(
                    events=self._events.prepare(event_arrays(columns, timed=timed)),
                    products=self._products.prepare(product_arrays(columns)),
                    rejected=parsed.rejected,
                    rows=len(frame),
                    blank_lines=parsed.blank_lines,
                    negative_prices=int(
                        np.count_nonzero((columns.price < 0) & ~columns.price_null)
                    ),
                    bytes_done=counter.bytes_read,
                )
                if not self._put(chunk):
                    return

    def _put(self, item: _PreparedChunk | BaseException | None) -> bool:
        """Queue ``item`` unless the consumer stopped; return False if it did."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False


def _read_chunks(
    stream: _CountingFile, path: Path, layout: Layout, chunk_rows: int
) -> Generator[pd.DataFrame, None, None]:
    """Yield chunks of the file with every field as text.

    Column names are stripped of spaces. Parser errors become InputDataError.
    """
    try:
        reader = pd.read_csv(
            stream,
            dtype=object,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
            index_col=False,
            chunksize=chunk_rows,
        )
        with reader:
            for frame in reader:
                frame.columns = [str(name).strip() for name in frame.columns]
                yield frame
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from exc
    except pd.errors.ParserError as exc:
        match = _PANDAS_LINE_RE.search(str(exc))
        line = int(match.group(1)) if match else None
        raise InvalidRowError(
            f"{path.name}: line {line}: the row cannot be read as CSV ({exc}). "
            "Check the number of fields and the quotes in that line",
            line=line,
            user_message=f"Line {line} of {path.name} is not valid CSV.",
        ) from exc


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
                "SELECT count(*) FROM events WHERE id >= ? AND negative_price = 1",
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


class _CountingFile(io.BufferedReader):
    """A binary file that counts the bytes read from disk, for progress."""

    def __init__(self, path: Path) -> None:
        super().__init__(io.FileIO(path, "rb"), buffer_size=_READ_BLOCK_BYTES)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        data = super().read1(size)
        self.bytes_read += len(data)
        return data
