"""Validation of single field values: the rules every import and edit applies.

The vectorised chunk parser accepts only values these functions accept. Any
value it is unsure of is checked here, so the messages come from one place.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from merchant_app.store.rows import EVENT_COLUMNS, EVENT_TYPES, MAX_ID

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MICROSECOND = dt.timedelta(microseconds=1)

_ID_RE = re.compile(r"[0-9]+")
_PRICE_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# `2019-10-01 00:00:00 UTC` as in REES46, or ISO 8601 with `T`, and with an
# explicit UTC designator (` UTC`, `Z` or `+00:00`) in both cases. Times
# without a designator are rejected, because their zone is unknown.
_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,6}))?"
    r"(?: UTC|Z|\+00:00)"
)

REQUIRED_COLUMNS = frozenset({"event_type", "product_id", "user_id"})


class FieldError(ValueError):
    """A field value is invalid. ``reason`` gives the cause and the expected form."""

    def __init__(self, column: str, value: str, reason: str) -> None:
        super().__init__(f"column {column!r}: value {value!r}: {reason}")
        self.column = column
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EventValues:
    """The validated values of one event, typed as the store keeps them."""

    event_time: int | None
    event_type: str
    product_id: int
    category_id: int | None
    category_code: str | None
    brand: str | None
    price: float | None
    user_id: int
    user_session: str | None

    def as_tuple(self) -> tuple[object, ...]:
        """Return the values in the order of the REES46 columns."""
        return tuple(getattr(self, column) for column in EVENT_COLUMNS)


def parse_id(column: str, value: object) -> int:
    """Return the id in ``value`` (digits or an int) as an exact int."""
    if isinstance(value, bool):
        raise FieldError(column, str(value), "expected an integer id")
    if isinstance(value, int):
        number = value
    else:
        text = _as_text(value)
        if text == "":
            raise FieldError(column, text, "the id is missing, and every row needs one")
        if _ID_RE.fullmatch(text) is None:
            raise FieldError(
                column, text, f"expected an integer id from 0 to {MAX_ID} (digits only)"
            )
        number = int(text)
    if not 0 <= number <= MAX_ID:
        raise FieldError(
            column, str(value), f"the id is outside the range 0 to {MAX_ID}"
        )
    return number


def parse_optional_id(column: str, value: object) -> int | None:
    """Return the id in ``value``, or None for an empty field."""
    if value is None or value == "":
        return None
    return parse_id(column, value)


def parse_time(column: str, value: object) -> int | None:
    """Return the time in ``value`` as microseconds since the epoch (UTC).

    Accepts text with a UTC designator, an aware datetime, or an int of
    microseconds. An empty field is None.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise FieldError(
                column, str(value), "the time has no time zone. Give it in UTC"
            )
        return (value - _EPOCH) // _ONE_MICROSECOND
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = _as_text(value)
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise FieldError(
            column,
            text,
            "expected a UTC time like '2019-10-01 00:00:00 UTC' "
            "(or ISO 8601 ending in Z or +00:00)",
        )
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=dt.UTC,
        )
    except ValueError as exc:
        raise FieldError(column, text, f"not a valid date or time: {exc}") from exc
    return (moment - _EPOCH) // _ONE_MICROSECOND


def parse_price(column: str, value: object) -> float | None:
    """Return the price in ``value`` as a finite float, or None for an empty field."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        text = _as_text(value)
        if _PRICE_RE.fullmatch(text) is None:
            raise FieldError(
                column, text, "expected a number with '.' as decimal point, like 35.79"
            )
        number = float(text)
    if not math.isfinite(number):
        raise FieldError(column, str(value), "the price is too large or not finite")
    return number


def parse_event_type(column: str, value: object) -> str:
    """Return ``value`` if it is one of the known event types."""
    text = _as_text(value)
    if text not in EVENT_TYPES:
        raise FieldError(
            column,
            text,
            f"unknown event type; expected one of {', '.join(EVENT_TYPES)}",
        )
    return text


def parse_text(column: str, value: object) -> str | None:
    """Return ``value`` as text, or None for an empty field."""
    if value is None:
        return None
    text = _as_text(value)
    return text if text != "" else None


def parse_event(
    values: Mapping[str, object], *, require_time: bool = False
) -> EventValues:
    """Validate the fields of one event, where absent columns count as empty.

    Fields are checked in the order of the REES46 columns and the first
    invalid one raises FieldError. ``require_time`` rejects an empty time,
    as the REES46 layout has one in every row.
    """
    event_time = parse_time("event_time", values.get("event_time"))
    if require_time and event_time is None:
        raise FieldError(
            "event_time", "", "the time is missing, and every row needs one"
        )
    return EventValues(
        event_time=event_time,
        event_type=parse_event_type("event_type", values.get("event_type", "")),
        product_id=parse_id("product_id", values.get("product_id", "")),
        category_id=parse_optional_id("category_id", values.get("category_id")),
        category_code=parse_text("category_code", values.get("category_code")),
        brand=parse_text("brand", values.get("brand")),
        price=parse_price("price", values.get("price")),
        user_id=parse_id("user_id", values.get("user_id", "")),
        user_session=parse_text("user_session", values.get("user_session")),
    )


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    # A missing trailing field reaches here as a float NaN from pandas.
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)
