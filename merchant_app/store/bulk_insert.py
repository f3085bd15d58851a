"""Multi-row INSERT statements that load the rows of an import chunk.

``executemany`` with one row per statement spends much of its time on work
done once per statement (step, reset, the binding loop). A statement whose
VALUES list has many rows does that work once per block. Inserting 1M
events of ``benchmarks/import_speed.py`` took about 25% less CPU time with
100 rows per statement than with one (SQLite 3.40), and 500 rows was no
slower than 100 while handing the GIL to the parsing thread less often.

The rows are prepared as flat parameter lists (``prepare``) in the import's
parsing thread, so the inserting thread only binds and steps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from merchant_app.store.hashing import BoolArray, EventColumns, row_hashes

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
_PRODUCT_COLUMNS = ("product_id", "category_id", "category_code", "brand", "price")


@dataclass(slots=True)
class PreparedRows:
    """Parameters of one chunk's rows.

    ``blocks`` are for the multi-row statement, and ``rest`` contains the
    remaining rows, one parameter list each.
    """

    blocks: list[list[object]]
    rest: list[list[object]]


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
        self.width = len(columns)
        self.block_rows = max(1, min(BLOCK_ROWS, max_variables // self.width))
        self.block_sql = head + ", ".join([row] * self.block_rows) + suffix
        self.row_sql = head + row + suffix

    def prepare(self, columns: Sequence[npt.NDArray[np.generic]]) -> PreparedRows:
        """Return the parameters of the rows given as one array per column.

        Integer and float arrays become Python ints and floats, and object
        arrays keep their items (str or None).
        """
        count = len(columns[0]) if columns else 0
        table = np.empty((count, self.width), dtype=object)
        for index, column in enumerate(columns):
            table[:, index] = column
        full = count - count % self.block_rows
        blocks: list[list[object]] = (
            table[:full].reshape(-1, self.block_rows * self.width).tolist()
        )
        rest: list[list[object]] = table[full:].tolist()
        return PreparedRows(blocks, rest)

    def run(self, connection: sqlite3.Connection, rows: PreparedRows) -> None:
        """Execute the statements for the prepared rows."""
        if rows.blocks:
            connection.executemany(self.block_sql, rows.blocks)
        if rows.rest:
            connection.executemany(self.row_sql, rows.rest)


def max_variables(connection: sqlite3.Connection) -> int:
    """Return the connection's limit on parameters per statement."""
    return connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def event_insert(*, timed: bool, import_id: int, max_variables: int) -> MultiRowInsert:
    """Return the event INSERT for REES46 (``timed``) or slim rows.

    Slim rows have no time, category id, session or hash, so their statement
    leaves those columns out and SQLite stores NULL.
    """
    if timed:
        columns: tuple[str, ...] = (
            "event_time",
            "event_type",
            "product_id",
            "category_id",
            "category_code",
            "brand",
            "price",
            "user_id",
            "user_session",
            "row_hash",
        )
    else:
        columns = (
            "event_type",
            "product_id",
            "category_code",
            "brand",
            "price",
            "user_id",
        )
    return MultiRowInsert(
        "events",
        columns,
        max_variables=max_variables,
        constants={"source": import_id},
    )


def product_upsert(*, max_variables: int) -> MultiRowInsert:
    """Return the products upsert, where the latest non-NULL values win."""
    return MultiRowInsert(
        "products",
        _PRODUCT_COLUMNS,
        max_variables=max_variables,
        suffix=_PRODUCT_CONFLICT,
    )


def event_arrays(
    columns: EventColumns, *, timed: bool
) -> list[npt.NDArray[np.generic]]:
    """Return the columns of ``event_insert(timed=...)`` with None for NULLs."""
    if not timed:
        return [
            columns.event_type,
            columns.product_id,
            columns.category_code,
            columns.brand,
            nullable(columns.price, columns.price_null),
            columns.user_id,
        ]
    return [
        nullable(columns.event_time, columns.event_time_null),
        columns.event_type,
        columns.product_id,
        nullable(columns.category_id, columns.category_id_null),
        columns.category_code,
        columns.brand,
        nullable(columns.price, columns.price_null),
        columns.user_id,
        columns.user_session,
        row_hashes(columns),
    ]


def product_arrays(columns: EventColumns) -> list[npt.NDArray[np.generic]]:
    """Return each product's latest non-NULL values in the chunk, per column.

    "Latest" is the last row in file order, as the upsert applies it.
    """
    if len(columns) == 0:
        return []
    # Stable sort by product id: within a product, rows keep file order.
    order = np.argsort(columns.product_id, kind="stable")
    products = columns.product_id[order]
    starts = np.flatnonzero(np.r_[True, products[1:] != products[:-1]])
    result: list[npt.NDArray[np.generic]] = [products[starts]]
    for values, null in (
        (columns.category_id, columns.category_id_null),
        (columns.category_code, _is_none(columns.category_code)),
        (columns.brand, _is_none(columns.brand)),
        (columns.price, columns.price_null),
    ):
        result.append(_last_non_null(values[order], null[order], starts))
    return result


def _last_non_null(
    values: npt.NDArray[np.generic], null: BoolArray, starts: npt.NDArray[np.intp]
) -> npt.NDArray[np.object_]:
    """Return per group (rows from ``starts[i]``) the last non-null value or None."""
    positions = np.arange(len(values))
    # The position of the latest non-null row so far, or -1, carried forward.
    latest = np.maximum.accumulate(np.where(null, -1, positions))
    ends = np.r_[starts[1:], len(values)] - 1
    chosen = latest[ends]
    found = chosen >= starts
    picked = np.empty(len(starts), dtype=object)
    picked[:] = None
    picked[found] = values[chosen[found]]
    return picked


def _is_none(values: npt.NDArray[np.object_]) -> BoolArray:
    # Text columns contain str or None, so isna marks exactly the None items.
    null: BoolArray = pd.isna(values)
    return null


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
UPSERT_PRODUCT = product_upsert(max_variables=len(_PRODUCT_COLUMNS)).row_sql
