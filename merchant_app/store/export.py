"""Streamed export of events to a CSV file in the REES46 layout."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from merchant_app.errors import Cancelled, InputDataError
from merchant_app.store.csv_import import CancelSignal, is_cancelled
from merchant_app.store.queries import EventFilter, where_clause
from merchant_app.store.rows import EVENT_COLUMNS

logger = logging.getLogger(__name__)

_FETCH_ROWS = 10_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def export_csv(
    connection: sqlite3.Connection,
    path: str | Path,
    *,
    event_filter: EventFilter | None = None,
    progress: Callable[[int], None] | None = None,
    cancel: CancelSignal | None = None,
) -> int:
    """Write the events (in id order) to ``path`` and return how many.

    Slim rows have an empty time, category id and session. Prices are written
    as the shortest text that reads back as the same float (33.2, not 33.20).
    The file appears only when complete: it is written next to ``path`` and
    renamed at the end. ``progress`` receives the rows written so far.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    where, parameters = where_clause(event_filter or EventFilter())
    query = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events{where} ORDER BY id"

    written = 0
    try:
        with partial.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream, lineterminator="\n")
            # The minimal writer quotes a field with "\n" but not one with a
            # lone "\r", which a CSV reader takes for a line break.
            quoting_writer = csv.writer(
                stream, lineterminator="\n", quoting=csv.QUOTE_ALL
            )
            writer.writerow(EVENT_COLUMNS)
            cursor = connection.execute(query, parameters)
            while batch := cursor.fetchmany(_FETCH_ROWS):
                if is_cancelled(cancel):
                    raise Cancelled(f"export to {path.name} cancelled")
                for row in batch:
                    values = _format_row(row)
                    if _has_carriage_return(values):
                        quoting_writer.writerow(values)
                    else:
                        writer.writerow(values)
                written += len(batch)
                if progress is not None:
                    progress(written)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputDataError(
            f"cannot write {path}: {exc.strerror}",
            user_message=f"The file {path.name} cannot be written.",
        ) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    logger.info("exported %d events to %s", written, path)
    return written


def format_time(microseconds: int) -> str:
    """Return a stored time as REES46 text, with a fraction only when non-zero."""
    moment = _EPOCH + dt.timedelta(microseconds=microseconds)
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + " UTC"


def _has_carriage_return(values: list[object]) -> bool:
    return any(isinstance(value, str) and "\r" in value for value in values)


def _format_row(row: tuple[object, ...]) -> list[object]:
    values = ["" if value is None else value for value in row]
    if isinstance(row[0], int):
        values[0] = format_time(row[0])
    return values
