"""Tests of the keyring store against a real Secret Service (gnome-keyring).

Each test gets its own private D-Bus and gnome-keyring daemon from the
``secret_service`` fixture in ``tests/fixtures/keyring.py``.
"""

from __future__ import annotations

from contextlib import closing

import keyring.backend
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import SecretService, chainer, fail, null
from keyring.compat import properties

from merchant_app.errors import (
    KeyExistsError,
    KeyNotFoundError,
    KeyringLockedError,
    KeyringUnavailableError,
    WalletError,
)
from merchant_app.wallet.keyring_store import (
    SERVICE_NAME,
    KeyringStore,
    describe_backend,
    resolve_backend,
)
from tests.fixtures.keyring import LOGIN_COLLECTION_PATH, SecretServiceDaemon

FIRST_SECRET = "0x" + "11" * 32
SECOND_SECRET = "0x" + "22" * 32


class DictKeyring(KeyringBackend):
    """A third-party style backend that keeps secrets in a dict.

    Its priority raises, so keyring never selects it on its own, and tests
    pass an instance explicitly.
    """

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("only used when passed explicitly")

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.secrets[(service, username)]


def test_keyring_store_write_read_delete(
    secret_service_backend: SecretService.Keyring,
) -> None:
    store = KeyringStore("shop-1", backend=secret_service_backend)
    assert not store.has_key()

    store.write_key(FIRST_SECRET)
    assert store.has_key()
    assert store.read_key() == FIRST_SECRET

    store.delete_key()
    assert not store.has_key()
    with pytest.raises(KeyNotFoundError):
        store.read_key()


def test_keyring_entry_service_and_username(
    secret_service: SecretServiceDaemon,
    secret_service_backend: SecretService.Keyring,
) -> None:
    import secretstorage  # Linux only, like the fixture.

    KeyringStore("shop-1", backend=secret_service_backend).write_key(FIRST_SECRET)

    with closing(secretstorage.dbus_init()) as connection:
        collection = secretstorage.Collection(connection, LOGIN_COLLECTION_PATH)
        items = list(
            collection.search_items({"service": SERVICE_NAME, "username": "shop-1"})
        )
        assert len(items) == 1
        assert items[0].get_secret() == FIRST_SECRET.encode()


def test_keyring_store_write_twice_raises_key_exists(
    secret_service_backend: SecretService.Keyring,
) -> None:
    store = KeyringStore("shop-1", backend=secret_service_backend)
    store.write_key(FIRST_SECRET)

    with pytest.raises(KeyExistsError, match="replace=True"):
        store.write_key(SECOND_SECRET)
    assert store.read_key() == FIRST_SECRET


def test_keyring_store_replace_overwrites(
    secret_service_backend: SecretService.Keyring,
) -> None:
    store = KeyringStore("shop-1", backend=secret_service_backend)
    store.write_key(FIRST_SECRET)

    store.write_key(SECOND_SECRET, replace=True)

    assert store.read_key() == SECOND_SECRET


def test_keyring_store_profiles_are_separate(
    secret_service_backend: SecretService.Keyring,
) -> None:
    first = KeyringStore("shop-1", backend=secret_service_backend)
    second = KeyringStore("shop-2", backend=secret_service_backend)
    first.write_key(FIRST_SECRET)

    second.write_key(SECOND_SECRET)
    first.delete_key()

    assert not first.has_key()
    assert second.read_key() == SECOND_SECRET


def test_keyring_store_delete_missing_raises(
    secret_service_backend: SecretService.Keyring,
) -> None:
    store = KeyringStore("shop-1", backend=secret_service_backend)

    with pytest.raises(KeyNotFoundError, match="shop-1"):
        store.delete_key()


def test_locked_keyring_raises_without_prompt(
    secret_service: SecretServiceDaemon,
    secret_service_backend: SecretService.Keyring,
) -> None:
    store = KeyringStore(
        "shop-1", backend=secret_service_backend, allow_unlock_prompt=False
    )
    store.write_key(FIRST_SECRET)
    secret_service.lock_login()
    assert secret_service.is_login_locked()

    with secret_service.watch_unlock_calls() as unlock_calls:
        with pytest.raises(KeyringLockedError, match="locked"):
            store.has_key()
        with pytest.raises(KeyringLockedError):
            store.read_key()
        with pytest.raises(KeyringLockedError):
            store.write_key(SECOND_SECRET, replace=True)
        with pytest.raises(KeyringLockedError):
            store.delete_key()

    assert unlock_calls == []
    assert secret_service.is_login_locked()

    secret_service.unlock_login()
    assert store.read_key() == FIRST_SECRET


def test_dismissed_unlock_prompt_raises_locked(
    secret_service: SecretServiceDaemon,
    secret_service_backend: SecretService.Keyring,
) -> None:
    # With the prompt allowed, keyring requests an unlock from gnome-keyring.
    # No prompter can run on the private bus, so gnome-keyring reports the
    # prompt as dismissed, as when a user closes the unlock dialog.
    store = KeyringStore("shop-1", backend=secret_service_backend)
    store.write_key(FIRST_SECRET)
    secret_service.lock_login()

    with secret_service.watch_unlock_calls() as unlock_calls:
        with pytest.raises(KeyringLockedError):
            store.read_key()
        with pytest.raises(KeyringLockedError):
            store.has_key()
        with pytest.raises(KeyringLockedError):
            store.write_key(SECOND_SECRET)

    assert len(unlock_calls) == 3
    secret_service.unlock_login()
    assert store.read_key() == FIRST_SECRET


def test_stopped_daemon_raises_unavailable(
    secret_service: SecretServiceDaemon,
    secret_service_backend: SecretService.Keyring,
) -> None:
    store = KeyringStore(
        "shop-1", backend=secret_service_backend, allow_unlock_prompt=False
    )
    secret_service.stop_keyring_daemon()

    with pytest.raises(KeyringUnavailableError, match="not available"):
        store.has_key()


def test_fail_backend_raises_unavailable(
    no_keyring_backend: fail.Keyring,
) -> None:
    store = KeyringStore("shop-1")

    with pytest.raises(KeyringUnavailableError) as caught:
        store.has_key()

    assert "no system keyring" in str(caught.value)
    assert "keystore file" in str(caught.value)
    assert "keystore file" in caught.value.user_message
    with pytest.raises(KeyringUnavailableError):
        store.write_key(FIRST_SECRET)


def test_empty_chainer_raises_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Rejecting every backend through keyring's own filter empties the chainer.
    monkeypatch.setattr(keyring.backend, "_limit", lambda backend: False)
    empty_chainer = chainer.ChainerBackend()
    assert list(empty_chainer.backends) == []

    with pytest.raises(KeyringUnavailableError, match="chainer has no backends"):
        KeyringStore("shop-1", backend=empty_chainer).has_key()


def test_null_backend_raises_unavailable() -> None:
    store = KeyringStore("shop-1", backend=null.Keyring())

    with pytest.raises(KeyringUnavailableError, match="disabled"):
        store.write_key(FIRST_SECRET)


def test_third_party_backend_unavailable() -> None:
    backend = DictKeyring()
    store = KeyringStore("shop-1", backend=backend)

    with pytest.raises(KeyringUnavailableError, match="DictKeyring"):
        store.write_key(FIRST_SECRET)
    assert backend.secrets == {}


def test_describe_backend_names_secret_service(
    secret_service_backend: SecretService.Keyring,
) -> None:
    info = describe_backend(secret_service_backend)

    assert info.usable
    assert info.name.startswith("Secret Service")
    assert info.reason == ""
    assert info.backend_class == "keyring.backends.SecretService.Keyring"


def test_describe_backend_fail_is_unusable(no_keyring_backend: fail.Keyring) -> None:
    info = describe_backend()

    assert not info.usable
    assert info.name == "None"
    assert "fail" in info.reason
    assert info.backend_class == "keyring.backends.fail.Keyring"


def test_resolve_backend_keeps_secret_service(
    secret_service_backend: SecretService.Keyring,
) -> None:
    assert resolve_backend(secret_service_backend) is secret_service_backend


@pytest.mark.parametrize("profile_id", ["", "shop\n1", "x" * 256])
def test_keyring_store_rejects_bad_profile_id(profile_id: str) -> None:
    with pytest.raises(WalletError, match="invalid profile id"):
        KeyringStore(profile_id)
