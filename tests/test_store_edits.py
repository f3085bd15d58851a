"""Adding, editing and deleting single events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from merchant_app.errors import InputDataError, InvalidRowError
from merchant_app.store import EventStore
from tests.store_support import REES46_HEADER, REES46_ROWS, dump, write_csv

FORM = {
    "event_time": "2019-10-02 10:00:00 UTC",
    "event_type": "purchase",
    "product_id": "1004856",
    "category_id": "2053013555631882655",
    "category_code": "electronics.smartphone",
    "brand": "samsung",
    "price": "130.76",
    "user_id": "543272936",
    "user_session": "8187d148-3c41-46d4-b0c0-9c08cd9dc564",
}


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    with EventStore.open(tmp_path / "merchant.sqlite") as opened:
        yield opened


def test_add_event_from_form_text(store: EventStore) -> None:
    event_id = store.add_event(FORM)
    event = store.get_event(event_id)

    assert event is not None
    assert event.event_time == int(
        dt.datetime(2019, 10, 2, 10, tzinfo=dt.UTC).timestamp() * 1_000_000
    )
    assert event.category_id == 2053013555631882655
    assert event.price == 130.76
    assert event.source is None
    assert event.included


def test_add_event_typed_values(store: EventStore) -> None:
    moment = dt.datetime(2020, 2, 29, 23, 59, 59, 123456, tzinfo=dt.UTC)

    event_id = store.add_event(
        {
            "event_time": moment,
            "event_type": "cart",
            "product_id": 5,
            "user_id": 2**63 - 1,
        }
    )
    event = store.get_event(event_id)

    assert event is not None
    assert event.event_time == (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // (
        dt.timedelta(microseconds=1)
    )
    assert event.user_id == 2**63 - 1
    assert event.brand is None


def test_add_event_without_time_is_slim_row(store: EventStore) -> None:
    values = {"event_type": "view", "product_id": "3", "user_id": "4"}

    first = store.add_event(values)
    second = store.add_event(values)

    assert first != second
    assert store.count_events() == 2


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("event_type", "click", "unknown event type"),
        ("product_id", "x1", "integer id"),
        ("user_id", "9223372036854775808", "outside the range"),
        ("event_time", "2019-10-01 00:00:00", "UTC time"),
        ("price", "12,5", "expected a number"),
    ],
)
def test_add_event_invalid_value_rejected(
    store: EventStore, column: str, value: str, reason: str
) -> None:
    before = dump(store)

    with pytest.raises(InvalidRowError) as caught:
        store.add_event({**FORM, column: value})

    assert caught.value.column == column
    assert caught.value.value == value
    assert f"column {column!r}" in str(caught.value)
    assert f"value {value!r}" in str(caught.value)
    assert reason in str(caught.value)
    assert dump(store) == before


def test_add_event_naive_datetime_rejected(store: EventStore) -> None:
    with pytest.raises(InvalidRowError, match="no time zone"):
        store.add_event({**FORM, "event_time": dt.datetime(2019, 10, 1)})


def test_add_event_identical_timed_row_rejected(store: EventStore) -> None:
    store.add_event(FORM)
    before = dump(store)

    with pytest.raises(InvalidRowError, match="identical event"):
        store.add_event(FORM)

    assert dump(store) == before


def test_add_event_matches_imported_row_hash(store: EventStore, tmp_path: Path) -> None:
    # A row added by hand is a duplicate of the same row in a later import.
    store.add_event(
        dict(zip(REES46_HEADER.split(","), REES46_ROWS[0].split(","), strict=True))
    )

    report = store.import_csv(
        write_csv(tmp_path, "one.csv", [REES46_HEADER, *REES46_ROWS])
    )

    assert report.duplicates == 1
    assert report.rows_added == 1


def test_update_event_changes_columns(store: EventStore) -> None:
    event_id = store.add_event(FORM)

    updated = store.update_event(event_id, {"price": "-1.5", "brand": ""})

    assert updated.price == -1.5
    assert updated.negative_price
    assert updated.brand is None
    assert updated.category_code == FORM["category_code"]


def test_update_event_invalid_value_keeps_row(store: EventStore) -> None:
    event_id = store.add_event(FORM)
    before = dump(store)

    with pytest.raises(InvalidRowError) as caught:
        store.update_event(event_id, {"user_id": "-3"})

    assert caught.value.column == "user_id"
    assert dump(store) == before


def test_update_event_unknown_column_rejected(store: EventStore) -> None:
    event_id = store.add_event(FORM)

    with pytest.raises(InvalidRowError, match="'colour' cannot be edited"):
        store.update_event(event_id, {"colour": "red"})


def test_update_missing_event_rejected(store: EventStore) -> None:
    with pytest.raises(InputDataError, match="no event with id 42"):
        store.update_event(42, {"price": "1"})


def test_update_event_into_duplicate_rejected(store: EventStore) -> None:
    store.add_event(FORM)
    other = store.add_event({**FORM, "price": "1"})
    before = dump(store)

    with pytest.raises(InvalidRowError, match="identical event"):
        store.update_event(other, {"price": FORM["price"]})

    assert dump(store) == before


def test_update_event_refreshes_product(store: EventStore) -> None:
    event_id = store.add_event(FORM)

    store.update_event(event_id, {"price": "99.5"})
    price = store.connection.execute(
        "SELECT price FROM products WHERE product_id = ?", (int(FORM["product_id"]),)
    ).fetchone()[0]

    assert price == 99.5


def test_delete_event_removes_row(store: EventStore) -> None:
    event_id = store.add_event(FORM)

    store.delete_event(event_id)

    assert store.get_event(event_id) is None
    assert store.count_events() == 0


def test_delete_missing_event_rejected(store: EventStore) -> None:
    with pytest.raises(InputDataError, match="no event with id 7"):
        store.delete_event(7)


def test_set_included_marks_events(store: EventStore) -> None:
    first = store.add_event(FORM)
    second = store.add_event({**FORM, "price": "2"})

    changed = store.set_included([first, 999], included=False)

    assert changed == 1
    assert store.get_event(first).included is False  # type: ignore[union-attr]
    assert store.get_event(second).included is True  # type: ignore[union-attr]
    assert store.interactions() == [
        (int(FORM["user_id"]), int(FORM["product_id"]), "purchase")
    ]
    assert len(store.interactions(included_only=False)) == 2
