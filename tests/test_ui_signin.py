"""GUI tests of the sign-in window: create, open and broken profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from keyring.backends import SecretService
from pytestqt.qtbot import QtBot

from merchant_app import profiles
from merchant_app.errors import ConfigError, StoreError
from merchant_app.profiles import OpenProfile, list_profiles
from merchant_app.settings import load_settings
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.controller import AppController
from merchant_app.ui.signin import SignInWindow
from merchant_app.wallet import ProfileWallet, encrypt_account
from merchant_app.wallet.keys import account_from_key, parse_private_key

WAIT_MS = 60_000
KNOWN_KEY = "0x" + "11" * 32


def open_window(qtbot: QtBot, environment: AppEnvironment) -> SignInWindow:
    window = SignInWindow(environment)
    window.show()
    return window


def submit(qtbot: QtBot, window: SignInWindow) -> list[OpenProfile]:
    """Press Create and return the profiles it opened (closed again by the test)."""
    opened: list[OpenProfile] = []
    window.profile_opened.connect(opened.append)
    window.form.create_button.click()
    if window.task is not None:
        with qtbot.waitSignal(window.task.finished, timeout=WAIT_MS):
            pass
    return opened


def test_signin_create_profile_stores_key_in_keyring(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    secret_service_backend: SecretService.Keyring,
) -> None:
    window = open_window(qtbot, ui_environment)
    assert window.list_stack.currentWidget() is window.empty_label
    window.form.name_edit.setText("corner-shop")

    opened = submit(qtbot, window)

    assert len(opened) == 1
    profile = opened[0]
    try:
        settings = load_settings(profile.paths.settings)
        assert settings.name == "corner-shop"
        assert settings.kubo_api_url is None
        wallet = ProfileWallet(
            settings.wallet_key_id,
            profile.paths.folder,
            keyring_backend=secret_service_backend,
        )
        assert wallet.has_key()
        assert wallet.open().address == profile.wallet.address
        assert profile.paths.store.exists()
    finally:
        profile.close()
    assert [entry.name for entry in list_profiles(ui_environment.data_root)] == [
        "corner-shop"
    ]


def test_signin_import_hex_key(qtbot: QtBot, ui_environment: AppEnvironment) -> None:
    window = open_window(qtbot, ui_environment)
    form = window.form
    form.name_edit.setText("imported")
    form.wallet_combo.setCurrentIndex(form.wallet_combo.findData("import_key"))
    form.key_edit.setText(KNOWN_KEY)
    form.local_kubo_check.setChecked(False)
    form.kubo_edit.setText("http://127.0.0.1:5002")

    opened = submit(qtbot, window)

    assert len(opened) == 1
    try:
        expected = account_from_key(parse_private_key(KNOWN_KEY)).address
        assert opened[0].wallet.address == expected
        assert opened[0].settings.kubo_api_url == "http://127.0.0.1:5002"
    finally:
        opened[0].close()


def test_signin_import_keystore_file(
    qtbot: QtBot, ui_environment: AppEnvironment, tmp_path: Path
) -> None:
    account = account_from_key(parse_private_key(KNOWN_KEY))
    keystore = tmp_path / "key.json"
    keystore.write_text(
        json.dumps(encrypt_account(account, "keystore-pass", scrypt_n=2**10))
    )
    window = open_window(qtbot, ui_environment)
    form = window.form
    form.name_edit.setText("from-keystore")
    form.wallet_combo.setCurrentIndex(form.wallet_combo.findData("import_keystore"))
    form.keystore_edit.setText(str(keystore))
    form.keystore_password_edit.setText("keystore-pass")

    opened = submit(qtbot, window)

    assert len(opened) == 1
    try:
        assert opened[0].wallet.address == account.address
    finally:
        opened[0].close()


def test_signin_invalid_name_shown_inline(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    window = open_window(qtbot, ui_environment)
    window.form.name_edit.setText("bad name/with slash")

    opened = submit(qtbot, window)

    assert opened == []
    assert window.form.error_label.isVisibleTo(window.form)
    assert "profile name" in window.form.error_label.text()
    assert list_profiles(ui_environment.data_root) == []


def test_signin_wrong_keystore_password_leaves_nothing(
    qtbot: QtBot, ui_environment: AppEnvironment, tmp_path: Path
) -> None:
    account = account_from_key(parse_private_key(KNOWN_KEY))
    keystore = tmp_path / "key.json"
    keystore.write_text(
        json.dumps(encrypt_account(account, "keystore-pass", scrypt_n=2**10))
    )
    window = open_window(qtbot, ui_environment)
    form = window.form
    form.name_edit.setText("wrong-pass")
    form.wallet_combo.setCurrentIndex(form.wallet_combo.findData("import_keystore"))
    form.keystore_edit.setText(str(keystore))
    form.keystore_password_edit.setText("not the password")

    opened = submit(qtbot, window)

    assert opened == []
    assert "password is wrong" in form.error_label.text()
    assert not (ui_environment.data_root / "wrong-pass").exists()


def test_signin_open_existing_profile(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    creator = open_window(qtbot, ui_environment)
    creator.form.name_edit.setText("shop-a")
    created = submit(qtbot, creator)
    created[0].close()
    window = open_window(qtbot, ui_environment)
    window.select_profile("shop-a")
    opened: list[OpenProfile] = []
    window.profile_opened.connect(opened.append)

    window.open_button.click()
    assert window.task is not None
    assert not window.open_button.isEnabled()
    with qtbot.waitSignal(window.task.finished, timeout=WAIT_MS):
        pass

    assert len(opened) == 1
    try:
        assert opened[0].wallet.address == created[0].wallet.address
    finally:
        opened[0].close()


def test_signin_broken_profile_says_why(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    folder = ui_environment.data_root / "broken"
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(
        '{"name": "broken", "wallet_key_id": "broken-1", "chain_id": "x"}'
    )
    window = open_window(qtbot, ui_environment)
    window.select_profile("broken")

    window.open_button.click()

    assert window.task is None
    assert window.status_label.isVisibleTo(window)
    assert "broken cannot be opened" in window.status_label.text()
    assert "chain id 'x' is invalid" in window.status_label.text()


def test_signin_profile_without_key_says_why(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    creator = open_window(qtbot, ui_environment)
    creator.form.name_edit.setText("lost-key")
    created = submit(qtbot, creator)
    created[0].close()
    ProfileWallet(
        created[0].settings.wallet_key_id,
        created[0].paths.folder,
        keyring_backend=ui_environment.keyring_backend,
    ).delete()
    window = open_window(qtbot, ui_environment)
    window.select_profile("lost-key")

    window.open_button.click()
    assert window.task is not None
    with qtbot.waitSignal(window.task.finished, timeout=WAIT_MS):
        pass

    assert "lost-key cannot be opened" in window.status_label.text()
    assert "No wallet key" in window.status_label.text()


def test_controller_opens_main_window_after_signin(
    qtbot: QtBot, ui_environment: AppEnvironment
) -> None:
    controller = AppController(ui_environment)
    controller.start()
    assert controller.signin is not None
    controller.signin.form.name_edit.setText("flow")
    controller.signin.form.create_button.click()

    qtbot.waitUntil(lambda: controller.main_window is not None, timeout=WAIT_MS)

    window = controller.main_window
    assert window is not None
    assert window.windowTitle() == "Merchant App: flow"
    assert controller.signin is None
    assert window.profile.paths.log.exists()
    controller.shutdown()
    assert controller.main_window is None
    with pytest.raises(StoreError, match="closed database"):
        window.profile.store.count_events()


def test_create_profile_failure_removes_key_and_folder(
    tmp_path: Path,
    secret_service_backend: SecretService.Keyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail_to_save(path: Path, settings: object) -> None:
        raise ConfigError(f"cannot write settings file {path}: No space left")

    # A full disk is a fault the real file system cannot show on demand.
    monkeypatch.setattr(profiles, "save_settings", fail_to_save)
    root = tmp_path / "profiles"
    settings = profiles.new_settings("shop")

    with pytest.raises(ConfigError, match="No space left"):
        profiles.create_profile(
            root,
            settings,
            profiles.WalletSetup(),
            keyring_backend=secret_service_backend,
        )

    assert not (root / "shop").exists()
    wallet = ProfileWallet(
        settings.wallet_key_id, root / "shop", keyring_backend=secret_service_backend
    )
    assert not wallet.has_key()
