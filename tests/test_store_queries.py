"""Paged reads, counts, search, interactions and event weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from merchant_app.store import EventFilter, EventStore, event_weights
from tests.store_support import SLIM_HEADER, write_csv

# user, product, category code, brand, price, type
ROWS = [
    (1, 10, "electronics.phone", "acme", "5", "view"),
    (1, 11, "", "beta", "7", "cart"),
    (2, 10, "electronics.phone", "acme", "5", "purchase"),
    (3, 12, "home.kitchen", "", "", "remove_from_cart"),
    (2, 13, "home_garden", "gamma", "-1", "view"),
]


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    lines = [SLIM_HEADER] + [",".join(map(str, row)) for row in ROWS]
    with EventStore.open(tmp_path / "merchant.sqlite") as opened:
        opened.import_csv(write_csv(tmp_path, "rows.csv", lines))
        yield opened


def test_counts_events_customers_products(store: EventStore) -> None:
    counts = store.counts()

    assert counts.events == len(ROWS)
    assert counts.customers == len({row[0] for row in ROWS})
    assert counts.products == len({row[1] for row in ROWS})


def test_count_events_with_filters(store: EventStore) -> None:
    assert store.count_events(EventFilter(user_id=1)) == 2
    assert store.count_events(EventFilter(product_id=10)) == 2
    assert store.count_events(EventFilter(event_type="view")) == 2
    assert store.count_events(EventFilter(user_id=2, event_type="view")) == 1
    assert store.count_events(EventFilter(included=False)) == 0


def test_fetch_events_pages_in_id_order(store: EventStore) -> None:
    first = store.fetch_events(limit=2)
    second = store.fetch_events(limit=2, offset=2)
    third = store.fetch_events(limit=2, after_id=second[-1].id)

    ids = [event.id for event in first + second + third]
    assert ids == sorted(ids)
    assert len(ids) == len(ROWS)
    assert [(e.user_id, e.product_id) for e in first] == [(1, 10), (1, 11)]


def test_fetch_events_keyset_descending(store: EventStore) -> None:
    newest = store.fetch_events(limit=2, descending=True)
    older = store.fetch_events(limit=10, descending=True, after_id=newest[-1].id)

    assert [e.id for e in newest + older] == sorted(
        (e.id for e in newest + older), reverse=True
    )
    assert len(newest + older) == len(ROWS)


def test_fetch_events_sorted_by_price(store: EventStore) -> None:
    events = store.fetch_events(limit=10, sort="price")

    # SQLite sorts NULL first in ascending order.
    assert [e.price for e in events] == [None, -1.0, 5.0, 5.0, 7.0]


def test_fetch_events_search_text(store: EventStore) -> None:
    by_brand = store.fetch_events(limit=10, event_filter=EventFilter(search="ACME"))
    by_id = store.fetch_events(limit=10, event_filter=EventFilter(search="12"))
    underscore = store.fetch_events(limit=10, event_filter=EventFilter(search="home_"))

    assert [e.product_id for e in by_brand] == [10, 10]
    assert [e.product_id for e in by_id] == [12]
    assert [e.category_code for e in underscore] == ["home_garden"]
    assert store.count_events(EventFilter(search="acme")) == 2


def test_fetch_events_rejects_unknown_sort(store: EventStore) -> None:
    with pytest.raises(ValueError, match="cannot sort by 'price; DROP'"):
        store.fetch_events(limit=1, sort="price; DROP")


def test_fetch_events_keyset_needs_id_sort(store: EventStore) -> None:
    with pytest.raises(ValueError, match="after_id paging needs sort='id'"):
        store.fetch_events(limit=1, sort="price", after_id=1)


def test_interactions_skip_remove_from_cart(store: EventStore) -> None:
    expected = [
        (row[0], row[1], row[5]) for row in ROWS if row[5] != "remove_from_cart"
    ]

    assert store.interactions() == expected


def test_event_weights_rank_purchase_over_view() -> None:
    weights = event_weights()

    assert weights == {"view": 1.0, "cart": 2.0, "purchase": 4.0}
    assert "remove_from_cart" not in weights
    weights["view"] = 9.0
    assert event_weights()["view"] == 1.0
