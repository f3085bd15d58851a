"""GUI tests of the Transactions and Home tabs: import, counts, edits, export."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from merchant_app.store import ImportReport
from merchant_app.ui.errors_dialog import ErrorDialog
from merchant_app.ui.main_window import MainWindow
from tests.fixtures.ui import SAMPLE_CSV

WAIT_MS = 30_000


def sample_counts(path: Path) -> tuple[int, int, int]:
    """Return the numbers of rows, customers and products in a slim CSV file."""
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    return (
        len(rows),
        len({row["user_id"] for row in rows}),
        len({row["product_id"] for row in rows}),
    )


def import_sample(qtbot: QtBot, window: MainWindow, path: Path) -> ImportReport:
    """Import ``path`` through the tab and wait for the report and the reload."""
    tab = window.transactions_tab
    with qtbot.waitSignal(tab.data_changed, timeout=WAIT_MS):
        tab.import_file(path)
    qtbot.waitUntil(lambda: tab.model.total is not None, timeout=WAIT_MS)
    assert tab.last_report is not None
    return tab.last_report


def test_transactions_import_updates_table_and_home(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    qtbot.waitUntil(lambda: tab.model.total == 0, timeout=WAIT_MS)
    rows, customers, products = sample_counts(SAMPLE_CSV)

    report = import_sample(qtbot, window, SAMPLE_CSV)

    assert report.rows_added == rows
    assert tab.model.total == rows
    assert tab.count_label.text() == f"{rows:,} events"
    assert "events added" in tab.report_label.text()
    assert tab.import_button.isEnabled()
    assert tab.progress.isHidden()
    home = window.home_tab
    qtbot.waitUntil(
        lambda: home.events_card.value_label.text() == f"{rows:,}", timeout=WAIT_MS
    )
    qtbot.waitUntil(lambda: home.local_task is None, timeout=WAIT_MS)
    assert home.customers_card.value_label.text() == f"{customers:,}"
    assert home.products_card.value_label.text() == f"{products:,}"
    assert home.popular_table.rowCount() == 10
    assert home.popular_table.horizontalHeaderItem(1).text() == "Weight"
    assert "no consortium contract" in home.round_label.text()


def test_transactions_import_with_seed_shop(
    qtbot: QtBot, main_window: Callable[..., MainWindow], shared_data: Path
) -> None:
    window = main_window()
    window.load()
    path = shared_data / "seed-shops" / "shop_0.csv"
    rows, _, _ = sample_counts(path)

    report = import_sample(qtbot, window, path)

    assert report.rows_added == rows
    assert window.transactions_tab.model.total == rows


def test_transactions_button_disabled_while_importing(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    tab = window.transactions_tab

    task = tab.import_file(SAMPLE_CSV)

    assert not tab.import_button.isEnabled()
    assert not tab.export_button.isEnabled()
    assert tab.progress.isVisibleTo(tab)
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass
    assert tab.import_button.isEnabled()


def test_transactions_import_cancel_leaves_store_empty(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    tab = window.transactions_tab
    # Small chunks, so the import checks the cancel event after the first one.
    tab.import_chunk_rows = 100

    task = tab.import_file(SAMPLE_CSV)
    with qtbot.waitSignal(task.progress, timeout=WAIT_MS):
        pass
    tab.progress.cancel_button.click()
    with qtbot.waitSignal(task.cancelled, timeout=WAIT_MS):
        pass

    assert window.profile.store.count_events() == 0
    assert "Cancelled" in tab.report_label.text()
    assert tab.import_button.isEnabled()


def test_transactions_edit_row_shows_invalid_value_inline(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    import_sample(qtbot, window, SAMPLE_CSV)
    tab.table.selectRow(0)
    original = tab.model.event_at(0)

    dialog = tab.edit_selected()
    assert dialog is not None
    dialog.set_value("price", "not a price")
    dialog.save()
    assert dialog.task is not None
    with qtbot.waitSignal(dialog.task.finished, timeout=WAIT_MS):
        pass

    assert dialog.isVisible()
    assert dialog.error_label.isVisibleTo(dialog)
    assert "price" in dialog.error_label.text()
    assert dialog.fields["price"].property("invalid") is True
    assert window.profile.store.get_event(original.id) == original


def test_transactions_edit_row_saves_change(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    import_sample(qtbot, window, SAMPLE_CSV)
    tab.table.selectRow(0)
    event_id = tab.model.event_at(0).id

    dialog = tab.edit_selected()
    assert dialog is not None
    dialog.set_value("brand", "newbrand")
    dialog.set_value("event_type", "purchase")
    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS):
        dialog.save()

    stored = window.profile.store.get_event(event_id)
    assert stored is not None
    assert stored.brand == "newbrand"
    assert stored.event_type == "purchase"
    assert tab.model.event_at(0).brand == "newbrand"
    assert tab.model.data(tab.model.index(0, 5)) == "newbrand"


def test_transactions_add_event(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    qtbot.waitUntil(lambda: tab.model.total == 0, timeout=WAIT_MS)

    dialog = tab.add_event()
    dialog.set_value("product_id", "77")
    dialog.set_value("user_id", "5")
    dialog.set_value("event_type", "cart")
    dialog.set_value("price", "12.5")
    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS):
        dialog.save()

    qtbot.waitUntil(lambda: tab.model.total == 1, timeout=WAIT_MS)
    added = tab.model.event_at(0)
    assert (added.product_id, added.user_id, added.event_type) == (77, 5, "cart")
    assert added.price == 12.5


def test_transactions_add_event_missing_id_shown_inline(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    tab = window.transactions_tab

    dialog = tab.add_event()
    dialog.set_value("product_id", "77")
    dialog.save()
    assert dialog.task is not None
    with qtbot.waitSignal(dialog.task.finished, timeout=WAIT_MS):
        pass

    assert dialog.error_label.isVisibleTo(dialog)
    assert "user_id" in dialog.error_label.text()
    assert window.profile.store.count_events() == 0


def test_transactions_delete_row(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    import_sample(qtbot, window, SAMPLE_CSV)
    rows = tab.model.total
    assert rows is not None
    tab.table.selectRow(1)
    deleted_id = tab.model.event_at(1).id
    tab.confirm_delete = lambda count: count == 1

    task = tab.delete_selected()
    assert task is not None
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    assert window.profile.store.get_event(deleted_id) is None
    assert tab.model.total == rows - 1
    assert tab.model.event_at(1).id != deleted_id
    assert tab.count_label.text() == f"{rows - 1:,} events"


def test_transactions_delete_declined_keeps_row(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    import_sample(qtbot, window, SAMPLE_CSV)
    tab.table.selectRow(0)
    tab.confirm_delete = lambda count: False

    task = tab.delete_selected()

    assert task is None
    assert window.profile.store.get_event(tab.model.event_at(0).id) is not None


def test_transactions_exclude_rows_from_contribution(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    import_sample(qtbot, window, SAMPLE_CSV)
    tab.table.selectRow(2)
    event_id = tab.model.event_at(2).id

    task = tab.set_selected_included(False)
    assert task is not None
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    stored = window.profile.store.get_event(event_id)
    assert stored is not None
    assert stored.included is False
    assert tab.model.event_at(2).included is False


def test_transactions_search_filters_rows(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    import_sample(qtbot, window, SAMPLE_CSV)
    rows = tab.model.total

    tab.search_edit.setText("kids.toys")
    qtbot.waitUntil(
        lambda: tab.model.total is not None and tab.model.total != rows,
        timeout=WAIT_MS,
    )

    total = tab.model.total
    assert total is not None and rows is not None
    assert 0 < total < rows
    qtbot.waitUntil(lambda: tab.model.rowCount() > 0, timeout=WAIT_MS)
    assert all(
        tab.model.event_at(row).category_code == "kids.toys"
        for row in range(tab.model.rowCount())
    )


def test_transactions_export_writes_all_rows(
    qtbot: QtBot, main_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    import_sample(qtbot, window, SAMPLE_CSV)
    destination = tmp_path / "export.csv"

    task = tab.export_file(destination)
    reports: list[object] = []
    task.progress.connect(reports.append)
    # The search's row count is known, so the bar measures instead of pulsing.
    assert tab.progress.bar.maximum() > 0
    with qtbot.waitSignal(task.succeeded, timeout=WAIT_MS):
        pass

    with destination.open(newline="", encoding="utf-8") as stream:
        exported = list(csv.reader(stream))
    assert len(exported) - 1 == tab.model.total
    assert reports
    assert reports[-1] == tab.model.total
    assert "exported" in tab.report_label.text()


def test_transactions_check_box_toggles_included(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    tab = window.transactions_tab
    import_sample(qtbot, window, SAMPLE_CSV)
    model = tab.model
    index = model.index(0, 0)
    event_id = model.event_at(0).id
    assert model.data(index, Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked

    changed = model.setData(
        index, Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole
    )

    assert changed
    qtbot.waitUntil(lambda: not model.event_at(0).included, timeout=WAIT_MS)
    stored = window.profile.store.get_event(event_id)
    assert stored is not None
    assert stored.included is False
    assert model.data(index, Qt.ItemDataRole.CheckStateRole) == (
        Qt.CheckState.Unchecked
    )


def test_transactions_strict_import_error_names_skip_check_box(
    qtbot: QtBot, main_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    window = main_window()
    tab = window.transactions_tab
    path = tmp_path / "small.csv"
    path.write_text(
        "user_id,product_id,category_code,brand,price,event_type\n"
        "1,2,kids.toys,,17.37,view\n"
        "3,4,kids.toys,,abc,view\n",
        encoding="utf-8",
    )

    task = tab.import_file(path)
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    dialog = window.findChild(ErrorDialog, "errorDialog")
    assert dialog is not None
    message = dialog.message_label.text()
    assert message.startswith("Line 3 of small.csv has an invalid price: 'abc'.")
    assert f"tick “{tab.skip_bad_rows_check.text()}”" in message
    assert "skip-bad-rows" in dialog.details_text.toPlainText()
    assert window.profile.store.count_events() == 0
