"""The error dialog and the hook that funnels uncaught errors into it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from merchant_app.errors import Cancelled, ChainUnreachableError, InvalidRowError
from merchant_app.logging_setup import CONSOLE_FORMAT, ConsoleFormatter
from merchant_app.ui.app import AppEnvironment, attach_profile_log, detach_log
from merchant_app.ui.errors_dialog import UNEXPECTED_MESSAGE, ErrorDialog, show_error
from merchant_app.ui.main_window import MainWindow

WAIT_MS = 10_000


def raised(error: BaseException) -> BaseException:
    """Return ``error`` after raising it, so it carries a traceback."""
    try:
        raise error
    except BaseException as caught:  # noqa: BLE001 (the test wants any error)
        return caught


def open_dialogs() -> list[ErrorDialog]:
    return [
        widget
        for widget in QApplication.topLevelWidgets()
        if isinstance(widget, ErrorDialog) and widget.isVisible()
    ]


def test_error_dialog_shows_user_message_hides_details(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    error = raised(
        ChainUnreachableError("eth_chainId on http://127.0.0.1:9 failed: refused")
    )

    dialog = show_error(error, context="test")

    assert dialog is not None
    qtbot.addWidget(dialog)
    assert dialog.message_label.text() == ChainUnreachableError.default_user_message
    assert dialog.details_text.isHidden()
    dialog.details_button.click()
    assert dialog.details_text.isVisible()
    details = dialog.details_text.toPlainText()
    assert "ChainUnreachableError: eth_chainId on http://127.0.0.1:9" in details
    assert "Traceback" not in details
    assert "File " not in details


def test_error_dialog_unexpected_error_has_plain_message(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    dialog = show_error(raised(KeyError("column")), context="test")

    assert dialog is not None
    qtbot.addWidget(dialog)
    assert dialog.message_label.text() == UNEXPECTED_MESSAGE
    assert "KeyError" not in dialog.message_label.text()


def test_error_dialog_not_shown_for_cancel(ui_environment: AppEnvironment) -> None:
    assert show_error(Cancelled("import cancelled")) is None
    assert open_dialogs() == []


def test_error_traceback_goes_to_profile_log(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    handler = attach_profile_log(window.profile)
    try:
        dialog = show_error(raised(ValueError("bad value 42")), parent=window)
    finally:
        detach_log(handler)

    assert dialog is not None
    log_text = window.profile.paths.log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log_text
    assert "ValueError: bad value 42" in log_text
    assert "Traceback" not in dialog.details_text.toPlainText()


def test_bad_input_warning_one_line(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = raised(
        InvalidRowError(
            "line 3, column price: 'abc' is not a number",
            line=3,
            column="price",
            value="abc",
        )
    )

    with caplog.at_level(logging.INFO):
        dialog = show_error(error, context="transactions")

    assert dialog is not None
    qtbot.addWidget(dialog)
    [record] = [r for r in caplog.records if r.name.endswith("errors_dialog")]
    # The merchant's bad file is a warning; its traceback still goes to the file.
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None
    console_line = ConsoleFormatter(CONSOLE_FORMAT).format(record)
    assert console_line.count("\n") == 0
    assert "line 3, column price" in console_line
    assert console_line.endswith("(traceback in the log file)")
    assert "Traceback" in logging.Formatter(CONSOLE_FORMAT).format(record)


def test_funnel_shows_error_from_thread(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    def fail() -> None:
        raise ChainUnreachableError("node down")

    thread = threading.Thread(target=fail, name="test-failing-thread")
    thread.start()
    thread.join()

    qtbot.waitUntil(lambda: len(open_dialogs()) == 1, timeout=WAIT_MS)
    dialog = open_dialogs()[0]
    assert dialog.message_label.text() == ChainUnreachableError.default_user_message


def test_funnel_shows_error_from_async_task(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    import asyncio

    loop = asyncio.get_event_loop()

    loop.call_exception_handler(
        {"message": "Task exception was never retrieved", "exception": KeyError("x")}
    )

    qtbot.waitUntil(lambda: len(open_dialogs()) == 1, timeout=WAIT_MS)
    assert open_dialogs()[0].message_label.text() == UNEXPECTED_MESSAGE


@pytest.mark.qt_no_exception_capture
def test_funnel_shows_error_from_gui_slot(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    def slot() -> None:
        raise ChainUnreachableError("raised in a slot")

    QTimer.singleShot(0, slot)

    qtbot.waitUntil(lambda: len(open_dialogs()) == 1, timeout=WAIT_MS)
    assert (
        open_dialogs()[0].message_label.text()
        == ChainUnreachableError.default_user_message
    )


def test_failed_task_shows_dialog_and_keeps_app_usable(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window(chain_rpc_url="http://127.0.0.1:9")
    tab = window.recommendations_tab
    tab.customer_edit.setText("1")

    task = tab.recommend()
    assert task is not None
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    dialogs = window.findChildren(ErrorDialog)
    assert len(dialogs) == 1
    assert "Train model" in dialogs[0].message_label.text()
    assert tab.recommend_button.isEnabled()
    assert tab.train_button.isEnabled()
