"""GUI tests of the Recommendations tab: training in the worker, top 10, promote."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable

from pytestqt.qtbot import QtBot

from merchant_app.ui.errors_dialog import ErrorDialog
from merchant_app.ui.main_window import MainWindow
from merchant_app.ui.recommendations_tab import TOP_K
from tests.fixtures.ui import SAMPLE_CSV

WAIT_MS = 60_000
UNKNOWN_CUSTOMER = 999_999_999


def most_active_customer() -> int:
    """Return the customer with the most events in the sample file."""
    with SAMPLE_CSV.open(newline="", encoding="utf-8") as stream:
        counts = Counter(int(row["user_id"]) for row in csv.DictReader(stream))
    return counts.most_common(1)[0][0]


def trained_window(qtbot: QtBot, build: Callable[..., MainWindow]) -> MainWindow:
    """Return a window whose profile contains the sample and a trained model."""
    window = build()
    window.load()
    with qtbot.waitSignal(window.transactions_tab.data_changed, timeout=WAIT_MS):
        window.transactions_tab.import_file(SAMPLE_CSV)
    tab = window.recommendations_tab
    qtbot.waitUntil(lambda: tab.task is None, timeout=WAIT_MS)
    task = tab.train()
    assert not tab.train_button.isEnabled()
    with qtbot.waitSignal(tab.model_trained, timeout=WAIT_MS):
        pass
    qtbot.waitUntil(lambda: tab.task is None, timeout=WAIT_MS)
    assert task.is_finished
    return window


def recommend(qtbot: QtBot, window: MainWindow, customer: int) -> None:
    tab = window.recommendations_tab
    tab.customer_edit.setText(str(customer))
    task = tab.recommend()
    assert task is not None
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass


def test_recommendations_known_customer_from_model(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = trained_window(qtbot, main_window)
    tab = window.recommendations_tab
    customer = most_active_customer()

    recommend(qtbot, window, customer)

    assert len(tab.last_results) == TOP_K
    assert {item.source for item in tab.last_results} == {"model"}
    scores = [item.score for item in tab.last_results]
    assert scores == sorted(scores, reverse=True)
    assert tab.table.rowCount() == TOP_K
    assert tab.table.column_texts(0) == [str(i.product_id) for i in tab.last_results]
    assert f"customer {customer}, from the model" in tab.result_label.text()
    assert "Model trained on" in tab.model_label.text()


def test_recommendations_unknown_customer_gets_popular(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = trained_window(qtbot, main_window)
    tab = window.recommendations_tab

    recommend(qtbot, window, UNKNOWN_CUSTOMER)

    assert len(tab.last_results) == TOP_K
    assert {item.source for item in tab.last_results} == {"popular"}
    assert "does not know customer" in tab.result_label.text()


def test_recommendations_regenerate_and_promote(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = trained_window(qtbot, main_window)
    tab = window.recommendations_tab
    customer = most_active_customer()
    tab.customer_edit.setText(str(customer))

    regenerate = tab.recommend(vary=True)
    assert regenerate is not None
    assert not tab.regenerate_button.isEnabled()
    with qtbot.waitSignal(regenerate.finished, timeout=WAIT_MS):
        pass
    assert len(tab.last_results) == TOP_K
    assert {item.source for item in tab.last_results} == {"model"}
    caption = tab.result_label.text()
    assert caption.startswith(f"A varied list of {TOP_K} for customer {customer}")
    assert "best-scored products" in caption
    assert not caption.startswith("Top")

    promote = tab.show_promotions()
    with qtbot.waitSignal(promote.finished, timeout=WAIT_MS):
        pass
    assert tab.table.rowCount() == TOP_K
    assert tab.table.horizontalHeaderItem(1).text() == "Demand"
    home = window.home_tab
    qtbot.waitUntil(lambda: home.promote_table.rowCount() > 0, timeout=WAIT_MS)
    assert home.promote_hint.isHidden()


def test_recommendations_without_model_explains(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    tab = window.recommendations_tab
    tab.customer_edit.setText("5")
    failures: list[object] = []

    task = tab.recommend()
    assert task is not None
    task.failed.connect(failures.append)
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    assert len(failures) == 1
    dialog = window.findChild(ErrorDialog, "errorDialog")
    assert dialog is not None
    assert "Train model" in dialog.message_label.text()
    assert tab.recommend_button.isEnabled()
