"""Hand numpy columns to SQLite through the ``merchant_rows`` table function.

``_rowsource.c`` defines an SQLite virtual table that reads registered
arrays. ``install`` registers it, with ``sqlite3_auto_extension``, on every
connection the process opens afterwards. The import then loads a chunk with
one ``INSERT ... SELECT ... FROM merchant_rows(?)`` statement: SQLite reads
the values from a copy of the arrays, no Python object is made per value, and
Python's sqlite3 releases the GIL while the statement runs.

The function must be registered through the very SQLite library that
Python's ``sqlite3`` module uses: two copies of SQLite in one process can
corrupt a database (https://www.sqlite.org/howtocorrupt.html, section 2.2).
So ``install`` looks ``sqlite3_auto_extension`` up through the handle of
``_sqlite3`` itself, which the dynamic linker resolves in that module and
the libraries it links, and then checks that a new connection has the
function. Where that is not possible (the C module not built, no such
symbol, as on Windows, or a check that fails), ``install`` returns False
and the import binds its values from Python (``bulk_insert.MultiRowInsert``),
which gives the same rows.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from merchant_app.store.hashing import BoolArray, TextColumn

logger = logging.getLogger(__name__)

# Column kinds of _rowsource.c.
_INT64 = 1
_FLOAT64 = 2
_TEXT = 3
# Columns c0 .. c15 of merchant_rows, and batches registered at once.
MAX_COLUMNS = 16
_SLOTS = 64


@dataclass(frozen=True, slots=True)
class NumberColumn:
    """An int64 or float64 column with an optional NULL mask."""

    values: npt.NDArray[np.int64] | npt.NDArray[np.float64]
    null: BoolArray | None = None

    def __len__(self) -> int:
        return len(self.values)


ColumnData = NumberColumn | TextColumn


class _Column(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int32),
        ("values", ctypes.c_void_p),
        ("nulls", ctypes.c_void_p),
        ("text", ctypes.c_void_p),
        ("text_size", ctypes.c_int64),
        ("text_starts", ctypes.c_void_p),
        ("text_lengths", ctypes.c_void_p),
        ("text_count", ctypes.c_int64),
    ]


class _Batch(ctypes.Structure):
    _fields_ = [
        ("rows", ctypes.c_int64),
        ("columns", ctypes.c_int32),
        ("column", ctypes.POINTER(_Column)),
    ]


class ColumnBatch:
    """Columns of equal length in the memory layout ``merchant_rows`` reads.

    Keeps the arrays it points to until it is registered, when the C module
    copies them. Built on the import's parsing side and used, through
    ``registered``, in the inserting thread.
    """

    def __init__(self, columns: Sequence[ColumnData]) -> None:
        if len(columns) > MAX_COLUMNS:
            raise ValueError(
                f"merchant_rows has {MAX_COLUMNS} columns, got {len(columns)}"
            )
        lengths = {len(column) for column in columns}
        if len(lengths) > 1:
            raise ValueError(f"columns of a batch differ in length: {sorted(lengths)}")
        self.rows = lengths.pop() if lengths else 0
        self._keep: list[object] = []
        self._columns = (_Column * max(len(columns), 1))()
        for index, column in enumerate(columns):
            self._columns[index] = self._describe(column)
        self._batch = _Batch(self.rows, len(columns), self._columns)

    def _describe(self, column: ColumnData) -> _Column:
        if isinstance(column, TextColumn):
            codes = self._hold(np.ascontiguousarray(column.codes, dtype=np.int64))
            texts = column.utf8_texts()
            if len(texts.starts) != len(texts.lengths):
                raise ValueError(
                    f"text starts and lengths differ in length: "
                    f"{len(texts.starts)} and {len(texts.lengths)}"
                )
            starts = self._hold(np.ascontiguousarray(texts.starts, dtype=np.int64))
            lengths = self._hold(np.ascontiguousarray(texts.lengths, dtype=np.int64))
            self._keep.append(texts.data)
            return _Column(
                kind=_TEXT,
                values=codes.ctypes.data,
                text=_address(texts.data),
                text_size=len(texts.data),
                text_starts=starts.ctypes.data,
                text_lengths=lengths.ctypes.data,
                text_count=len(starts),
            )
        kind = _FLOAT64 if column.values.dtype.kind == "f" else _INT64
        dtype = np.float64 if kind == _FLOAT64 else np.int64
        values = self._hold(np.ascontiguousarray(column.values, dtype=dtype))
        nulls = None
        if column.null is not None and len(column.null) != len(values):
            raise ValueError(
                f"a NULL mask of {len(column.null)} rows for {len(values)} values"
            )
        if column.null is not None and column.null.any():
            nulls = self._hold(np.ascontiguousarray(column.null, dtype=np.uint8))
        return _Column(
            kind=kind,
            values=values.ctypes.data,
            nulls=None if nulls is None else nulls.ctypes.data,
        )

    def _hold(self, array: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
        self._keep.append(array)
        return array

    def registered(self) -> _Registration:
        """Return a context manager that gives the batch's token while registered."""
        return _Registration(self)


def _address(data: bytes) -> int | None:
    """Return the address of the bytes inside a bytes object (None if empty)."""
    if not data:
        return None
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value


class _Registration:
    def __init__(self, batch: ColumnBatch) -> None:
        self._batch = batch
        self.token = 0

    def __enter__(self) -> int:
        library = _native()
        if library is None:
            raise RuntimeError("merchant_rows is not installed; call install()")
        self.token = library.merchant_rows_register(ctypes.byref(self._batch._batch))
        if self.token == 0:
            raise RuntimeError(
                "merchant_rows: the batch could not be registered (invalid, out "
                f"of memory, or {_SLOTS} batches registered at once)"
            )
        return int(self.token)

    def __exit__(self, *exc_info: object) -> None:
        library = _native()
        if library is not None:
            library.merchant_rows_release(self.token)


class NativeInsert:
    """An INSERT ... SELECT of ``columns`` from a registered ColumnBatch.

    ``constants`` and ``suffix`` work as in ``bulk_insert.MultiRowInsert``.
    """

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        *,
        constants: dict[str, int] | None = None,
        suffix: str = "",
    ) -> None:
        constants = constants or {}
        names = [*columns, *constants]
        values = [f"c{index}" for index in range(len(columns))]
        values += [str(int(value)) for value in constants.values()]
        # An upsert needs a plain INSERT, because OR IGNORE skips the update.
        verb = "INSERT" if suffix else "INSERT OR IGNORE"
        # With "WHERE true", SQLite's parser reads ON CONFLICT as an upsert.
        self.sql = (
            f"{verb} INTO {table} ({', '.join(names)}) "
            f"SELECT {', '.join(values)} FROM merchant_rows(?) WHERE true{suffix}"
        )

    def run(self, connection: sqlite3.Connection, batch: object) -> None:
        """Insert the rows of a ColumnBatch."""
        if not isinstance(batch, ColumnBatch):
            raise TypeError(f"expected ColumnBatch, got {type(batch).__name__}")
        if batch.rows == 0:
            return
        with batch.registered() as token:
            connection.execute(self.sql, (token,))


_lock = threading.Lock()
_state: dict[str, object] = {}


def _native() -> ctypes.CDLL | None:
    library = _state.get("native")
    return library if isinstance(library, ctypes.CDLL) else None


def install() -> bool:
    """Register merchant_rows for connections opened from now on.

    Returns True when it is registered (now or before). Returns False, and
    logs why once, when the import must bind its values from Python.
    """
    with _lock:
        if "installed" not in _state:
            try:
                _state["installed"] = _install()
            except (OSError, AttributeError, ImportError, ValueError) as exc:
                logger.info(
                    "merchant_rows unavailable, the import binds values from "
                    "Python: %s",
                    exc,
                )
                _state["installed"] = False
        return bool(_state["installed"])


# Set to 1 to make the import bind its values from Python.
DISABLE_VARIABLE = "MERCHANT_APP_NO_NATIVE_ROWS"


def _install() -> bool:
    if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
        logger.info("merchant_rows not used: %s is set", DISABLE_VARIABLE)
        return False
    import _sqlite3

    from merchant_app.store import _rowsource  # type: ignore[attr-defined]

    # dlsym through _sqlite3's handle finds the SQLite it was linked with,
    # whether a shared library or built in, even if the file was replaced.
    sqlite_library = ctypes.CDLL(_sqlite3.__file__)
    sqlite_library.sqlite3_libversion.restype = ctypes.c_char_p
    version = sqlite_library.sqlite3_libversion().decode()
    if version != sqlite3.sqlite_version:
        logger.info(
            "merchant_rows unavailable: %s resolves SQLite %s, but Python's "
            "sqlite3 reports %s",
            _sqlite3.__file__,
            version,
            sqlite3.sqlite_version,
        )
        return False

    native = ctypes.CDLL(str(_rowsource.__file__))
    native.merchant_rows_register.restype = ctypes.c_int64
    native.merchant_rows_register.argtypes = [ctypes.POINTER(_Batch)]
    native.merchant_rows_release.restype = ctypes.c_int
    native.merchant_rows_release.argtypes = [ctypes.c_int64]
    entry = ctypes.cast(native.merchant_rows_init, ctypes.c_void_p)
    sqlite_library.sqlite3_auto_extension.argtypes = [ctypes.c_void_p]
    sqlite_library.sqlite3_auto_extension.restype = ctypes.c_int
    result = sqlite_library.sqlite3_auto_extension(entry)
    if result != 0:
        logger.info("merchant_rows unavailable: sqlite3_auto_extension gave %d", result)
        return False
    _state["native"] = native
    probe = sqlite3.connect(":memory:")
    try:
        working = usable(probe)
    finally:
        probe.close()
    if not working:
        del _state["native"]
        logger.info(
            "merchant_rows unavailable: a new connection does not have it "
            "(SQLite %s); the import binds values from Python",
            version,
        )
        return False
    logger.debug("merchant_rows registered through %s", _sqlite3.__file__)
    return True


def usable(connection: sqlite3.Connection) -> bool:
    """Return True when ``connection`` has merchant_rows.

    A connection opened before ``install`` or through another SQLite
    library lacks it.
    """
    if _native() is None:
        return False
    try:
        with ColumnBatch([]).registered() as token:
            connection.execute(
                "SELECT count(*) FROM merchant_rows(?)", (token,)
            ).fetchone()
    except sqlite3.OperationalError as exc:
        logger.debug("merchant_rows missing on this connection: %s", exc)
        return False
    except RuntimeError as exc:
        logger.warning("merchant_rows not used for this import: %s", exc)
        return False
    return True
