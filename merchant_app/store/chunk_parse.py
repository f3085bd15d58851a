"""Vectorised validation and conversion of a chunk of CSV text fields.

This is the path for chunks that pandas reads, every field as text
(``byte_parse`` converts plain chunks from their bytes). The chunk parser
checks each column with numpy for the common, plainly valid
form (digits only for ids, `YYYY-MM-DD HH:MM:SS UTC` for times, and so on).
Rows with any value outside that form are checked again, one by one, by
``validation.parse_event``: it decides whether the row is valid and words the
message when it is not. So the fast path only saves time and never accepts
a value the row validator would reject.

Ids and prices are first checked for the whole chunk at once, on the joined
text of the column (ASCII digits only, or only the characters of plain
numbers). A chunk that passes is converted with ``int`` and ``float`` per
value. A chunk that fails takes the slower per-value checks of
``_checked_ids`` and ``_checked_prices``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from merchant_app.store.hashing import (
    TEXT_FIELDS,
    BoolArray,
    EventColumns,
    IntArray,
    ObjectArray,
    TextColumn,
)
from merchant_app.store.layouts import LAYOUT_COLUMNS, Layout
from merchant_app.store.report import RejectedRow
from merchant_app.store.rows import EVENT_COLUMNS, EVENT_TYPES, MAX_ID
from merchant_app.store.validation import EventValues, FieldError, parse_event

_MAX_ID_TEXT = str(MAX_ID)
_MICROSECONDS = 1_000_000
_ZERO = ord("0")

# Character positions in `2019-10-01 00:00:00 UTC`.
TIME_LENGTH = 23
_TIME_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_TIME_LITERALS = {4: "-", 7: "-", 10: " ", 13: ":", 16: ":", 19: " ", 20: "U"}
_TIME_LITERALS |= {21: "T", 22: "C"}
# Characters a plain price may contain, where 0 is numpy's string padding.
# The last entry is for every code point above 127.
_PRICE_CHARS = np.zeros(129, dtype=bool)
_PRICE_CHARS[[0, *map(ord, "0123456789.+-eE")]] = True
_PRICE_WIDTH = 24
_PLAIN_NUMBER_CHARS = re.compile(r"[0-9.eE+-]*")
# 19 digits and one more column, so that longer ids show a length of 20.
_ID_WIDTH = 20
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


@dataclass(slots=True)
class ParsedChunk:
    """The valid rows of a chunk as typed columns, and the rejected rows.

    ``rows`` counts the chunk's records, blank and rejected ones included.
    """

    columns: EventColumns
    rows: int
    rejected: list[RejectedRow] = field(default_factory=list)
    blank_lines: int = 0


def parse_chunk(frame: pd.DataFrame, *, layout: Layout, first_line: int) -> ParsedChunk:
    """Validate and convert a chunk read with ``dtype=object, na_filter=False``.

    ``first_line`` is the line number of the chunk's first row in the file.
    Lines whose fields are all empty are skipped and counted as blank.
    """
    size = len(frame)
    raw = _raw_columns(frame, layout)
    blank = _blank_rows(frame)

    # Fast, conservative checks per column.
    columns, ok = _convert_fast(raw, size, layout)
    ok |= blank

    def read_row(index: int) -> dict[str, object]:
        return {name: raw[name][index] for name in raw}

    return finish_chunk(
        columns,
        suspects=np.flatnonzero(~ok),
        read_row=read_row,
        blank=blank,
        layout=layout,
        first_line=first_line,
    )


def finish_chunk(
    columns: EventColumns,
    *,
    suspects: npt.NDArray[np.intp],
    read_row: Callable[[int], Mapping[str, object]],
    blank: BoolArray,
    layout: Layout,
    first_line: int,
) -> ParsedChunk:
    """Give the ``suspects`` rows the row validator's verdict, then drop bad rows.

    The fast checks mark the rows whose values they cannot vouch for.
    ``read_row`` returns such a row's fields as text. A row the validator
    accepts gets its validated values written into ``columns``. A row it
    rejects, and each blank row, is left out of the returned columns.
    """
    rejected: list[RejectedRow] = []
    keep = ~blank
    patches = _TextPatches()
    for index in suspects:
        try:
            values = parse_event(
                read_row(int(index)), require_time=layout is Layout.REES46
            )
        except FieldError as exc:
            rejected.append(
                RejectedRow(
                    line=first_line + int(index),
                    column=exc.column,
                    value=exc.value,
                    reason=exc.reason,
                )
            )
            keep[index] = False
            continue
        _store_row(columns, int(index), values, patches)
    patches.apply(columns)

    return ParsedChunk(
        columns=columns.take(keep),
        rows=len(keep),
        rejected=rejected,
        blank_lines=int(blank.sum()),
    )


def _raw_columns(frame: pd.DataFrame, layout: Layout) -> dict[str, ObjectArray]:
    present = LAYOUT_COLUMNS[layout]
    return {
        name: frame[name].to_numpy(dtype=object)
        for name in EVENT_COLUMNS
        if name in present
    }


def _blank_rows(frame: pd.DataFrame) -> BoolArray:
    # Narrow the candidates column by column, because blank lines are rare.
    candidates = np.arange(len(frame))
    for position in range(frame.shape[1]):
        values = frame.iloc[:, position].to_numpy(dtype=object)[candidates]
        candidates = candidates[values == ""]
        if len(candidates) == 0:
            break
    blank = np.zeros(len(frame), dtype=bool)
    blank[candidates] = True
    return blank


def _convert_fast(
    raw: dict[str, ObjectArray], size: int, layout: Layout
) -> tuple[EventColumns, BoolArray]:
    ok = np.ones(size, dtype=bool)

    if layout is Layout.REES46:
        event_time, time_ok = _fast_times(raw["event_time"])
        ok &= time_ok
        category_id, category_null, category_ok = _fast_ids(
            raw["category_id"], optional=True
        )
        ok &= category_ok
        session = _fast_texts(raw["user_session"])
    else:
        event_time = np.zeros(size, dtype=np.int64)
        category_id = np.zeros(size, dtype=np.int64)
        category_null = np.ones(size, dtype=bool)
        session = TextColumn.from_objects(np.full(size, None, dtype=object))

    product_id, _, product_ok = _fast_ids(raw["product_id"], optional=False)
    user_id, _, user_ok = _fast_ids(raw["user_id"], optional=False)
    price, price_null, price_ok = _fast_prices(raw["price"])
    type_ok = pd.Series(raw["event_type"]).isin(EVENT_TYPES).to_numpy()
    ok &= product_ok & user_ok & price_ok & type_ok

    columns = EventColumns(
        event_time=event_time,
        event_time_null=np.full(size, layout is Layout.SLIM, dtype=bool),
        event_type=TextColumn.from_objects(raw["event_type"]),
        product_id=product_id,
        category_id=category_id,
        category_id_null=category_null,
        category_code=_fast_texts(raw["category_code"]),
        brand=_fast_texts(raw["brand"]),
        price=price,
        price_null=price_null,
        user_id=user_id,
        user_session=session,
    )
    return columns, ok


def _fast_ids(
    values: ObjectArray, *, optional: bool
) -> tuple[IntArray, BoolArray, BoolArray]:
    """Return (ids, null mask, ok mask) for plain digit strings of up to 19 digits.

    A chunk whose ids are all ASCII digits (checked once on the joined text)
    is converted with ``int`` per value, which is exact. Other chunks take the
    per-value check of ``_checked_ids``.
    """
    lengths = _text_lengths(values)
    if lengths is None:
        return _checked_ids(values, optional=optional)
    null = lengths == 0
    joined = "".join(values)
    if len(values) and lengths.max() > len(_MAX_ID_TEXT):
        return _checked_ids(values, optional=optional)
    if joined and not (joined.isascii() and joined.isdigit()):
        return _checked_ids(values, optional=optional)
    ids = np.zeros(len(values), dtype=np.int64)
    try:
        ids[~null] = values[~null].astype(np.int64)
    except OverflowError:
        # A 19-digit id above 2^63 - 1: the row validator words the error.
        return _checked_ids(values, optional=optional)
    ok = np.ones(len(values), dtype=bool) if optional else ~null
    return ids, null, ok


def _text_lengths(values: ObjectArray) -> IntArray | None:
    """Return the length of each value, or None when a value is not a str."""
    try:
        return np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    except TypeError:
        # A float NaN from pandas for a missing trailing field.
        return None


def _checked_ids(
    values: ObjectArray, *, optional: bool
) -> tuple[IntArray, BoolArray, BoolArray]:
    """Return (ids, null mask, ok mask), checking each value's characters."""
    text = values.astype(f"U{_ID_WIDTH}")
    codes = text.view(np.uint32).reshape(len(text), _ID_WIDTH)
    length = np.char.str_len(text)
    padding = codes == 0
    digits_only = (padding | ((codes >= _ZERO) & (codes <= _ZERO + 9))).all(axis=1)
    in_range = (length < 19) | ((length == 19) & (text <= _MAX_ID_TEXT))
    nul = _has_nul(values)
    ok = digits_only & (length >= 1) & in_range & ~nul

    # Horner's rule over the digit columns, skipping the padding columns.
    unsigned = np.zeros(len(text), dtype=np.uint64)
    for position in range(_ID_WIDTH - 1):
        digit = codes[:, position].astype(np.uint64) - np.uint64(_ZERO)
        shifted = unsigned * np.uint64(10) + digit
        unsigned = np.where(padding[:, position], unsigned, shifted)
    ids: IntArray = np.where(ok, unsigned, np.uint64(0)).astype(np.int64)
    null = (length == 0) & ~nul
    if optional:
        ok |= null
    return ids, null, ok


def _fast_times(values: ObjectArray) -> tuple[IntArray, BoolArray]:
    """Return (microseconds, ok mask) for times written `YYYY-MM-DD HH:MM:SS UTC`."""
    try:
        # One byte per character. Non-ASCII text is never a plain time.
        text = values.astype(f"S{TIME_LENGTH + 1}")
    except UnicodeEncodeError:
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), bool)
    codes = text.view(np.uint8).reshape(len(text), TIME_LENGTH + 1)
    ok = (np.char.str_len(text) == TIME_LENGTH) & ~_has_nul(values)
    return times_from_bytes(codes, ok)


def times_from_bytes(
    codes: npt.NDArray[np.uint8], ok: BoolArray
) -> tuple[IntArray, BoolArray]:
    """Convert times given as rows of ASCII codes, `YYYY-MM-DD HH:MM:SS UTC`.

    ``codes`` has one row per time and at least ``TIME_LENGTH`` columns.
    Returns (microseconds since the epoch, ok mask), where a row is ok when
    it was ok on entry and is a valid time in exactly that form.
    """
    digits = codes[:, _TIME_DIGITS].astype(np.int64) - _ZERO
    ok = ok & ((digits >= 0) & (digits <= 9)).all(axis=1)
    for position, char in _TIME_LITERALS.items():
        ok &= codes[:, position] == ord(char)

    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month = digits[:, 4] * 10 + digits[:, 5]
    day = digits[:, 6] * 10 + digits[:, 7]
    hour = digits[:, 8] * 10 + digits[:, 9]
    minute = digits[:, 10] * 10 + digits[:, 11]
    second = digits[:, 12] * 10 + digits[:, 13]
    month_ok = (month >= 1) & (month <= 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.where(month_ok, month - 1, 0)] + (leap & (month == 2))
    ok &= (year >= 1) & month_ok & (day >= 1) & (day <= month_days)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)

    # Days since 1970-01-01 from the civil date (H. Hinnant's days_from_civil).
    shifted_year = year - (month <= 2)
    era = shifted_year // 400
    year_of_era = shifted_year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146_097 + day_of_era - 719_468
    seconds = days * 86_400 + hour * 3_600 + minute * 60 + second
    return np.where(ok, seconds * _MICROSECONDS, 0), ok


def _fast_prices(
    values: ObjectArray,
) -> tuple[npt.NDArray[np.float64], BoolArray, BoolArray]:
    """Return (prices, null mask, ok mask) for plain decimal numbers.

    When the joined text of the chunk's prices has only the characters of
    plain numbers, ``float`` converts each one. On those characters ``float``
    accepts exactly what the row validator's pattern accepts, so only the
    finiteness remains to check. Other chunks take ``_checked_prices``.
    """
    try:
        joined = "".join(values)
    except TypeError:
        return _checked_prices(values)
    if _PLAIN_NUMBER_CHARS.fullmatch(joined) is None:
        return _checked_prices(values)
    null = values == ""
    prices = np.zeros(len(values), dtype=np.float64)
    try:
        prices[~null] = values[~null].astype(np.float64)
    except ValueError:
        # A malformed number such as `1.2.3`: let the row validator decide.
        return _checked_prices(values)
    ok = null | np.isfinite(prices)
    return prices, null, ok


def _checked_prices(
    values: ObjectArray,
) -> tuple[npt.NDArray[np.float64], BoolArray, BoolArray]:
    """Return (prices, null mask, ok mask), checking each value's characters."""
    text = values.astype(f"U{_PRICE_WIDTH}")
    codes = text.view(np.uint32).reshape(len(text), _PRICE_WIDTH)
    length = np.char.str_len(text)
    allowed = _PRICE_CHARS[np.minimum(codes, len(_PRICE_CHARS) - 1)].all(axis=1)
    nul = _has_nul(values)
    ok = allowed & (length < _PRICE_WIDTH) & ~nul
    null = (length == 0) & ~nul

    prices = np.zeros(len(text), dtype=np.float64)
    candidates = ok & ~null
    try:
        prices[candidates] = text[candidates].astype(np.float64)
    except ValueError:
        # A malformed number such as `1.2.3`: let the row validator decide.
        return prices, null, null.copy()
    ok &= np.isfinite(prices)
    return prices, null, ok


def _has_nul(values: ObjectArray) -> BoolArray:
    """Mark values that contain a NUL character.

    numpy drops trailing NULs when it converts text to fixed-width strings,
    so the checks that use such strings leave these values to the row
    validator.
    """
    try:
        joined = "".join(values)
    except TypeError:
        # A float NaN from pandas for a missing trailing field.
        joined = "".join(v for v in values if isinstance(v, str))
    if "\x00" not in joined:
        return np.zeros(len(values), dtype=bool)
    return np.array([isinstance(v, str) and "\x00" in v for v in values], dtype=bool)


def _fast_texts(values: ObjectArray) -> TextColumn:
    texts = values.copy()
    texts[values == ""] = None
    return TextColumn.from_objects(texts)


class _TextPatches:
    """Text values of validated rows, written into the text columns at once.

    Appending to a column's values once per chunk is cheaper than once per row.
    """

    def __init__(self) -> None:
        self._rows: dict[str, list[int]] = {name: [] for name in TEXT_FIELDS}
        self._texts: dict[str, list[str | None]] = {name: [] for name in TEXT_FIELDS}

    def set(self, name: str, index: int, text: str | None) -> None:
        self._rows[name].append(index)
        self._texts[name].append(text)

    def apply(self, columns: EventColumns) -> None:
        for name in TEXT_FIELDS:
            rows = self._rows[name]
            if not rows:
                continue
            column: TextColumn = getattr(columns, name)
            added = [text for text in self._texts[name] if text is not None]
            codes = np.full(len(rows), -1, dtype=np.int64)
            present = np.array([text is not None for text in self._texts[name]])
            codes[present] = len(column.values) + np.arange(len(added))
            values = np.empty(len(column.values) + len(added), dtype=object)
            values[: len(column.values)] = column.values
            values[len(column.values) :] = added
            new_codes = column.codes.copy()
            new_codes[rows] = codes
            setattr(columns, name, TextColumn(new_codes, values))


def _store_row(
    columns: EventColumns, index: int, values: EventValues, patches: _TextPatches
) -> None:
    """Write the validated values of one row into the typed columns."""
    columns.event_time[index] = values.event_time or 0
    columns.event_time_null[index] = values.event_time is None
    patches.set("event_type", index, values.event_type)
    columns.product_id[index] = values.product_id
    columns.category_id[index] = values.category_id or 0
    columns.category_id_null[index] = values.category_id is None
    patches.set("category_code", index, values.category_code)
    patches.set("brand", index, values.brand)
    columns.price[index] = values.price or 0.0
    columns.price_null[index] = values.price is None
    columns.user_id[index] = values.user_id
    patches.set("user_session", index, values.user_session)
