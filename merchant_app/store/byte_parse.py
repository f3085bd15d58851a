"""Splitting and conversion of plain CSV chunks as bytes, with numpy.

Most event files have no quotes, no blank lines and the same number of
fields on every line. For such a chunk the field bounds follow from the
positions of the commas and line breaks, so the importer converts the
fields straight from the bytes and never creates a Python string per field.
``split_fields`` returns None for any other chunk, and the importer reads
the rest of the file with pandas' full CSV parser (``chunk_reader``).

The conversions accept only the plain form of each value (digits for ids,
`YYYY-MM-DD HH:MM:SS UTC` for times, decimals for prices). Any other value
sends its row to the row validator (``chunk_parse.finish_chunk``), which
gives the verdict and the message, so a file gives the same result here as
through pandas.

On the 1M-event file of ``benchmarks/import_speed.py``, reading, splitting
and converting took about 1.0 s of CPU time this way. Reading every field
as text with pandas took 1.1 s, and converting that text 1.06 s more
(2-core AMD EPYC, numpy 2.4, pandas 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from merchant_app.store.chunk_parse import (
    TIME_LENGTH,
    ParsedChunk,
    finish_chunk,
    times_from_bytes,
)
from merchant_app.store.hashing import (
    BoolArray,
    EventColumns,
    FloatArray,
    IntArray,
    TextColumn,
    Utf8Texts,
)
from merchant_app.store.layouts import LAYOUT_COLUMNS, Layout
from merchant_app.store.rows import EVENT_TYPES, MAX_ID

_COMMA = ord(",")
_NEWLINE = ord("\n")
_RETURN = ord("\r")
_ZERO = np.uint8(ord("0"))
_DOT = ord(".")
_MINUS = ord("-")
_PLUS = ord("+")
_MAX_ID_DIGITS = 19
# A price with more significant digits than this may not convert exactly
# as an integer divided by a power of ten (see _prices), so it takes the
# row validator's float().
_MAX_PRICE_DIGITS = 15
_MAX_PRICE_BYTES = 24
# Exact powers of ten: each int converts to float without rounding.
_POWERS_OF_TEN = np.array([float(10**k) for k in range(_MAX_PRICE_BYTES)])
# Longer texts are cut out one by one instead of through a padded matrix,
# which would need (rows x longest text) bytes.
_MAX_MATRIX_TEXT_BYTES = 128
_FINGERPRINT_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_FINGERPRINT_SHIFT = np.uint64(29)
# Each event type as the two zero-padded little-endian words it is read as.
_TYPE_PATTERNS = [
    np.frombuffer(name.encode("ascii").ljust(2 * 8, b"\0"), dtype=np.uint64)
    for name in EVENT_TYPES
]
# Zero bytes around a chunk's bytes, so that a window of up to this width
# from any field stays inside the array. Zero is neither a digit nor a sign.
_PADDING = _MAX_MATRIX_TEXT_BYTES
_WORD = 8
_ALL_BITS = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
# Byte patterns for eight ASCII digits in a little-endian 64-bit word.
_ASCII_ZEROS = np.uint64(0x3030_3030_3030_3030)
_HIGH_NIBBLES = np.uint64(0xF0F0_F0F0_F0F0_F0F0)
_SIXES = np.uint64(0x0606_0606_0606_0606)
_TYPE_BYTES = 2 * _WORD


@dataclass(slots=True)
class FieldBounds:
    """Byte offsets of the fields of a chunk of lines.

    ``commas`` has one row per line with the offsets of its commas, and
    ``line_starts`` and ``line_ends`` bound each line without its line
    break. Columns are cut out on demand, because a layout uses only some.
    """

    commas: IntArray
    line_starts: IntArray
    line_ends: IntArray

    @property
    def rows(self) -> int:
        return len(self.line_starts)

    def column(self, index: int) -> tuple[IntArray, IntArray]:
        """Return (start offsets, end offsets) of field ``index`` of every line."""
        last = self.commas.shape[1]
        starts = self.line_starts if index == 0 else self.commas[:, index - 1] + 1
        ends = self.line_ends if index == last else self.commas[:, index]
        return starts, np.ascontiguousarray(ends)

    def field(self, row: int, index: int) -> tuple[int, int]:
        """Return (start offset, end offset) of one field."""
        last = self.commas.shape[1]
        start = self.line_starts[row] if index == 0 else self.commas[row, index - 1] + 1
        end = self.line_ends[row] if index == last else self.commas[row, index]
        return int(start), int(end)


def split_fields(
    data: bytes | bytearray, newlines: IntArray, width: int
) -> FieldBounds | None:
    """Return the field bounds of a chunk of whole lines, or None.

    ``newlines`` are the positions of the chunk's `\\n` bytes, and the chunk
    ends with one. None means the chunk is not plain, and pandas reads it.
    A chunk is not plain when it has a quote or a NUL, a blank line, a line
    with another number of fields than ``width``, or a `\\r` that does not
    end a line. A line of only commas is an empty record, which counts as a
    blank line, so it makes a chunk not plain too.
    """
    rows = len(newlines)
    if width < 2 or rows == 0 or b'"' in data or b"\x00" in data:
        return None
    buffer = np.frombuffer(data, dtype=np.uint8)
    commas = np.flatnonzero(buffer == _COMMA)
    if len(commas) != rows * (width - 1):
        return None
    grid = commas.reshape(rows, width - 1)
    line_starts = np.empty(rows, dtype=np.int64)
    line_starts[0] = 0
    line_starts[1:] = newlines[:-1] + 1
    # With the right total, every line has width - 1 commas exactly when
    # each line's group of commas lies inside that line.
    if not ((grid[:, 0] >= line_starts).all() and (grid[:, -1] < newlines).all()):
        return None

    line_ends = newlines
    if b"\r" in data:
        carriage = buffer[newlines - 1] == _RETURN
        if int(carriage.sum()) != data.count(b"\r"):
            return None
        line_ends = newlines - carriage
    # A line as long as its commas has only empty fields.
    if ((line_ends - line_starts) == width - 1).any():
        return None
    return FieldBounds(grid, line_starts, line_ends)


def is_utf8(data: bytes | bytearray) -> bool:
    """Return True when ``data`` is valid UTF-8 text."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_fields(
    data: bytes | bytearray,
    bounds: FieldBounds,
    *,
    positions: dict[str, int],
    layout: Layout,
    first_line: int,
) -> ParsedChunk:
    """Validate and convert a plain chunk of UTF-8 text.

    ``positions`` maps each column of the layout to its field index in the
    header. ``first_line`` is the line number of the chunk's first row.
    """
    buffer = _PaddedBytes(data)
    size = bounds.rows

    def field(name: str) -> tuple[IntArray, IntArray]:
        return bounds.column(positions[name])

    ok = np.ones(size, dtype=bool)
    if layout is Layout.REES46:
        event_time, time_ok = _times(buffer, *field("event_time"))
        ok &= time_ok
        category_id, category_null, category_ok = _ids(
            buffer, *field("category_id"), optional=True
        )
        ok &= category_ok
        session = _texts(data, buffer, *field("user_session"))
    else:
        event_time = np.zeros(size, dtype=np.int64)
        category_id = np.zeros(size, dtype=np.int64)
        category_null = np.ones(size, dtype=bool)
        session = TextColumn(np.full(size, -1, dtype=np.int64), _no_values())

    product_id, _, product_ok = _ids(buffer, *field("product_id"), optional=False)
    user_id, _, user_ok = _ids(buffer, *field("user_id"), optional=False)
    price, price_null, price_ok = _prices(buffer, *field("price"))
    event_type = _event_types(buffer, *field("event_type"))
    ok &= product_ok & user_ok & price_ok & ~event_type.null()

    columns = EventColumns(
        event_time=event_time,
        event_time_null=np.full(size, layout is Layout.SLIM, dtype=bool),
        event_type=event_type,
        product_id=product_id,
        category_id=category_id,
        category_id_null=category_null,
        category_code=_texts(data, buffer, *field("category_code")),
        brand=_texts(data, buffer, *field("brand")),
        price=price,
        price_null=price_null,
        user_id=user_id,
        user_session=session,
    )
    names = LAYOUT_COLUMNS[layout]

    def read_row(index: int) -> dict[str, object]:
        row: dict[str, object] = {}
        for name in names:
            start, end = bounds.field(index, positions[name])
            row[name] = bytes(data[start:end]).decode("utf-8")
        return row

    return finish_chunk(
        columns,
        suspects=np.flatnonzero(~ok),
        read_row=read_row,
        blank=np.zeros(size, dtype=bool),
        layout=layout,
        first_line=first_line,
    )


class _PaddedBytes:
    """A chunk's bytes with zero padding, read as rows of fixed-width windows.

    A window is a row of a strided view of the array, so taking the windows
    of all fields copies each window once and builds no offset matrix. For
    the sessions of 50,000 rows that took 0.8 ms, and ``np.take`` with a
    matrix of offsets 5.6 ms.
    """

    def __init__(self, data: bytes | bytearray) -> None:
        self.padded = np.zeros(len(data) + 2 * _PADDING, dtype=np.uint8)
        self.padded[_PADDING : _PADDING + len(data)] = np.frombuffer(
            data, dtype=np.uint8
        )

    def window(self, first: IntArray, width: int) -> npt.NDArray[np.uint8]:
        """Return a copy of ``width`` bytes from each offset in ``first``.

        Offsets may reach up to the padding's width before or after the data.
        """
        view = np.lib.stride_tricks.sliding_window_view(self.padded, width)
        rows: npt.NDArray[np.uint8] = view[first + _PADDING]
        return rows


def _rows_all(mask: npt.NDArray[np.bool_]) -> BoolArray:
    """Return per row whether every entry is True; the width is a multiple of 8.

    Reading the rows as 64-bit words took 0.8 ms for 50,000 rows of 24,
    and ``all(axis=1)`` 1.2 ms.
    """
    missing = (~mask).view(np.uint64)
    result: BoolArray = np.logical_not(missing.any(axis=1))
    return result


def _keep_word_bytes(words: npt.NDArray[np.uint64], lengths: IntArray) -> None:
    """Zero the bytes of each row at and after its length, in place.

    ``words`` are the rows' bytes as little-endian 64-bit words. Masking a
    word at a time took about half the time of a mask over every byte.
    """
    for column in range(words.shape[1]):
        kept_bytes = np.clip(lengths - _WORD * column, 0, _WORD).astype(np.uint64)
        bits = kept_bytes * np.uint64(_WORD)
        partial = (np.uint64(1) << (bits & np.uint64(63))) - np.uint64(1)
        words[:, column] &= np.where(kept_bytes == _WORD, _ALL_BITS, partial)


def _ids(
    buffer: _PaddedBytes, starts: IntArray, ends: IntArray, *, optional: bool
) -> tuple[IntArray, BoolArray, BoolArray]:
    """Return (ids, null mask, ok mask) for fields of 1 to 19 ASCII digits.

    The fields are read right-aligned into 64-bit words, with the bytes left
    of a field set to `0`, and each word's eight digits are checked and
    converted at once (SWAR). For the three id columns of 1M events that
    took 0.15 s of CPU time, and a loop over the digit columns 0.26 s.
    19 digits are below 2^64, so the sum is exact.
    """
    lengths = ends - starts
    null = lengths == 0
    longest = int(min(lengths.max(initial=1), _MAX_ID_DIGITS)) or 1
    width = (longest + _WORD - 1) // _WORD * _WORD
    words = buffer.window(ends - width, width).view(np.uint64)
    ok = (lengths >= 1) & (lengths <= _MAX_ID_DIGITS)
    unsigned = np.zeros(len(lengths), dtype=np.uint64)
    for column in range(words.shape[1]):
        # The low bytes of a little-endian word come first in the text.
        outside = np.clip(width - lengths - _WORD * column, 0, _WORD)
        low = _low_bytes_mask(outside)
        word = (words[:, column] & ~low) | (_ASCII_ZEROS & low)
        ok &= _all_digits(word)
        unsigned = unsigned * np.uint64(10**_WORD) + _eight_digits(word)
    ok &= unsigned <= np.uint64(MAX_ID)
    ids: IntArray = np.where(ok, unsigned, np.uint64(0)).astype(np.int64)
    if optional:
        ok |= null
    return ids, null, ok


def _low_bytes_mask(count: IntArray) -> npt.NDArray[np.uint64]:
    """Return words whose ``count`` low bytes (0 to 8) have all bits set."""
    bits = count.astype(np.uint64) * np.uint64(_WORD)
    partial = (np.uint64(1) << (bits & np.uint64(63))) - np.uint64(1)
    mask: npt.NDArray[np.uint64] = np.where(count >= _WORD, _ALL_BITS, partial)
    return mask


def _all_digits(words: npt.NDArray[np.uint64]) -> BoolArray:
    """Mark the words whose eight bytes are all ASCII digits.

    A byte is a digit when its high nibble is 3 and adding 6 keeps it 3. The
    addition can carry into the next byte only from a byte whose high nibble
    is not 3, and that byte fails the first test.
    """
    high = (words & _HIGH_NIBBLES) == _ASCII_ZEROS
    result: BoolArray = high & (((words + _SIXES) & _HIGH_NIBBLES) == _ASCII_ZEROS)
    return result


def _eight_digits(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Return the number written by the eight ASCII digits of each word.

    The first character is the low byte. Pairs of digits, then pairs of
    pairs, then the two halves are combined by multiply-and-add on masked
    lanes, each of which stays far below its lane's width.
    """
    values = words - _ASCII_ZEROS
    values = (values & np.uint64(0x000F_000F_000F_000F)) * np.uint64(10) + (
        (values >> np.uint64(8)) & np.uint64(0x000F_000F_000F_000F)
    )
    values = (values & np.uint64(0x0000_007F_0000_007F)) * np.uint64(100) + (
        (values >> np.uint64(16)) & np.uint64(0x0000_007F_0000_007F)
    )
    values = (values & np.uint64(0x3FFF)) * np.uint64(10_000) + (
        (values >> np.uint64(32)) & np.uint64(0x3FFF)
    )
    return values


def _times(
    buffer: _PaddedBytes, starts: IntArray, ends: IntArray
) -> tuple[IntArray, BoolArray]:
    """Return (microseconds, ok mask) for times written `YYYY-MM-DD HH:MM:SS UTC`."""
    codes = buffer.window(starts, TIME_LENGTH)
    return times_from_bytes(codes, (ends - starts) == TIME_LENGTH)


def _prices(
    buffer: _PaddedBytes, starts: IntArray, ends: IntArray
) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Return (prices, null mask, ok mask) for plain decimals such as `-35.79`.

    A plain decimal has an optional sign, at most one point, and at most 15
    digits. Its digits as an integer M are below 2^53 and its f fraction
    digits give 10^f exactly, so M / 10^f is one correctly rounded IEEE
    division and equals ``float()`` of the text. Other forms (exponents,
    more digits) are left to the row validator.
    """
    lengths = ends - starts
    null = lengths == 0
    longest = int(min(lengths.max(initial=1), _MAX_PRICE_BYTES)) or 1
    width = (longest + _WORD - 1) // _WORD * _WORD
    codes = buffer.window(starts, width)
    inside = np.arange(width) < lengths[:, None]
    digit = ((codes - _ZERO) < 10) & inside
    dot = (codes == _DOT) & inside
    sign = (codes[:, 0] == _MINUS) | (codes[:, 0] == _PLUS)
    allowed = digit | dot | ~inside
    allowed[:, 0] |= sign

    digit_count = digit.sum(axis=1)
    dots = dot.sum(axis=1)
    ok = _rows_all(allowed) & (dots <= 1) & (digit_count >= 1)
    ok &= (digit_count <= _MAX_PRICE_DIGITS) & (lengths <= _MAX_PRICE_BYTES)

    mantissa = np.zeros(len(lengths), dtype=np.int64)
    values = (codes - _ZERO).astype(np.int64)
    for column in range(longest):
        mantissa = np.where(
            digit[:, column], mantissa * 10 + values[:, column], mantissa
        )
    point = np.argmax(dot, axis=1)
    fraction_digits = np.where(dots == 1, lengths - 1 - point, 0)
    fraction_digits = np.where(ok, fraction_digits, 0)
    prices = mantissa.astype(np.float64) / _POWERS_OF_TEN[fraction_digits]
    prices = np.where(codes[:, 0] == _MINUS, -prices, prices)
    prices = np.where(ok, prices, 0.0)
    return prices, null, ok | null


def _event_types(buffer: _PaddedBytes, starts: IntArray, ends: IntArray) -> TextColumn:
    """Return the event types, with NULL for a field that matches none of them.

    Each field's bytes are compared with the four names as 16-byte words.
    """
    lengths = ends - starts
    words = buffer.window(starts, _TYPE_BYTES).view(np.uint64)
    _keep_word_bytes(words, lengths)
    codes = np.full(len(lengths), -1, dtype=np.int64)
    for index, pattern in enumerate(_TYPE_PATTERNS):
        same = (words == pattern).all(axis=1) & (lengths == len(EVENT_TYPES[index]))
        codes[same] = index
    values = np.empty(len(EVENT_TYPES), dtype=object)
    values[:] = EVENT_TYPES
    return TextColumn(codes, values)


def _texts(
    data: bytes | bytearray,
    buffer: _PaddedBytes,
    starts: IntArray,
    ends: IntArray,
) -> TextColumn:
    """Return the fields as a TextColumn, with empty fields as NULL.

    Equal fields get the same code: a 64-bit fingerprint of the bytes
    groups them, and a byte-for-byte comparison with the group's first
    field confirms each group, so a fingerprint collision cannot merge two
    different texts. Only the distinct texts become Python strings.
    """
    lengths = ends - starts
    longest = int(lengths.max(initial=0))
    if longest == 0:
        return TextColumn(np.full(len(lengths), -1, dtype=np.int64), _no_values())
    if longest > _MAX_MATRIX_TEXT_BYTES:
        return _texts_one_by_one(data, starts, ends)

    width = (longest + _WORD - 1) // _WORD * _WORD
    matrix = buffer.window(starts, width)
    words = matrix.view(np.uint64)
    _keep_word_bytes(words, lengths)
    fingerprint = lengths.astype(np.uint64)
    with np.errstate(over="ignore"):
        for column in range(words.shape[1]):
            fingerprint = (fingerprint ^ words[:, column]) * _FINGERPRINT_MULTIPLIER
            fingerprint ^= fingerprint >> _FINGERPRINT_SHIFT
    codes, distinct = pd.factorize(fingerprint)
    first = np.empty(len(distinct), dtype=np.int64)
    # Any row of a group can stand for it. Assigning in reverse makes it the
    # first one in numpy's sequential order, which only matters for speed.
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    representative = first[codes]
    if not (
        (words == words[representative]).all()
        and (lengths == lengths[representative]).all()
    ):
        return _texts_one_by_one(data, starts, ends)

    values, utf8 = _decode_rows(matrix[first], lengths[first])
    codes = codes.astype(np.int64)
    empty = np.flatnonzero(lengths[first] == 0)
    if len(empty):
        # The empty field is NULL: drop it from the values and renumber.
        empty_code = int(empty[0])
        codes = np.where(codes == empty_code, -1, codes - (codes > empty_code))
        values = np.delete(values, empty_code)
        utf8 = utf8.delete(empty_code)
    return TextColumn(codes, values, utf8)


def _decode_rows(
    matrix: npt.NDArray[np.uint8], lengths: IntArray
) -> tuple[npt.NDArray[np.object_], Utf8Texts]:
    """Return each row's first ``lengths`` bytes as a str, and as UTF-8 bytes.

    The rows are joined with line breaks (which no field contains) and
    decoded and split at once, which is faster than one slice per row. The
    joined bytes serve as the UTF-8 form.
    """
    count, width = matrix.shape
    shortest = int(lengths.min(initial=0))
    if shortest == int(lengths.max(initial=0)):
        # Fields of one length, such as UUIDs: no bytes to drop.
        framed = np.empty((count, shortest + 1), dtype=np.uint8)
        framed[:, :shortest] = matrix[:, :shortest]
        framed[:, shortest] = _NEWLINE
        joined = framed.tobytes()
    else:
        framed = np.zeros((count, width + 1), dtype=np.uint8)
        framed[:, :width] = matrix
        framed[np.arange(count), lengths] = _NEWLINE
        joined = framed[np.arange(width + 1) <= lengths[:, None]].tobytes()
    values = np.empty(count, dtype=object)
    values[:] = joined.decode("utf-8").split("\n")[:-1]
    lengths = lengths.astype(np.int64)
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    return values, Utf8Texts(joined, starts, lengths)


def _texts_one_by_one(
    data: bytes | bytearray, starts: IntArray, ends: IntArray
) -> TextColumn:
    objects = np.empty(len(starts), dtype=object)
    objects[:] = [
        bytes(data[start:end]).decode("utf-8") or None
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    return TextColumn.from_objects(objects)


def _no_values() -> npt.NDArray[np.object_]:
    return np.empty(0, dtype=object)
