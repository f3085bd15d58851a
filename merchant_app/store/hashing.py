"""64-bit hashes of whole events, the key of duplicate detection.

A REES46 row is a duplicate when every column equals a stored row. The store
keeps a hash of the nine typed values in ``events.row_hash`` under a unique
index on ``(event_time, row_hash)``, so two rows clash only when their times
are equal and their 64-bit hashes collide. For n rows with the same
microsecond that chance is about n^2 / 2^65, which is negligible.

The hash uses pandas' SipHash-2-4 with its fixed default key for strings and
pandas' integer mixing for numbers, combined by the fixed rule below. If
either changes, the hashes of stored rows no longer match new imports:
``ROW_HASH_SCHEME`` is stored in the database and ``rehash_events`` rebuilds
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

ROW_HASH_SCHEME = "pandas-siphash-v1"

_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_MULTIPLIER = np.uint64(1_000_003)
_SEED = np.uint64(0x345678)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True)
class Utf8Texts:
    """The UTF-8 bytes of texts: text k is ``lengths[k]`` bytes of ``data``
    from ``starts[k]``. Other bytes may lie between the texts."""

    data: bytes
    starts: IntArray
    lengths: IntArray

    @classmethod
    def encode(cls, values: ObjectArray) -> Utf8Texts:
        """Return the UTF-8 bytes of str ``values``, one after another."""
        encoded = [str(value).encode("utf-8") for value in values]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        starts = np.cumsum(lengths) - lengths
        return cls(b"".join(encoded), starts, lengths)

    def delete(self, index: int) -> Utf8Texts:
        """Return the texts without text ``index``."""
        return Utf8Texts(
            self.data, np.delete(self.starts, index), np.delete(self.lengths, index)
        )


@dataclass(slots=True)
class TextColumn:
    """A text column as one code per row into ``values``, with -1 for NULL.

    Columns such as brand repeat a few texts many times, so hashing,
    dictionary coding and string creation work once per value. ``values``
    may contain a text more than once, or a text that no row uses. ``utf8``,
    when set, contains the values' UTF-8 bytes in the same order. The byte
    parser has them at hand, and merchant_rows reads them.
    """

    codes: IntArray
    values: ObjectArray
    utf8: Utf8Texts | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: int) -> str | None:
        code = int(self.codes[index])
        return None if code < 0 else str(self.values[code])

    @classmethod
    def from_objects(cls, objects: ObjectArray) -> TextColumn:
        """Build the column from one str or None per row."""
        codes, values = pd.factorize(objects, use_na_sentinel=True)
        return cls(codes.astype(np.int64), np.asarray(values, dtype=object))

    def objects(self) -> ObjectArray:
        """Return one str or None per row."""
        table = np.empty(len(self.values) + 1, dtype=object)
        table[: len(self.values)] = self.values
        # Code -1 picks the last entry, which is None.
        return table[self.codes]

    def null(self) -> BoolArray:
        """Return the mask of NULL rows."""
        mask: BoolArray = self.codes < 0
        return mask

    def take(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> TextColumn:
        """Return the column of the selected rows (a mask or positions)."""
        return self.recoded(self.codes[rows])

    def recoded(self, codes: IntArray) -> TextColumn:
        """Return a column of the same values with other rows' ``codes``."""
        return TextColumn(codes, self.values, self.utf8)

    def utf8_texts(self) -> Utf8Texts:
        """Return the UTF-8 bytes of the values, encoding them if not known."""
        return self.utf8 if self.utf8 is not None else Utf8Texts.encode(self.values)


@dataclass(slots=True)
class EventColumns:
    """Typed columns of a batch of events, one numpy array per column.

    Integer and float columns come with a null mask. Text columns are
    ``TextColumn`` objects.
    """

    event_time: IntArray
    event_time_null: BoolArray
    event_type: TextColumn
    product_id: IntArray
    category_id: IntArray
    category_id_null: BoolArray
    category_code: TextColumn
    brand: TextColumn
    price: FloatArray
    price_null: BoolArray
    user_id: IntArray
    user_session: TextColumn

    def __len__(self) -> int:
        return len(self.product_id)

    def take(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> EventColumns:
        """Return the columns of the selected rows (a mask or positions)."""
        return EventColumns(
            **{name: getattr(self, name)[rows] for name in _ARRAY_FIELDS},
            **{name: getattr(self, name).take(rows) for name in TEXT_FIELDS},
        )


TEXT_FIELDS = ("event_type", "category_code", "brand", "user_session")
_ARRAY_FIELDS = tuple(
    name for name in EventColumns.__slots__ if name not in TEXT_FIELDS
)


def row_hashes(columns: EventColumns) -> IntArray:
    """Return the hash of each event as a signed 64-bit int (SQLite INTEGER)."""
    parts = [
        _hash_ints(columns.event_time, columns.event_time_null),
        _hash_texts(columns.event_type),
        _hash_ints(columns.product_id, None),
        _hash_ints(columns.category_id, columns.category_id_null),
        _hash_texts(columns.category_code),
        _hash_texts(columns.brand),
        _hash_floats(columns.price, columns.price_null),
        _hash_ints(columns.user_id, None),
        _hash_texts(columns.user_session),
    ]
    combined = np.full(len(columns), _SEED, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in parts:
            combined = (combined ^ part) * _MULTIPLIER
    return combined.view(np.int64)


def _hash_ints(values: IntArray, null: BoolArray | None) -> npt.NDArray[np.uint64]:
    hashed = pd.util.hash_array(values.astype(np.int64, copy=False))
    return _mark_nulls(hashed, null)


def _hash_floats(values: FloatArray, null: BoolArray) -> npt.NDArray[np.uint64]:
    hashed = pd.util.hash_array(np.where(null, 0.0, values))
    return _mark_nulls(hashed, null)


def _hash_texts(column: TextColumn) -> npt.NDArray[np.uint64]:
    """Hash each value once and give every row the hash of its value.

    Each row gets the hash that ``pd.util.hash_array`` gives its text, with
    or without ``categorize``, so ROW_HASH_SCHEME and stored hashes stay
    valid.
    """
    value_hashes = np.empty(len(column.values) + 1, dtype=np.uint64)
    if len(column.values):
        value_hashes[:-1] = pd.util.hash_array(column.values, categorize=False)
    # Code -1 (NULL) picks the last entry, which the null mark replaces.
    value_hashes[-1] = _NULL_HASH
    hashed: npt.NDArray[np.uint64] = value_hashes[column.codes]
    return hashed


def _mark_nulls(
    hashed: npt.NDArray[np.uint64], null: BoolArray | None
) -> npt.NDArray[np.uint64]:
    if null is not None and null.any():
        hashed = hashed.copy()
        hashed[null] = _NULL_HASH
    return hashed


def columns_from_rows(rows: list[tuple[object, ...]]) -> EventColumns:
    """Build typed columns from rows of stored values in REES46 column order."""
    fields = list(zip(*rows, strict=True)) if rows else [()] * 9
    times, types, products, categories, codes, brands, prices, users, sessions = fields
    return EventColumns(
        event_time=_ints(times),
        event_time_null=_nulls(times),
        event_type=_texts(types),
        product_id=_ints(products),
        category_id=_ints(categories),
        category_id_null=_nulls(categories),
        category_code=_texts(codes),
        brand=_texts(brands),
        price=np.array([0.0 if p is None else p for p in prices], dtype=np.float64),
        price_null=_nulls(prices),
        user_id=_ints(users),
        user_session=_texts(sessions),
    )


def _ints(values: tuple[object, ...]) -> IntArray:
    return np.array([0 if v is None else v for v in values], dtype=np.int64)


def _nulls(values: tuple[object, ...]) -> BoolArray:
    return np.array([v is None for v in values], dtype=bool)


def _texts(values: tuple[object, ...]) -> TextColumn:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return TextColumn.from_objects(array)
