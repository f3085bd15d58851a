"""Read access to the events: counts, filtered pages and training interactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from merchant_app.store.rows import Event, StoreCounts, interaction_types

EVENT_SELECT = (
    "SELECT id, event_time, event_type, product_id, category_id, category_code, "
    "brand, price, user_id, user_session, negative_price, source, included "
    "FROM events"
)

# Columns a page may be sorted by. `id` is import order.
SORT_COLUMNS = frozenset(
    {
        "id",
        "event_time",
        "event_type",
        "product_id",
        "category_id",
        "category_code",
        "brand",
        "price",
        "user_id",
        "user_session",
    }
)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Conditions on the events to count or fetch, where None means any value.

    ``search`` matches category code, brand and session by substring (case
    insensitive for ASCII) and, when it is a number, product, customer and
    category ids exactly.
    """

    user_id: int | None = None
    product_id: int | None = None
    event_type: str | None = None
    source: int | None = None
    included: bool | None = None
    search: str | None = None


def row_to_event(row: tuple[object, ...]) -> Event:
    """Build an Event from a row selected with EVENT_SELECT."""
    (
        event_id,
        event_time,
        event_type,
        product_id,
        category_id,
        category_code,
        brand,
        price,
        user_id,
        user_session,
        negative_price,
        source,
        included,
    ) = row
    return Event(
        id=int(event_id),  # type: ignore[call-overload]
        event_time=event_time,  # type: ignore[arg-type]
        event_type=str(event_type),
        product_id=int(product_id),  # type: ignore[call-overload]
        category_id=category_id,  # type: ignore[arg-type]
        category_code=category_code,  # type: ignore[arg-type]
        brand=brand,  # type: ignore[arg-type]
        price=price,  # type: ignore[arg-type]
        user_id=int(user_id),  # type: ignore[call-overload]
        user_session=user_session,  # type: ignore[arg-type]
        negative_price=bool(negative_price),
        source=source,  # type: ignore[arg-type]
        included=bool(included),
    )


def get_event(connection: sqlite3.Connection, event_id: int) -> Event | None:
    """Return the event with this id, or None."""
    row = connection.execute(f"{EVENT_SELECT} WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else row_to_event(row)


def count_events(
    connection: sqlite3.Connection, event_filter: EventFilter | None = None
) -> int:
    """Return the number of events that match the filter."""
    where, parameters = where_clause(event_filter or EventFilter())
    row = connection.execute(f"SELECT count(*) FROM events{where}", parameters)
    return int(row.fetchone()[0])


def fetch_events(
    connection: sqlite3.Connection,
    *,
    limit: int,
    offset: int = 0,
    after_id: int | None = None,
    sort: str = "id",
    descending: bool = False,
    event_filter: EventFilter | None = None,
) -> list[Event]:
    """Return one page of events that match the filter.

    Pages are chosen by ``offset``, or, when sorting by id, by ``after_id``
    (keyset paging: the events after that id in the sort direction), which
    stays fast however deep the page. Other sorts break ties by id.
    """
    if sort not in SORT_COLUMNS:
        raise ValueError(
            f"cannot sort by {sort!r}; expected one of {sorted(SORT_COLUMNS)}"
        )
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
    if after_id is not None and sort != "id":
        raise ValueError("after_id paging needs sort='id'. Use offset for other sorts")

    where, parameters = where_clause(event_filter or EventFilter())
    if after_id is not None:
        where += (" AND " if where else " WHERE ") + (
            "id < ?" if descending else "id > ?"
        )
        parameters.append(after_id)
    direction = "DESC" if descending else "ASC"
    order = f"id {direction}" if sort == "id" else f"{sort} {direction}, id {direction}"
    query = f"{EVENT_SELECT}{where} ORDER BY {order} LIMIT ? OFFSET ?"
    rows = connection.execute(query, [*parameters, limit, offset]).fetchall()
    return [row_to_event(row) for row in rows]


def store_counts(connection: sqlite3.Connection) -> StoreCounts:
    """Return the numbers of events, distinct customers and distinct products."""
    events = connection.execute("SELECT count(*) FROM events").fetchone()[0]
    customers = connection.execute(
        "SELECT count(*) FROM (SELECT DISTINCT user_id FROM events)"
    ).fetchone()[0]
    products = connection.execute(
        "SELECT count(*) FROM (SELECT DISTINCT product_id FROM events)"
    ).fetchone()[0]
    return StoreCounts(
        events=int(events), customers=int(customers), products=int(products)
    )


def interactions(
    connection: sqlite3.Connection, *, included_only: bool = True
) -> Iterator[tuple[int, int, str]]:
    """Yield (user_id, product_id, event_type) of the events training counts.

    Only interaction types (view, cart, purchase) are yielded, in id order;
    ``included_only`` skips rows the merchant left out of the next
    contribution.
    """
    types = interaction_types()
    marks = ", ".join("?" for _ in types)
    query = (
        f"SELECT user_id, product_id, event_type FROM events "
        f"WHERE event_type IN ({marks})"
    )
    if included_only:
        query += " AND included = 1"
    cursor = connection.execute(query + " ORDER BY id", types)
    while batch := cursor.fetchmany(10_000):
        yield from batch


def where_clause(event_filter: EventFilter) -> tuple[str, list[object]]:
    """Return the WHERE clause (empty or starting with a space) and parameters."""
    clauses: list[str] = []
    parameters: list[object] = []
    for column in ("user_id", "product_id", "event_type", "source"):
        value = getattr(event_filter, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            parameters.append(value)
    if event_filter.included is not None:
        clauses.append("included = ?")
        parameters.append(int(event_filter.included))
    if event_filter.search:
        clause, values = _search_clause(event_filter.search.strip())
        clauses.append(clause)
        parameters.extend(values)
    if not clauses:
        return "", parameters
    return " WHERE " + " AND ".join(clauses), parameters


def _search_clause(text: str) -> tuple[str, list[object]]:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    parts = [
        "category_code LIKE ? ESCAPE '\\'",
        "brand LIKE ? ESCAPE '\\'",
        "user_session LIKE ? ESCAPE '\\'",
    ]
    values: list[object] = [pattern, pattern, pattern]
    if text.isascii() and text.isdigit() and int(text) < 2**63:
        parts += ["product_id = ?", "user_id = ?", "category_id = ?"]
        values += [int(text)] * 3
    return "(" + " OR ".join(parts) + ")", values
