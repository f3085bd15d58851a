"""Adding, editing and deleting single events, with the import's validation."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from merchant_app.errors import InputDataError, InvalidRowError
from merchant_app.store.bulk_insert import UPSERT_PRODUCT, stored_name_id
from merchant_app.store.hashing import columns_from_rows, row_hashes
from merchant_app.store.queries import get_event
from merchant_app.store.rows import EVENT_COLUMNS, EVENT_TYPES, Event
from merchant_app.store.validation import EventValues, FieldError, parse_event

logger = logging.getLogger(__name__)

# The store writes event_rows, where event type, category code and brand
# are ids (schema.py), because writes through the view set no lastrowid.
_INSERT = (
    "INSERT INTO event_rows (event_time, event_type_id, product_id, category_id, "
    "category_code_id, brand_id, price, user_id, user_session, source, row_hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)"
)
_UPDATE = (
    "UPDATE event_rows SET event_time = ?, event_type_id = ?, product_id = ?, "
    "category_id = ?, category_code_id = ?, brand_id = ?, price = ?, user_id = ?, "
    "user_session = ?, row_hash = ? WHERE id = ?"
)


def add_event(connection: sqlite3.Connection, values: Mapping[str, object]) -> int:
    """Validate and store one event, and return its id.

    ``values`` maps column names to text as typed in a form, or to typed
    values (int ids, float price, int microseconds or an aware datetime for
    the time). Absent columns are empty. Raises InvalidRowError for an
    invalid value or when an identical timed event exists.
    """
    event = _validate(values)
    with _transaction(connection):
        try:
            cursor = connection.execute(
                _INSERT, (*_row_values(connection, event), _hash(event))
            )
        except sqlite3.IntegrityError as exc:
            raise _duplicate_error(exc) from exc
        _upsert_product(connection, event)
    assert cursor.lastrowid is not None
    logger.info("event %d added", cursor.lastrowid)
    return cursor.lastrowid


def update_event(
    connection: sqlite3.Connection, event_id: int, changes: Mapping[str, object]
) -> Event:
    """Change columns of a stored event, validated like an import, and return it.

    Raises InputDataError when no event has this id, InvalidRowError for an
    invalid value or an unknown column.
    """
    unknown = sorted(set(changes) - set(EVENT_COLUMNS))
    if unknown:
        raise InvalidRowError(
            f"event {event_id}: column {unknown[0]!r} cannot be edited; "
            f"editable columns are {', '.join(EVENT_COLUMNS)}",
            column=unknown[0],
            user_message=f"The column {unknown[0]} cannot be edited.",
        )
    with _transaction(connection):
        current = _require_event(connection, event_id)
        merged = {column: getattr(current, column) for column in EVENT_COLUMNS}
        merged.update(changes)
        event = _validate(merged)
        try:
            connection.execute(
                _UPDATE, (*_row_values(connection, event), _hash(event), event_id)
            )
        except sqlite3.IntegrityError as exc:
            raise _duplicate_error(exc) from exc
        _upsert_product(connection, event)
        updated = get_event(connection, event_id)
    assert updated is not None
    logger.info("event %d updated: %s", event_id, ", ".join(sorted(changes)))
    return updated


def delete_event(connection: sqlite3.Connection, event_id: int) -> None:
    """Delete one event, or raise InputDataError when no event has this id."""
    cursor = connection.execute("DELETE FROM event_rows WHERE id = ?", (event_id,))
    if cursor.rowcount == 0:
        raise _missing_error(event_id)
    logger.info("event %d deleted", event_id)


def set_included(
    connection: sqlite3.Connection, event_ids: Iterable[int], included: bool
) -> int:
    """Mark events as taking part (or not) in the next contribution.

    Returns the number of events changed. Unknown ids are ignored.
    """
    with _transaction(connection):
        cursor = connection.executemany(
            "UPDATE event_rows SET included = ? WHERE id = ? AND included != ?",
            ((int(included), event_id, int(included)) for event_id in event_ids),
        )
    return max(cursor.rowcount, 0)


def _validate(values: Mapping[str, object]) -> EventValues:
    try:
        return parse_event(values)
    except FieldError as exc:
        raise InvalidRowError(
            f"invalid event: {exc}",
            column=exc.column,
            value=exc.value,
            user_message=f"The {exc.column} {exc.value!r} is invalid: {exc.reason}.",
        ) from exc


def _row_values(
    connection: sqlite3.Connection, event: EventValues
) -> tuple[object, ...]:
    """Return the event's values for event_rows, in REES46 column order."""
    return (
        event.event_time,
        EVENT_TYPES.index(event.event_type),
        event.product_id,
        event.category_id,
        stored_name_id(connection, "category_codes", event.category_code),
        stored_name_id(connection, "brands", event.brand),
        event.price,
        event.user_id,
        event.user_session,
    )


def _hash(event: EventValues) -> int | None:
    if event.event_time is None:
        return None
    return int(row_hashes(columns_from_rows([event.as_tuple()]))[0])


def _upsert_product(connection: sqlite3.Connection, event: EventValues) -> None:
    connection.execute(
        UPSERT_PRODUCT,
        (
            event.product_id,
            event.category_id,
            event.category_code,
            event.brand,
            event.price,
        ),
    )


def _require_event(connection: sqlite3.Connection, event_id: int) -> Event:
    event = get_event(connection, event_id)
    if event is None:
        raise _missing_error(event_id)
    return event


def _missing_error(event_id: int) -> InputDataError:
    return InputDataError(
        f"no event with id {event_id}; it may have been deleted. Reload the table",
        user_message="This event no longer exists. Reload the table.",
    )


def _duplicate_error(exc: sqlite3.IntegrityError) -> InvalidRowError:
    return InvalidRowError(
        f"an identical event (same time and every column) is already stored: {exc}",
        user_message="An identical event is already stored.",
    )


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """Run a block in a transaction on an autocommit connection."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
