"""GUI tests of the Wallet tab: Test connection against real services, export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pytestqt.qtbot import QtBot

from merchant_app.profiles import OpenProfile
from merchant_app.services.anvil import AnvilChain
from merchant_app.services.kubo import KuboNode
from merchant_app.settings import load_settings
from merchant_app.simulation.consortium_setup import create_throwaway_accounts
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.main_window import MainWindow
from merchant_app.ui.wallet_tab import WalletTab
from merchant_app.wallet import KeyStorage, Wallet, decrypt_keystore

WAIT_MS = 60_000


def run_check(qtbot: QtBot, window: MainWindow) -> None:
    tab = window.wallet_tab
    task = tab.test_connection()
    assert task is not None
    assert not tab.settings_form.test_button.isEnabled()
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass
    assert tab.settings_form.test_button.isEnabled()


def test_wallet_test_connection_reaches_anvil_and_kubo(
    qtbot: QtBot,
    main_window: Callable[..., MainWindow],
    anvil_chain: AnvilChain,
    kubo_node: KuboNode,
) -> None:
    window = main_window(chain_rpc_url=anvil_chain.rpc_url)
    form = window.wallet_tab.settings_form
    form.local_kubo_check.setChecked(False)
    form.kubo_edit.setText(kubo_node.api_url)

    run_check(qtbot, window)

    chain, ipfs = window.wallet_tab.last_checks
    assert chain.ok is True
    assert "chain id 31337" in chain.detail
    assert ipfs.ok is True
    assert kubo_node.peer_id in ipfs.detail
    assert "✔ Chain" in form.results_label.text()
    assert "✔ IPFS" in form.results_label.text()


def test_wallet_test_connection_reports_each_failure(
    qtbot: QtBot,
    main_window: Callable[..., MainWindow],
    anvil_chain: AnvilChain,
) -> None:
    window = main_window(chain_rpc_url=anvil_chain.rpc_url)
    form = window.wallet_tab.settings_form
    form.chain_id_spin.setValue(5)
    form.local_kubo_check.setChecked(False)
    # Port 9 (discard) on loopback: no service responds there.
    form.kubo_edit.setText("http://127.0.0.1:9")

    run_check(qtbot, window)

    chain, ipfs = window.wallet_tab.last_checks
    assert chain.ok is False
    assert "different network" in chain.detail
    assert ipfs.ok is False
    assert "cannot be reached" in ipfs.detail


def test_wallet_shows_balance_and_keyring(
    qtbot: QtBot,
    main_window: Callable[..., MainWindow],
    anvil_chain: AnvilChain,
) -> None:
    window = main_window(chain_rpc_url=anvil_chain.rpc_url)
    tab = window.wallet_tab

    task = tab.load()
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    assert tab.address_label.text() == window.profile.wallet.address
    assert tab.balance_label.text() == "0.000000 ETH"
    assert "Secret Service" in tab.backend_label.text()


def test_wallet_balance_without_chain_says_not_connected(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window(chain_rpc_url="http://127.0.0.1:9")
    tab = window.wallet_tab

    task = tab.load()
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    assert tab.balance_label.text().startswith("Not connected")


def test_wallet_save_settings_rejects_bad_address_inline(
    main_window: Callable[..., MainWindow],
) -> None:
    window = main_window()
    form = window.wallet_tab.settings_form
    form.contract_edit.setText("0x1234")

    saved = window.wallet_tab.save_settings()

    assert saved is None
    assert form.error_label.isVisibleTo(form)
    assert "contract address" in form.error_label.text()
    stored = load_settings(window.profile.paths.settings)
    assert stored.contract_address == ""


def test_wallet_save_settings_writes_file(
    main_window: Callable[..., MainWindow],
) -> None:
    window = main_window()
    form = window.wallet_tab.settings_form
    form.rpc_edit.setText("http://127.0.0.1:8999")
    form.local_kubo_check.setChecked(False)
    form.kubo_edit.setText("http://127.0.0.1:5999")

    saved = window.wallet_tab.save_settings()

    assert saved is not None
    stored = load_settings(window.profile.paths.settings)
    assert stored.chain_rpc_url == "http://127.0.0.1:8999"
    assert stored.kubo_api_url == "http://127.0.0.1:5999"
    assert window.profile.settings == stored


def test_wallet_export_keystore_decrypts_to_address(
    qtbot: QtBot, main_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    window = main_window()
    tab = window.wallet_tab
    destination = tmp_path / "backup.json"

    task = tab.export_keystore(destination, "export-password-1")
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    assert str(destination) in tab.export_label.text()
    account = decrypt_keystore(destination.read_text(), "export-password-1")
    assert account.address == window.profile.wallet.address
    assert json.loads(destination.read_text())["version"] == 3


def test_wallet_export_short_password_says_why(
    qtbot: QtBot, main_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    window = main_window()
    tab = window.wallet_tab

    task = tab.export_keystore(tmp_path / "backup.json", "short")
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    assert not (tmp_path / "backup.json").exists()
    assert "8" in tab.export_label.text()
    assert tab.export_button.isEnabled()


def test_wallet_tab_names_memory_key_storage(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    make_profile: Callable[..., OpenProfile],
) -> None:
    # The demo's fallback profile: keyring settings, but a key only in memory.
    profile = make_profile()
    profile.wallet = Wallet(create_throwaway_accounts(1)[0], storage="memory")

    tab = WalletTab(profile, ui_environment.runner)
    qtbot.addWidget(tab)

    assert profile.settings.wallet_storage is KeyStorage.KEYRING
    assert tab.storage_label.text() == (
        "Throwaway key in memory for this demo run; it is not saved"
    )
    # There is no stored key to export: the button is off and the label explains why.
    assert not tab.export_button.isEnabled()
    assert "nothing to export" in tab.export_label.text()


def test_wallet_tab_names_keyring_key_storage(
    main_window: Callable[..., MainWindow],
) -> None:
    window = main_window()

    assert window.wallet_tab.storage_label.text() == "System keyring"
