"""Multi-row INSERT statements that load the rows of an import chunk from Python.

The import uses them where the C module's ``merchant_rows`` function is
unavailable (``native_rows``). Both take the columns this module builds.

``executemany`` with one row per statement spends much of its time on work
done once per statement (step, reset, the binding loop). A statement whose
VALUES list has many rows does that work once per block. Inserting 1M
events of ``benchmarks/import_speed.py`` took about 25% less CPU time with
100 rows per statement than with one (SQLite 3.40), and 500 rows was no
slower than 100 while handing the GIL to the parsing thread less often.

The rows are prepared as flat parameter lists (``prepare``) on the import's
parsing side, so the inserting thread only binds and steps. Event rows
bind ints where they can: the event type, category code and brand as ids
(``NameIds``), and a missing price as NaN, which SQLite stores as NULL,
because Python's sqlite3 binds None several times slower than an int or a
float.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from merchant_app.store.hashing import (
    BoolArray,
    EventColumns,
    IntArray,
    TextColumn,
)
from merchant_app.store.native_rows import (
    ColumnBatch,
    ColumnData,
    NativeInsert,
    NumberColumn,
)
from merchant_app.store.rows import EVENT_TYPES

# Rows per multi-row statement, fewer when the connection's limit on
# parameters per statement is lower (999 before SQLite 3.32).
BLOCK_ROWS = 500

# The latest row of a product sets its values, but NULL never replaces a value.
_PRODUCT_CONFLICT = """
ON CONFLICT (product_id) DO UPDATE SET
    category_id = coalesce(excluded.category_id, products.category_id),
    category_code = coalesce(excluded.category_code, products.category_code),
    brand = coalesce(excluded.brand, products.brand),
    price = coalesce(excluded.price, products.price)
"""
PRODUCT_COLUMNS = ("product_id", "category_id", "category_code", "brand", "price")


@dataclass(slots=True)
class PreparedRows:
    """Parameters of one chunk's rows.

    ``blocks`` are for the multi-row statement, and ``rest`` contains the
    remaining rows, one parameter list each.
    """

    blocks: list[list[object]]
    rest: list[list[object]]


@dataclass(frozen=True, slots=True)
class RowBlocks:
    """The grouping of a multi-row statement's rows into parameter lists.

    ``width`` is the number of parameters per row and ``block_rows`` the rows
    per statement. The import's parsing thread prepares rows with it before
    the statement's SQL (which contains the import id) exists.
    """

    width: int
    block_rows: int

    @classmethod
    def fit(cls, width: int, max_variables: int) -> RowBlocks:
        """Return BLOCK_ROWS rows per block, fewer if the parameter limit is lower."""
        return cls(width, max(1, min(BLOCK_ROWS, max_variables // width)))

    def prepare(self, columns: Sequence[ColumnData]) -> PreparedRows:
        """Return the parameters of the rows given as one column each.

        Integers become Python ints or None, floats become Python floats
        with NaN for NULL, and texts become str or None.
        """
        count = len(columns[0]) if columns else 0
        table = np.empty((count, self.width), dtype=object)
        for index, column in enumerate(columns):
            table[:, index] = _bindable(column)
        full = count - count % self.block_rows
        blocks: list[list[object]] = (
            table[:full].reshape(-1, self.block_rows * self.width).tolist()
        )
        rest: list[list[object]] = table[full:].tolist()
        return PreparedRows(blocks, rest)


class MultiRowInsert:
    """An INSERT of ``columns`` in blocks of rows, and one row at a time.

    ``constants`` are columns with the same value in every row (such as the
    import id). They are written into the SQL text, so they cost no binding
    per row, and they are converted with ``int`` so that no text reaches SQL.
    """

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        *,
        max_variables: int,
        constants: dict[str, int] | None = None,
        suffix: str = "",
    ) -> None:
        constants = constants or {}
        names = [*columns, *constants]
        values = ["?"] * len(columns) + [str(int(v)) for v in constants.values()]
        row = "(" + ", ".join(values) + ")"
        head = f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES "
        if suffix:
            # An upsert needs a plain INSERT, because OR IGNORE skips the update.
            head = head.replace("INSERT OR IGNORE", "INSERT", 1)
        self.blocks = RowBlocks.fit(len(columns), max_variables)
        self.block_sql = head + ", ".join([row] * self.blocks.block_rows) + suffix
        self.row_sql = head + row + suffix

    def prepare(self, columns: Sequence[ColumnData]) -> PreparedRows:
        """Return the parameters of the rows, as ``RowBlocks.prepare``."""
        return self.blocks.prepare(columns)

    def run(
        self, connection: sqlite3.Connection, rows: PreparedRows | ColumnBatch
    ) -> None:
        """Execute the statements for the prepared rows."""
        if not isinstance(rows, PreparedRows):
            raise TypeError(f"expected PreparedRows, got {type(rows).__name__}")
        if rows.blocks:
            connection.executemany(self.block_sql, rows.blocks)
        if rows.rest:
            connection.executemany(self.row_sql, rows.rest)


def _bindable(column: ColumnData) -> npt.NDArray[np.generic]:
    """Return the column as values that Python's sqlite3 binds quickly.

    A NULL float is bound as NaN, which SQLite stores as NULL, because
    binding None is several times slower.
    """
    if isinstance(column, TextColumn):
        return column.objects()
    if column.null is None or not column.null.any():
        return column.values
    if column.values.dtype.kind == "f":
        return np.where(column.null, np.nan, column.values)
    return nullable(column.values, column.null)


def max_variables(connection: sqlite3.Connection) -> int:
    """Return the connection's limit on parameters per statement."""
    return connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def event_columns(*, timed: bool) -> tuple[str, ...]:
    """Return the event_rows columns an import binds for REES46 (``timed``) or slim.

    Slim rows have no time, category id, session or hash, so their statement
    leaves those columns out and SQLite stores NULL.
    """
    if timed:
        return (
            "event_time",
            "event_type_id",
            "product_id",
            "category_id",
            "category_code_id",
            "brand_id",
            "price",
            "user_id",
            "user_session",
            "row_hash",
        )
    return (
        "event_type_id",
        "product_id",
        "category_code_id",
        "brand_id",
        "price",
        "user_id",
    )


def event_insert(
    *, timed: bool, import_id: int, max_variables: int, native: bool = False
) -> MultiRowInsert | NativeInsert:
    """Return the event_rows INSERT of ``event_columns(timed=...)``.

    ``native`` gives the statement that reads a ColumnBatch (native_rows.py)
    in place of the one that binds PreparedRows.
    """
    columns = event_columns(timed=timed)
    constants = {"source": import_id}
    if native:
        return NativeInsert("event_rows", columns, constants=constants)
    return MultiRowInsert(
        "event_rows", columns, max_variables=max_variables, constants=constants
    )


def product_upsert(
    *, max_variables: int, native: bool = False
) -> MultiRowInsert | NativeInsert:
    """Return the products upsert, where the latest non-NULL values win."""
    if native:
        return NativeInsert("products", PRODUCT_COLUMNS, suffix=_PRODUCT_CONFLICT)
    return MultiRowInsert(
        "products",
        PRODUCT_COLUMNS,
        max_variables=max_variables,
        suffix=_PRODUCT_CONFLICT,
    )


@dataclass(slots=True)
class NameIdColumns:
    """Ids of the category codes and brands of a chunk's rows (0 for NULL)."""

    category_code: IntArray
    brand: IntArray


def event_arrays(
    columns: EventColumns, names: NameIdColumns, *, hashes: IntArray | None
) -> list[ColumnData]:
    """Return the columns of ``event_insert(timed=...)``.

    ``hashes`` are the rows' ``row_hashes`` for REES46 rows (timed), and
    None for slim rows.
    """
    type_ids = event_type_ids(columns.event_type)
    price = NumberColumn(columns.price, columns.price_null)
    if hashes is None:
        return [
            NumberColumn(type_ids),
            NumberColumn(columns.product_id),
            NumberColumn(names.category_code),
            NumberColumn(names.brand),
            price,
            NumberColumn(columns.user_id),
        ]
    return [
        NumberColumn(columns.event_time),
        NumberColumn(type_ids),
        NumberColumn(columns.product_id),
        NumberColumn(columns.category_id, columns.category_id_null),
        NumberColumn(names.category_code),
        NumberColumn(names.brand),
        price,
        NumberColumn(columns.user_id),
        columns.user_session,
        NumberColumn(hashes),
    ]


def event_type_ids(types: TextColumn) -> IntArray:
    """Return each row's index in EVENT_TYPES; every row must have a known type.

    ``types.values`` may contain texts of rejected rows, which no row uses.
    """
    value_ids = np.array(
        [EVENT_TYPES.index(v) if v in EVENT_TYPES else -1 for v in types.values],
        dtype=np.int64,
    )
    ids: IntArray = value_ids[types.codes]
    return ids


def stored_name_id(connection: sqlite3.Connection, table: str, name: str | None) -> int:
    """Return the id of ``name`` in a dictionary table, adding it if new.

    NULL has id 0. Runs inside the caller's transaction.
    """
    if name is None:
        return 0
    row = connection.execute(f"SELECT id FROM {table} WHERE name = ?", (name,))
    found = row.fetchone()
    if found is not None:
        return int(found[0])
    cursor = connection.execute(f"INSERT INTO {table} (name) VALUES (?)", (name,))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


class NameIds:
    """The ids that a dictionary table (category_codes or brands) gives names.

    Loaded once per import inside its transaction. New names get the next
    free ids, and the caller inserts them with the chunk that uses them.
    NOTE: the map keeps every distinct name in memory, which is small for
    category codes and brands but grows with a file that has a new name in
    every row.
    """

    def __init__(self, table: str, ids: dict[str, int]) -> None:
        self.table = table
        self._ids = ids
        self._next = max(ids.values(), default=0) + 1

    @classmethod
    def load(cls, connection: sqlite3.Connection, table: str) -> NameIds:
        """Read the names and ids stored in ``table``."""
        rows = connection.execute(
            f"SELECT name, id FROM {table} WHERE name IS NOT NULL"
        ).fetchall()
        return cls(table, {str(name): int(name_id) for name, name_id in rows})

    def encode(self, column: TextColumn) -> tuple[IntArray, list[tuple[int, str]]]:
        """Return each row's id (0 for NULL) and the (id, name) pairs to insert."""
        used = np.zeros(len(column.values) + 1, dtype=bool)
        used[column.codes] = True
        value_ids = np.zeros(len(column.values) + 1, dtype=np.int64)
        added: list[tuple[int, str]] = []
        for index in np.flatnonzero(used[:-1]).tolist():
            name = column.values[index]
            name_id = self._ids.get(name)
            if name_id is None:
                name_id = self._next
                self._next += 1
                self._ids[name] = name_id
                added.append((name_id, name))
            value_ids[index] = name_id
        # Code -1 (NULL) picks the last entry, id 0.
        ids: IntArray = value_ids[column.codes]
        return ids, added


def product_arrays(columns: EventColumns) -> list[ColumnData]:
    """Return each product's latest non-NULL values in the chunk, per column.

    "Latest" is the last row in file order, as the upsert applies it.
    """
    if len(columns) == 0:
        return []
    # Stable sort by product id: within a product, rows keep file order.
    order = np.argsort(columns.product_id, kind="stable")
    products = columns.product_id[order]
    starts = np.flatnonzero(np.r_[True, products[1:] != products[:-1]])
    result: list[ColumnData] = [
        NumberColumn(products[starts]),
        _last_non_null(
            columns.category_id[order], columns.category_id_null[order], starts
        ),
    ]
    for text in (columns.category_code, columns.brand):
        sorted_codes = text.codes[order]
        chosen, found = _latest_rows(sorted_codes < 0, starts)
        codes = np.where(found, sorted_codes[chosen], -1)
        result.append(text.recoded(codes))
    result.append(
        _last_non_null(columns.price[order], columns.price_null[order], starts)
    )
    return result


def _latest_rows(
    null: BoolArray, starts: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.intp], BoolArray]:
    """Return per group (rows from ``starts[i]``) its last non-null row.

    Returns (row positions, found mask), where a group of null rows only is
    not found.
    """
    positions = np.arange(len(null))
    # The position of the latest non-null row so far, or -1, carried forward.
    latest = np.maximum.accumulate(np.where(null, -1, positions))
    ends = np.r_[starts[1:], len(null)] - 1
    chosen = latest[ends]
    return chosen, chosen >= starts


def _last_non_null(
    values: npt.NDArray[np.int64] | npt.NDArray[np.float64],
    null: BoolArray,
    starts: npt.NDArray[np.intp],
) -> NumberColumn:
    """Return per group (rows from ``starts[i]``) the last non-null value or NULL."""
    chosen, found = _latest_rows(null, starts)
    picked = values[np.where(found, chosen, 0)]
    return NumberColumn(picked, ~found)


def nullable(
    values: npt.NDArray[np.generic], null: BoolArray
) -> npt.NDArray[np.generic]:
    """Return ``values`` as an object array with None where ``null`` is set."""
    if not null.any():
        return values
    objects = values.astype(object)
    objects[null] = None
    return objects


# The one-row products upsert, for edits.
UPSERT_PRODUCT = MultiRowInsert(
    "products", PRODUCT_COLUMNS, max_variables=1, suffix=_PRODUCT_CONFLICT
).row_sql
