"""The transactions table loads pages on demand, never the whole table."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from merchant_app.profiles import OpenProfile
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.main_window import MainWindow
from tests.fixtures.ui import SAMPLE_CSV

WAIT_MS = 60_000
ROWS = 1_000_000


def generated_rows(count: int) -> Iterator[tuple[int, int, int]]:
    """Yield slim events (type index, product id, customer id) in a fixed pattern."""
    for index in range(count):
        yield index % 3, index % 5_003, index % 20_011


def fill_store(profile: OpenProfile, count: int) -> None:
    """Insert ``count`` slim events in one transaction, bypassing the CSV path.

    The rows go into the table behind the ``events`` view: writes through
    the view's triggers cost about 10 us a row.
    """
    connection = profile.store.connection
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO event_rows (event_type_id, product_id, user_id) VALUES (?, ?, ?)",
        generated_rows(count),
    )
    connection.execute("COMMIT")


@pytest.mark.slow
def test_events_table_loads_pages_of_million_rows(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    make_profile: Callable[..., OpenProfile],
) -> None:
    profile = make_profile()
    fill_store(profile, ROWS)
    window = MainWindow(profile, ui_environment)
    window.show()
    window.tabs.setCurrentWidget(window.transactions_tab)
    model = window.transactions_tab.model

    window.transactions_tab.load()
    qtbot.waitUntil(
        lambda: model.total == ROWS and not model.is_loading, timeout=WAIT_MS
    )

    first_fetch = model.fetched_rows
    assert 0 < first_fetch <= 2 * model.page_rows
    assert model.rowCount() == first_fetch
    assert model.canFetchMore()

    window.transactions_tab.table.scrollToBottom()
    qtbot.waitUntil(lambda: model.fetched_rows > first_fetch, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not model.is_loading, timeout=WAIT_MS)

    assert model.fetched_rows <= first_fetch + 2 * model.page_rows
    ids = [model.event_at(row).id for row in range(model.rowCount())]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_events_table_sort_by_price_descending(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    tab = window.transactions_tab
    window.load()
    with qtbot.waitSignal(tab.data_changed, timeout=WAIT_MS):
        tab.import_file(SAMPLE_CSV)
    qtbot.waitUntil(lambda: tab.model.total is not None, timeout=WAIT_MS)

    tab.table.sortByColumn(6, Qt.SortOrder.DescendingOrder)
    qtbot.waitUntil(
        lambda: tab.model.rowCount() > 0 and not tab.model.is_loading,
        timeout=WAIT_MS,
    )

    prices = [tab.model.event_at(row).price for row in range(tab.model.rowCount())]
    present = [price for price in prices if price is not None]
    assert present == sorted(present, reverse=True)
