"""GUI tests of the local Kubo node a profile starts when it has no Kubo API URL."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from merchant_app.errors import ToolNotFoundError
from merchant_app.ipfs import KuboClient
from merchant_app.profile_node import IPFS_FOLDER, LocalNodeStatus
from merchant_app.profiles import OpenProfile, open_profile
from merchant_app.services.anvil import AnvilChain
from merchant_app.services.repo_lock import inspect_repo_lock
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.controller import AppController
from merchant_app.ui.errors_dialog import ErrorDialog
from merchant_app.ui.main_window import MainWindow
from merchant_app.ui.worker import TaskRunner
from tests.fixtures.ipfs import process_exists

WAIT_MS = 60_000


def open_window(
    qtbot: QtBot, environment: AppEnvironment, profile: OpenProfile
) -> MainWindow:
    """Open ``profile`` as the app does and wait until its node task ends."""
    controller = AppController(environment)
    window = controller.show_profile(profile)
    assert window.node_task is not None
    with qtbot.waitSignal(window.node_task.finished, timeout=WAIT_MS):
        pass
    return window


def close_window(window: MainWindow) -> None:
    window.close()
    window.deleteLater()


def run_check(qtbot: QtBot, window: MainWindow) -> None:
    task = window.wallet_tab.test_connection()
    assert task is not None
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass


def running_node(window: MainWindow) -> LocalNodeStatus:
    status = window.profile.local_node
    assert status is not None, window.wallet_tab.settings_form.local_node_label.text()
    return status


def error_dialogs() -> list[ErrorDialog]:
    return [
        widget
        for widget in QApplication.topLevelWidgets()
        if isinstance(widget, ErrorDialog) and widget.isVisible()
    ]


def test_local_node_starts_and_passes_check(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    make_profile: Callable[..., OpenProfile],
    anvil_chain: AnvilChain,
    ipfs_binary: Path,
) -> None:
    profile = make_profile("local", chain_rpc_url=anvil_chain.rpc_url)
    assert profile.settings.starts_local_kubo

    window = open_window(qtbot, ui_environment, profile)
    status = running_node(window)

    assert status.pid is not None
    assert process_exists(status.pid)
    assert status.api_url.startswith("http://127.0.0.1:")
    assert status.peer_address.startswith("/ip4/127.0.0.1/tcp/")
    assert not status.private_network
    assert (profile.paths.folder / IPFS_FOLDER / "config").is_file()
    with KuboClient(status.api_url) as client:
        assert client.id().peer_id == status.peer_id
    node_text = window.wallet_tab.settings_form.local_node_label.text()
    assert status.api_url in node_text
    assert status.peer_id in node_text

    run_check(qtbot, window)
    chain, ipfs = window.wallet_tab.last_checks
    assert chain.ok is True
    assert ipfs.ok is True
    assert status.peer_id in ipfs.detail

    close_window(window)
    assert not process_exists(status.pid)
    assert profile.local_node is None


def test_local_node_second_open_starts_again(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    make_profile: Callable[..., OpenProfile],
    ipfs_binary: Path,
) -> None:
    profile = make_profile("again")
    first_window = open_window(qtbot, ui_environment, profile)
    first = running_node(first_window)
    close_window(first_window)
    assert first.pid is not None
    assert not process_exists(first.pid)

    # Closing the window shut the worker pool down, as it ends the app; the
    # second open is a new app run with a new pool.
    environment = dataclasses.replace(ui_environment, runner=TaskRunner())
    reopened = open_profile(
        ui_environment.data_root,
        "again",
        keyring_backend=ui_environment.keyring_backend,
    )
    try:
        second_window = open_window(qtbot, environment, reopened)
        second = running_node(second_window)
        assert second.peer_id == first.peer_id
        assert second.pid is not None
        assert second.pid != first.pid
        assert process_exists(second.pid)
        close_window(second_window)
        assert not process_exists(second.pid)
    finally:
        environment.runner.shutdown()
        environment.runner.deleteLater()
        reopened.close()


def test_local_node_missing_binary_shows_error(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    make_profile: Callable[..., OpenProfile],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MERCHANT_APP_IPFS", str(tmp_path / "no-such-ipfs"))
    profile = make_profile("nobinary")

    window = open_window(qtbot, ui_environment, profile)

    assert profile.local_node is None
    dialogs = error_dialogs()
    assert len(dialogs) == 1
    dialog = dialogs[0]
    assert dialog.message_label.text() == ToolNotFoundError.default_user_message
    assert "scripts/setup.sh" in dialog.details_text.toPlainText()
    node_text = window.wallet_tab.settings_form.local_node_label.text()
    assert node_text.startswith("Not running:")
    dialog.close()

    # The window stays usable: Test connection runs and reports the node.
    run_check(qtbot, window)
    _chain, ipfs = window.wallet_tab.last_checks
    assert ipfs.ok is False
    assert "not running" in ipfs.detail
    close_window(window)


def test_local_node_close_while_starting_stops(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    make_profile: Callable[..., OpenProfile],
    ipfs_binary: Path,
) -> None:
    profile = make_profile("closing")
    controller = AppController(ui_environment)
    window = controller.show_profile(profile)
    assert window.node_task is not None
    repo = profile.paths.folder / IPFS_FOLDER
    # Once the repository exists, the start runs in the worker.
    qtbot.waitUntil(lambda: (repo / "config").is_file(), timeout=WAIT_MS)

    # The close waits for the start to end, then stops that daemon.
    close_window(window)

    assert profile.local_node is None
    assert not inspect_repo_lock(repo).locked
    assert not (repo / "api").exists()
