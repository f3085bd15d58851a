"""Event rows as the store returns them, event types and their weights."""

from __future__ import annotations

from dataclasses import dataclass

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "remove_from_cart", "purchase")

# Weights of the event types that count as interactions in training.
# `remove_from_cart` is stored but has no weight, so training skips it.
_INTERACTION_WEIGHTS: dict[str, float] = {"view": 1.0, "cart": 2.0, "purchase": 4.0}

# Largest id the store accepts: ids are SQLite INTEGERs (signed 64 bit).
MAX_ID = 2**63 - 1

# The columns of an event in the order of the nine-column REES46 layout.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)


def event_weights() -> dict[str, float]:
    """Return the training weight of each interaction type (view 1, cart 2, ...).

    The returned dict is a copy. Types missing from it (`remove_from_cart`)
    are not interactions.
    """
    return dict(_INTERACTION_WEIGHTS)


def interaction_types() -> tuple[str, ...]:
    """Return the event types that count as interactions in training."""
    return tuple(_INTERACTION_WEIGHTS)


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event.

    ``event_time`` is microseconds since 1970-01-01 UTC, or None for rows from
    the slim layout, which has no time. Empty fields are None.
    """

    id: int
    event_time: int | None
    event_type: str
    product_id: int
    category_id: int | None
    category_code: str | None
    brand: str | None
    price: float | None
    user_id: int
    user_session: str | None
    negative_price: bool
    source: int | None
    included: bool


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """Numbers of events, distinct customers and distinct products in the store."""

    events: int
    customers: int
    products: int
