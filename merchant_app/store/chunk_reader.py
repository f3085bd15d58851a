"""Reading an event CSV file in chunks: plain chunks as bytes, the rest with pandas.

The reader cuts the file into chunks of whole lines and yields each plain
chunk (``byte_parse.split_fields``) as bytes with its field bounds. A chunk
is not plain when it has a quote, a blank line, a line with another number
of fields, or text that is not UTF-8. From the first such chunk to the end
of the file, pandas reads the chunks with every field as text, as it read
whole files before. That chunk starts on a record boundary, because every
chunk before it had no quotes and ended with a line break.

pandas treats the first data row of a stream specially (with
``index_col=False`` it drops extra fields of that row without an error), so
the stream handed to pandas starts with the header and one empty record
that the reader drops. Every row after it then gets the same treatment as
in a read of the whole file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from merchant_app.errors import InputDataError, InvalidRowError
from merchant_app.store.byte_parse import FieldBounds, is_utf8, split_fields
from merchant_app.store.hashing import IntArray
from merchant_app.store.layouts import check_delimiter, describe_layouts

_BOM = b"\xef\xbb\xbf"
_HEADER_SAMPLE_BYTES = 1 << 16
_READ_BLOCK_BYTES = 1 << 20
_PANDAS_LINE_RE = re.compile(r"line (\d+)")
# Lines of the stream handed to pandas before the file's own rows: the
# header and the dropped empty record.
_HANDOFF_PREFIX_LINES = 2


@dataclass(frozen=True, slots=True)
class Header:
    """The header of a CSV file and where its data rows start.

    ``data_offset`` is the byte offset of line 2, or None when the header
    line is not plain (quoted, or longer than the sample), and pandas then
    reads the whole file.
    """

    fields: list[str]
    header_line: bytes
    data_offset: int | None


@dataclass(slots=True)
class ByteChunk:
    """A plain chunk: its bytes and field bounds, and the bytes read so far."""

    data: bytes | bytearray
    bounds: FieldBounds
    bytes_done: int


@dataclass(slots=True)
class FrameChunk:
    """A chunk read by pandas, every field as text, and the bytes read so far."""

    frame: pd.DataFrame
    bytes_done: int


def read_header(path: Path) -> Header:
    """Return the header fields, the header line and the data offset.

    Raises InvalidRowError for an empty file, another delimiter, or a first
    row with more fields than the header.
    """
    try:
        with path.open("rb") as stream:
            sample = stream.read(_HEADER_SAMPLE_BYTES)
    except OSError as exc:
        raise unreadable(path, exc) from exc
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
    fields = next(csv.reader([lines[0]]))
    if len(lines) > 2:
        _check_first_row_width(lines[1], len(fields), path)
    header_line, data_offset = _plain_header(sample, fields)
    return Header(fields, header_line, data_offset)


def read_chunks(
    path: Path, header: Header, chunk_rows: int
) -> Generator[ByteChunk | FrameChunk, None, None]:
    """Yield the chunks of the file in order, each of at most ``chunk_rows`` rows.

    Raises InvalidRowError (an InputDataError) for a row pandas cannot read
    and InputDataError for text that is not UTF-8.
    """
    if header.data_offset is None:
        yield from _frame_chunks(path, chunk_rows, offset=0, handoff=None)
        return
    offset = header.data_offset
    line = 2
    width = len(header.fields)
    try:
        with path.open("rb") as stream:
            stream.seek(offset)
            for data, newlines, length in _line_blocks(stream, chunk_rows):
                bounds = split_fields(data, newlines, width) if is_utf8(data) else None
                if bounds is None:
                    break
                offset += length
                line += bounds.rows
                yield ByteChunk(data, bounds, offset)
            else:
                return
    except OSError as exc:
        raise unreadable(path, exc) from exc
    handoff = _Handoff(header.header_line, width, line)
    yield from _frame_chunks(path, chunk_rows, offset=offset, handoff=handoff)


def unreadable(path: Path, exc: OSError) -> InputDataError:
    """Return the error for a file that cannot be read."""
    return InputDataError(
        f"cannot read {path}: {exc.strerror}. Check the path and its permissions",
        user_message=f"The file {path.name} cannot be read.",
    )


def not_utf8(path: Path, exc: UnicodeDecodeError, *, shift: int = 0) -> InputDataError:
    """Return the error for a file that is not UTF-8 text.

    ``shift`` turns the decoder's offset into one in the file, for a decoder
    that started elsewhere.
    """
    return InputDataError(
        f"{path.name} is not UTF-8 text: invalid byte at offset about "
        f"{exc.start + shift}. "
        "Save the file as UTF-8 CSV and import it again",
        user_message=f"The file {path.name} is not UTF-8 text. Save it as UTF-8.",
    )


def _plain_header(sample: bytes, fields: list[str]) -> tuple[bytes, int | None]:
    """Return the header line's bytes and the offset of line 2, if plain.

    The fast path splits lines at `\\n` only, so it is used only when that
    split gives the same header as the csv module's reading of the sample.
    """
    start = len(_BOM) if sample.startswith(_BOM) else 0
    end = sample.find(b"\n", start)
    if end < 0:
        return b"", None
    line = sample[start : end + 1]
    if b'"' in line:
        return line, None
    try:
        text = line.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        return line, None
    if "\r" in text or text.split(",") != fields:
        return line, None
    return line, end + 1


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
        raise not_utf8(path, exc) from exc


def _line_blocks(
    stream: io.BufferedReader, chunk_rows: int
) -> Iterator[tuple[bytearray, IntArray, int]]:
    """Yield (data, line break positions, bytes consumed) per ``chunk_rows`` lines.

    A last line without a line break gets one appended, so ``data`` always
    ends with one, and ``bytes consumed`` counts only the file's bytes.
    """
    pending = bytearray()
    breaks = np.empty(0, dtype=np.int64)
    at_end = False
    while True:
        while len(breaks) < chunk_rows and not at_end:
            block = stream.read(_READ_BLOCK_BYTES)
            if not block:
                at_end = True
                break
            found = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            breaks = np.concatenate([breaks, found + len(pending)])
            pending += block
        if len(breaks) >= chunk_rows:
            cut = int(breaks[chunk_rows - 1]) + 1
            yield pending[:cut], breaks[:chunk_rows], cut
            del pending[:cut]
            breaks = breaks[chunk_rows:] - cut
            continue
        if not pending:
            return
        length = len(pending)
        if not pending.endswith(b"\n"):
            pending += b"\n"
            breaks = np.append(breaks, len(pending) - 1)
        yield pending, breaks, length
        return


@dataclass(frozen=True, slots=True)
class _Handoff:
    """The point where pandas takes over the file.

    ``header_line`` and its field count ``width`` start the stream pandas
    reads, and ``first_line`` is the line number of the first file row.
    """

    header_line: bytes
    width: int
    first_line: int

    def prefix(self) -> bytes:
        """Return the header line and an empty record, as pandas reads first."""
        return (
            self.header_line.rstrip(b"\r\n") + b"\n" + b"," * (self.width - 1) + b"\n"
        )


def _frame_chunks(
    path: Path, chunk_rows: int, *, offset: int, handoff: _Handoff | None
) -> Generator[FrameChunk, None, None]:
    """Yield pandas chunks of the file from ``offset`` on, every field as text.

    With a ``handoff``, pandas reads its prefix before the file's bytes from
    ``offset``, and the empty record is dropped. Column names are stripped
    of spaces. Parser errors become InputDataError with the file's line
    number.
    """
    prefix = b"" if handoff is None else handoff.prefix()
    # pandas numbers the lines of its stream, which has the prefix's lines
    # before the line at ``offset``.
    line_shift = (
        0 if handoff is None else handoff.first_line - _HANDOFF_PREFIX_LINES - 1
    )
    try:
        raw = _PrefixedFile(path, offset=offset, prefix=prefix)
        with io.BufferedReader(raw, _READ_BLOCK_BYTES) as stream:
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
                skip = 0 if handoff is None else 1
                for frame in reader:
                    frame.columns = [str(name).strip() for name in frame.columns]
                    if skip:
                        frame = frame.iloc[skip:]
                        skip = 0
                    if len(frame):
                        yield FrameChunk(frame, offset + raw.file_bytes_read)
    except OSError as exc:
        raise unreadable(path, exc) from exc
    except UnicodeDecodeError as exc:
        # pandas decodes its stream: the prefix, then the file from ``offset``.
        raise not_utf8(path, exc, shift=offset - len(prefix)) from exc
    except pd.errors.ParserError as exc:
        match = _PANDAS_LINE_RE.search(str(exc))
        line = int(match.group(1)) + line_shift if match else None
        raise InvalidRowError(
            f"{path.name}: line {line}: the row cannot be read as CSV ({exc}). "
            "Check the number of fields and the quotes in that line",
            line=line,
            user_message=f"Line {line} of {path.name} is not valid CSV.",
        ) from exc


class _PrefixedFile(io.RawIOBase):
    """``prefix`` followed by a file's bytes from ``offset``.

    ``file_bytes_read`` counts the bytes read from the file, not the prefix,
    for progress.
    """

    def __init__(self, path: Path, *, offset: int, prefix: bytes) -> None:
        super().__init__()
        self._file = io.FileIO(path, "rb")
        self._file.seek(offset)
        self._prefix = memoryview(prefix)
        self.file_bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        count = self._file.readinto(buffer) or 0
        self.file_bytes_read += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()
