"""Export of events to CSV, and import of the exported file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from merchant_app.errors import Cancelled
from merchant_app.store import EventFilter, EventStore
from merchant_app.store.export import format_time
from tests.store_support import REES46_HEADER, SLIM_HEADER, read_rows


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    with EventStore.open(tmp_path / "merchant.sqlite") as opened:
        yield opened


def test_export_round_trip_of_real_file(
    store: EventStore, shared_data: Path, tmp_path: Path
) -> None:
    source = shared_data / "rees46-raw" / "2019-Oct-head17k.csv"
    if not source.is_file():
        pytest.skip(f"real REES46 file not found: {source}")
    store.import_csv(source)
    exported = tmp_path / "out.csv"

    written = store.export_csv(exported)

    assert exported.read_text().splitlines()[0] == REES46_HEADER
    assert written == store.count_events()
    with EventStore.open(tmp_path / "copy.sqlite") as copy:
        report = copy.import_csv(exported)
        assert report.rows_added == written
        assert report.duplicates == 0
        assert _all_rows(copy) == _all_rows(store)


def test_export_slim_rows_have_empty_time_and_session(
    store: EventStore, tmp_path: Path
) -> None:
    source = tmp_path / "slim.csv"
    source.write_text(f"{SLIM_HEADER}\n1,2,a.b,,33.20,view\n1,2,a.b,,33.20,view\n")
    store.import_csv(source)
    exported = tmp_path / "out.csv"

    store.export_csv(exported)

    assert (
        read_rows(exported) == [["", "view", "2", "", "a.b", "", "33.2", "1", ""]] * 2
    )


def test_export_with_filter(store: EventStore, tmp_path: Path) -> None:
    source = tmp_path / "slim.csv"
    source.write_text(f"{SLIM_HEADER}\n1,2,,,1,view\n3,4,,,1,cart\n")
    store.import_csv(source)

    written = store.export_csv(
        tmp_path / "out.csv", event_filter=EventFilter(user_id=3)
    )

    assert written == 1
    assert read_rows(tmp_path / "out.csv")[0][7] == "3"


def test_export_cancel_leaves_no_file(store: EventStore, tmp_path: Path) -> None:
    source = tmp_path / "slim.csv"
    source.write_text(f"{SLIM_HEADER}\n1,2,,,1,view\n")
    store.import_csv(source)
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(Cancelled):
        store.export_csv(tmp_path / "out.csv", cancel=cancel)

    assert list(tmp_path.glob("out.csv*")) == []


def test_format_time_writes_fraction_only_when_set() -> None:
    assert format_time(0) == "1970-01-01 00:00:00 UTC"
    assert format_time(1_569_888_000_000_001) == "2019-10-01 00:00:00.000001 UTC"


def _all_rows(store: EventStore) -> list[tuple[object, ...]]:
    return store.connection.execute(
        "SELECT event_time, event_type, product_id, category_id, category_code, "
        "brand, price, user_id, user_session FROM events ORDER BY id"
    ).fetchall()


def test_export_reports_progress(store: EventStore, tmp_path: Path) -> None:
    source = tmp_path / "slim.csv"
    source.write_text(SLIM_HEADER + "\n" + "1,2,,,1,view\n" * 25_000)
    store.import_csv(source)
    updates: list[int] = []

    written = store.export_csv(tmp_path / "out.csv", progress=updates.append)

    assert written == 25_000
    assert updates == [10_000, 20_000, 25_000]
