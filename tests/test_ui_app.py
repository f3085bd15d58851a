"""The app's lifecycle: closing during work, and a full run of run_app."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from keyring.backends import SecretService
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from merchant_app.errors import Cancelled
from merchant_app.local_model import CUSTOMER_FILE, ITEM_FILE
from merchant_app.profiles import WalletSetup, create_profile, new_settings
from merchant_app.recommender.als import AlsConfig
from merchant_app.ui.app import AppEnvironment, run_app
from merchant_app.ui.main_window import MainWindow
from merchant_app.ui.worker import WORKER_THREAD_PREFIX, TaskContext, TaskRunner
from tests.fixtures.ui import SAMPLE_CSV

WAIT_MS = 60_000


def test_close_window_during_training_cancels(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window()
    window.load()
    with qtbot.waitSignal(window.transactions_tab.data_changed, timeout=WAIT_MS):
        window.transactions_tab.import_file(SAMPLE_CSV)
    tab = window.recommendations_tab
    # Far more iterations than the test waits for.
    tab.training_config = AlsConfig(dimension=8, iterations=10_000)
    task = tab.train()
    with qtbot.waitSignal(task.progress, timeout=WAIT_MS):
        pass

    window.close()

    assert task.future is not None
    assert task.future.done()
    assert isinstance(task.future.exception(), Cancelled)
    model_folder = window.profile.paths.model_folder
    assert not (model_folder / ITEM_FILE).exists()
    assert not (model_folder / CUSTOMER_FILE).exists()
    assert not [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(WORKER_THREAD_PREFIX)
    ]


def test_task_runner_reports_success_failure_and_cancel(qtbot: QtBot) -> None:
    runner = TaskRunner()
    release = threading.Event()
    try:
        ok = runner.start("ok", lambda context: 41 + 1)
        with qtbot.waitSignal(ok.succeeded, timeout=WAIT_MS) as succeeded:
            pass
        assert succeeded.args == [42]

        def fail(context: TaskContext) -> None:
            raise ValueError("boom")

        failing = runner.start("fail", fail)
        with qtbot.waitSignal(failing.failed, timeout=WAIT_MS) as failed:
            pass
        assert isinstance(failed.args[0], ValueError)

        def wait_for_cancel(context: TaskContext) -> None:
            release.wait(WAIT_MS / 1000)
            context.check_cancelled()

        waiting = runner.start("wait", wait_for_cancel)
        waiting.cancel()
        release.set()
        with qtbot.waitSignal(waiting.cancelled, timeout=WAIT_MS):
            pass
        assert runner.running == []
    finally:
        release.set()
        runner.shutdown()
        runner.deleteLater()


def test_run_app_closes_loop_and_restores_hooks(
    qapp: QApplication, tmp_path: Path
) -> None:
    hook_before = sys.excepthook
    thread_hook_before = threading.excepthook

    def close_windows() -> None:
        for widget in QApplication.topLevelWidgets():
            widget.close()

    QTimer.singleShot(0, close_windows)
    code = run_app(data_root=tmp_path / "profiles")

    assert code == 0
    assert sys.excepthook is hook_before
    assert threading.excepthook is thread_hook_before
    assert not [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(WORKER_THREAD_PREFIX)
    ]


def test_run_app_opens_profile_and_exits(
    qapp: QApplication,
    tmp_path: Path,
    secret_service_backend: SecretService.Keyring,
) -> None:
    root = tmp_path / "profiles"
    create_profile(
        root,
        new_settings("shop"),
        WalletSetup(),
        keyring_backend=secret_service_backend,
    )
    titles: list[str] = []
    deadline = time.monotonic() + WAIT_MS / 1000

    def close_main_window() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.isVisible():
                titles.append(widget.windowTitle())
                widget.close()
                return
        if time.monotonic() > deadline:
            # Ends the run instead of hanging when the profile never opens.
            for widget in QApplication.topLevelWidgets():
                widget.close()

    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(close_main_window)
    timer.start()
    try:
        code = run_app(
            profile_name="shop", data_root=root, keyring_backend=secret_service_backend
        )
    finally:
        timer.stop()

    assert code == 0
    assert titles == ["Merchant App: shop"]
    assert (root / "shop" / "app.log").exists()
    assert not [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(WORKER_THREAD_PREFIX)
    ]


def test_task_outcome_awaited_on_qasync_loop(ui_environment: AppEnvironment) -> None:
    loop = asyncio.get_event_loop()
    task = ui_environment.runner.start("sum", lambda context: sum(range(10)))

    result = loop.run_until_complete(task.outcome())

    assert result == 45
