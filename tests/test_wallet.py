"""Tests of key creation, import, export and use, with a real Secret Service.

The keyring tests use the private gnome-keyring of the ``secret_service``
fixture. Keystores are written with a small scrypt N so that the suite stays
quick. One test checks the default parameters.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from keyring.backends import SecretService, fail

from merchant_app.errors import (
    KeyExistsError,
    KeyNotFoundError,
    KeyringLockedError,
    KeyringUnavailableError,
    WalletError,
    WrongPasswordError,
)
from merchant_app.wallet import (
    DEFAULT_SCRYPT_N,
    KeyStorage,
    ProfileWallet,
    Wallet,
    decrypt_keystore,
    encrypt_account,
    generate_private_key,
    parse_private_key,
)
from merchant_app.wallet.keys import SECP256K1_ORDER, private_key_hex
from merchant_app.wallet.keystore import write_private_file
from tests.fixtures.keyring import SecretServiceDaemon

FAST_SCRYPT_N = 2**14
PASSWORD = "correct horse battery"
# A fixed key for tests that compare addresses. Other tests use random keys.
KNOWN_KEY_HEX = "0123456789abcdef" * 4
KNOWN_ADDRESS = Account.from_key(bytes.fromhex(KNOWN_KEY_HEX)).address

# Test vectors of the Web3 Secret Storage Definition (the keystore v3 spec in
# the Ethereum wiki): the same key encrypted with PBKDF2 and with scrypt.
SPEC_PASSWORD = "testpassword"
SPEC_KEY_HEX = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d"
SPEC_PBKDF2_KEYSTORE: dict[str, Any] = {
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": {"iv": "6087dab2f9fdbbfaddc31a909735c1e6"},
        "ciphertext": (
            "5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46"
        ),
        "kdf": "pbkdf2",
        "kdfparams": {
            "c": 262144,
            "dklen": 32,
            "prf": "hmac-sha256",
            "salt": "ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd",
        },
        "mac": "517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2",
    },
    "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    "version": 3,
}
SPEC_SCRYPT_KEYSTORE: dict[str, Any] = {
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": {"iv": "83dbcc02d8ccb40e466191a123791e0e"},
        "ciphertext": (
            "d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c"
        ),
        "kdf": "scrypt",
        "kdfparams": {
            "dklen": 32,
            "n": 262144,
            "p": 8,
            "r": 1,
            "salt": "ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19",
        },
        "mac": "2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097",
    },
    "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    "version": 3,
}

WalletFactory = Callable[..., ProfileWallet]


@pytest.fixture
def make_wallet(
    secret_service_backend: SecretService.Keyring, tmp_path: Path
) -> WalletFactory:
    """Return a factory of keyring-backed profile wallets in ``tmp_path``."""

    def make(profile_id: str = "shop-1", **options: Any) -> ProfileWallet:
        options.setdefault("keyring_backend", secret_service_backend)
        options.setdefault("allow_unlock_prompt", False)
        options.setdefault("scrypt_n", FAST_SCRYPT_N)
        return ProfileWallet(profile_id, tmp_path / profile_id, **options)

    return make


def fast_keystore(key_hex: str, password: str = PASSWORD) -> dict[str, Any]:
    """Encrypt a key with a small scrypt N, the way the app writes keystores."""
    account = Account.from_key(bytes.fromhex(key_hex))
    return encrypt_account(account, password, scrypt_n=FAST_SCRYPT_N)


def key_text_forms(key: bytes) -> list[bytes]:
    """Return the forms in which a key could leak into text or a file."""
    digits = key.hex()
    return [digits.encode(), digits.upper().encode(), key]


def files_containing(folder: Path, needles: list[bytes]) -> list[Path]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(needle in data or needle in data.lower() for needle in needles):
                found.append(path)
    return found


# Parsing and generating keys.


@pytest.mark.parametrize(
    "text",
    [
        KNOWN_KEY_HEX,
        "0x" + KNOWN_KEY_HEX,
        "0X" + KNOWN_KEY_HEX.upper(),
        f"  0x{KNOWN_KEY_HEX}\n",
    ],
)
def test_parse_private_key_accepts_hex_forms(text: str) -> None:
    assert parse_private_key(text) == bytes.fromhex(KNOWN_KEY_HEX)


@pytest.mark.parametrize(
    ("text", "expected_error"),
    [
        ("", "empty"),
        ("0x", "empty"),
        (KNOWN_KEY_HEX[:62], "got 62"),
        (KNOWN_KEY_HEX + "00", "got 66"),
        (KNOWN_KEY_HEX[:63] + "g", "not hexadecimal"),
        ("legal winner thank year wave sausage worth useful", "not hexadecimal"),
        ("00" * 32, "zero"),
        (f"{SECP256K1_ORDER:064x}", "group order"),
        (f"{SECP256K1_ORDER + 1:064x}", "group order"),
        ("ff" * 32, "group order"),
    ],
)
def test_parse_private_key_rejects_bad_values(text: str, expected_error: str) -> None:
    with pytest.raises(WalletError, match=expected_error) as caught:
        parse_private_key(text)

    if len(text.strip()) > 4:
        assert text.strip() not in str(caught.value)
        assert text.strip() not in caught.value.user_message


def test_parse_private_key_accepts_largest_valid_key() -> None:
    largest = f"{SECP256K1_ORDER - 1:064x}"

    assert int.from_bytes(parse_private_key(largest), "big") == SECP256K1_ORDER - 1


def test_generate_private_key_valid_distinct() -> None:
    keys = {generate_private_key() for _ in range(20)}

    assert len(keys) == 20
    for key in keys:
        assert len(key) == 32
        assert 0 < int.from_bytes(key, "big") < SECP256K1_ORDER


# The Wallet signer.


def test_wallet_repr_and_str_hide_key() -> None:
    account = Account.from_key(bytes.fromhex(KNOWN_KEY_HEX))
    wallet = Wallet(account, storage="memory")

    for text in (repr(wallet), str(wallet), f"{wallet}"):
        assert KNOWN_KEY_HEX not in text.lower()
        assert KNOWN_ADDRESS in text


def test_wallet_cannot_be_pickled_or_copied() -> None:
    wallet = Wallet(Account.from_key(bytes.fromhex(KNOWN_KEY_HEX)), storage="memory")

    with pytest.raises(TypeError, match="private key"):
        pickle.dumps(wallet)
    with pytest.raises(TypeError, match="private key"):
        copy.copy(wallet)


def test_wallet_signatures_recover_its_address() -> None:
    wallet = Wallet(Account.from_key(generate_private_key()), storage="memory")
    transaction = {
        "type": 2,
        "chainId": 31337,
        "nonce": 0,
        "to": "0x" + "00" * 19 + "01",
        "value": 1,
        "gas": 21000,
        "maxFeePerGas": 2_000_000_000,
        "maxPriorityFeePerGas": 1_000_000_000,
    }
    message = encode_defunct(text="round 1 update")

    signed_transaction = wallet.sign_transaction(transaction)
    signed_message = wallet.sign_message(message)

    recovered = Account.recover_transaction(signed_transaction.raw_transaction)
    assert recovered == wallet.address
    assert (
        Account.recover_message(message, signature=signed_message.signature)
        == wallet.address
    )


# Keys in the real Secret Service.


def test_profile_wallet_create_then_open(make_wallet: WalletFactory) -> None:
    profile = make_wallet()
    assert not profile.has_key()

    created = profile.create()
    opened = make_wallet().open()

    assert profile.has_key()
    assert opened.address == created.address
    assert opened.storage == "keyring"


def test_create_twice_raises_key_exists(
    make_wallet: WalletFactory,
) -> None:
    profile = make_wallet()
    first = profile.create()

    with pytest.raises(KeyExistsError):
        profile.create()
    with pytest.raises(KeyExistsError):
        profile.import_private_key(KNOWN_KEY_HEX)
    assert profile.open().address == first.address


def test_profile_wallet_replace_after_export(
    make_wallet: WalletFactory, tmp_path: Path
) -> None:
    profile = make_wallet()
    old = profile.create()
    backup = profile.export_keystore(tmp_path / "old.json", PASSWORD)

    new = profile.import_private_key(KNOWN_KEY_HEX, replace=True)

    assert new.address == KNOWN_ADDRESS
    assert profile.open().address == KNOWN_ADDRESS
    assert decrypt_keystore(backup.read_text(), PASSWORD).address == old.address


def test_profile_wallet_import_hex_then_open(make_wallet: WalletFactory) -> None:
    imported = make_wallet().import_private_key("0x" + KNOWN_KEY_HEX)

    assert imported.address == KNOWN_ADDRESS
    assert make_wallet().open().address == KNOWN_ADDRESS


def test_profile_wallet_bad_hex_stores_nothing(make_wallet: WalletFactory) -> None:
    profile = make_wallet()

    with pytest.raises(WalletError, match="invalid private key"):
        profile.import_private_key("00" * 32)

    assert not profile.has_key()


def test_open_missing_key_raises(
    make_wallet: WalletFactory,
) -> None:
    with pytest.raises(KeyNotFoundError):
        make_wallet().open()


def test_profile_wallet_delete(make_wallet: WalletFactory) -> None:
    profile = make_wallet()
    profile.create()

    profile.delete()

    assert not profile.has_key()
    with pytest.raises(KeyNotFoundError):
        profile.delete()


def test_locked_keyring_not_missing_key(
    make_wallet: WalletFactory, secret_service: SecretServiceDaemon
) -> None:
    profile = make_wallet()
    created = profile.create()
    secret_service.lock_login()

    with pytest.raises(KeyringLockedError):
        profile.open()
    with pytest.raises(KeyringLockedError):
        profile.has_key()
    with pytest.raises(KeyringLockedError):
        profile.create(replace=True)

    secret_service.unlock_login()
    assert profile.open().address == created.address


def test_keyring_storage_rejects_password(
    make_wallet: WalletFactory,
) -> None:
    with pytest.raises(ValueError, match="keystore-file storage"):
        make_wallet().create(password=PASSWORD)


def test_damaged_keyring_entry_raises(
    make_wallet: WalletFactory,
) -> None:
    profile = make_wallet()
    profile.keyring_store.write_key("not a key")

    with pytest.raises(WalletError, match="does not contain a valid private key"):
        profile.open()


# Keystore export and import.


def test_export_import_keystore_round_trip(
    make_wallet: WalletFactory, tmp_path: Path
) -> None:
    source = make_wallet("shop-1")
    created = source.create()
    destination = tmp_path / "backup.json"

    returned = source.export_keystore(destination, PASSWORD)
    imported = make_wallet("shop-2").import_keystore_file(destination, PASSWORD)

    assert returned == destination
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    document = json.loads(destination.read_text())
    assert document["version"] == 3
    assert document["crypto"]["kdf"] == "scrypt"
    assert imported.address == created.address
    assert make_wallet("shop-2").open().address == created.address
    assert [path.name for path in tmp_path.iterdir()] == ["backup.json"]


def test_export_keystore_existing_file_raises(
    make_wallet: WalletFactory, tmp_path: Path
) -> None:
    profile = make_wallet()
    profile.create()
    destination = tmp_path / "backup.json"
    destination.write_text("keep me")

    with pytest.raises(WalletError, match="exists"):
        profile.export_keystore(destination, PASSWORD)

    assert destination.read_text() == "keep me"


def test_export_keystore_short_password_raises(
    make_wallet: WalletFactory, tmp_path: Path
) -> None:
    profile = make_wallet()
    profile.create()
    destination = tmp_path / "backup.json"

    with pytest.raises(WalletError, match="too short"):
        profile.export_keystore(destination, "seven77")

    assert not destination.exists()


def test_export_keystore_missing_folder_raises(
    make_wallet: WalletFactory, tmp_path: Path
) -> None:
    profile = make_wallet()
    profile.create()

    with pytest.raises(WalletError, match="does not exist"):
        profile.export_keystore(tmp_path / "missing" / "backup.json", PASSWORD)


def test_import_keystore_wrong_password_raises(make_wallet: WalletFactory) -> None:
    profile = make_wallet()
    keystore = json.dumps(fast_keystore(KNOWN_KEY_HEX))

    with pytest.raises(WrongPasswordError, match="MAC mismatch") as caught:
        profile.import_keystore(keystore, "wrong password")

    assert "password" in caught.value.user_message
    assert not profile.has_key()


def test_decrypt_keystore_spec_vectors() -> None:
    for keystore in (SPEC_PBKDF2_KEYSTORE, SPEC_SCRYPT_KEYSTORE):
        account = decrypt_keystore(json.dumps(keystore), SPEC_PASSWORD)

        assert private_key_hex(account) == "0x" + SPEC_KEY_HEX


def test_decrypt_keystore_accepts_capitalised_crypto() -> None:
    keystore = fast_keystore(KNOWN_KEY_HEX)
    keystore["Crypto"] = keystore.pop("crypto")

    assert decrypt_keystore(keystore, PASSWORD).address == KNOWN_ADDRESS


def test_encrypt_account_uses_default_scrypt() -> None:
    account = Account.from_key(generate_private_key())

    keystore = encrypt_account(account, PASSWORD)

    assert keystore["crypto"]["kdfparams"]["n"] == DEFAULT_SCRYPT_N
    assert decrypt_keystore(keystore, PASSWORD).address == account.address


def _with_crypto_field(path: str, value: Any) -> str:
    keystore = fast_keystore(KNOWN_KEY_HEX)
    target = keystore
    *parents, name = path.split(".")
    for parent in parents:
        target = target[parent]
    if value is None:
        del target[name]
    else:
        target[name] = value
    return json.dumps(keystore)


@pytest.mark.parametrize(
    ("keystore_text", "expected_error"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ("", "not valid JSON"),
        (_with_crypto_field("version", 4), "version 4"),
        (_with_crypto_field("crypto", None), "crypto is missing"),
        (_with_crypto_field("crypto.cipher", "aes-128-cbc"), "cipher"),
        (_with_crypto_field("crypto.kdf", "argon2"), "argon2"),
        (_with_crypto_field("crypto.mac", "zz"), "mac is not hexadecimal"),
        (_with_crypto_field("crypto.ciphertext", "00" * 16), "ciphertext has 16"),
        (_with_crypto_field("crypto.cipherparams.iv", None), "iv is missing"),
        (_with_crypto_field("crypto.kdfparams.n", 2**24), "memory"),
        (_with_crypto_field("crypto.kdfparams.n", 1000), "power of two"),
        (_with_crypto_field("crypto.kdfparams.p", 1000), "work limit"),
        (_with_crypto_field("crypto.kdfparams.dklen", 16), "dklen"),
        (_with_crypto_field("address", "00" * 20), "does not match"),
    ],
)
def test_import_keystore_malformed_raises(
    make_wallet: WalletFactory, keystore_text: str, expected_error: str
) -> None:
    profile = make_wallet()

    with pytest.raises(WalletError, match=expected_error) as caught:
        profile.import_keystore(keystore_text, PASSWORD)

    assert not isinstance(caught.value, WrongPasswordError)
    assert KNOWN_KEY_HEX not in str(caught.value)
    assert not profile.has_key()


def test_import_keystore_file_too_large_raises(
    make_wallet: WalletFactory, tmp_path: Path
) -> None:
    path = tmp_path / "huge.json"
    path.write_text(" " * (65 * 1024) + "{}")

    with pytest.raises(WalletError, match="at most"):
        make_wallet().import_keystore_file(path, PASSWORD)


def test_write_private_file_atomic(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"

    write_private_file(target, b"first", replace=False)
    with pytest.raises(FileExistsError):
        write_private_file(target, b"second", replace=False)
    write_private_file(target, b"third", replace=True)

    assert target.read_bytes() == b"third"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["secret.json"]


# The keystore file used where no keyring exists.


def test_keyring_unavailable_offers_keystore_file(
    no_keyring_backend: fail.Keyring, tmp_path: Path
) -> None:
    profile = ProfileWallet("shop-1", tmp_path / "shop-1")

    with pytest.raises(KeyringUnavailableError) as caught:
        profile.create()

    assert "no system keyring" in str(caught.value)
    assert "keystore file" in str(caught.value)
    assert not profile.keyring_backend().usable
    assert not (tmp_path / "shop-1").exists()


def test_keystore_file_storage_round_trip(
    no_keyring_backend: fail.Keyring, tmp_path: Path
) -> None:
    profile = ProfileWallet(
        "shop-1",
        tmp_path / "shop-1",
        storage=KeyStorage.KEYSTORE_FILE,
        scrypt_n=FAST_SCRYPT_N,
    )

    created = profile.create(password=PASSWORD)
    opened = profile.open(password=PASSWORD)

    keystore_path = profile.keystore_file.path
    assert keystore_path.parent == tmp_path / "shop-1"
    assert stat.S_IMODE(keystore_path.stat().st_mode) == 0o600
    assert json.loads(keystore_path.read_text())["crypto"]["kdf"] == "scrypt"
    assert opened.address == created.address
    assert opened.storage == "keystore-file"


def test_keystore_file_storage_errors(tmp_path: Path) -> None:
    profile = ProfileWallet(
        "shop-1",
        tmp_path / "shop-1",
        storage=KeyStorage.KEYSTORE_FILE,
        scrypt_n=FAST_SCRYPT_N,
    )
    with pytest.raises(KeyNotFoundError):
        profile.open(password=PASSWORD)
    with pytest.raises(WalletError, match="too short"):
        profile.create(password="short")
    with pytest.raises(WalletError, match="needs a password"):
        profile.create()
    profile.import_private_key(KNOWN_KEY_HEX, password=PASSWORD)

    with pytest.raises(WrongPasswordError):
        profile.open(password="wrong password")
    with pytest.raises(KeyExistsError):
        profile.create(password=PASSWORD)
    assert profile.open(password=PASSWORD).address == KNOWN_ADDRESS

    profile.delete()
    assert not profile.has_key()


# The key never leaks.


def test_key_absent_from_logs_repr_and_files(
    make_wallet: WalletFactory,
    secret_service: SecretServiceDaemon,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = bytes.fromhex(KNOWN_KEY_HEX)
    profile = make_wallet("shop-1")
    file_profile = make_wallet("shop-2", storage=KeyStorage.KEYSTORE_FILE)

    wallet = profile.import_private_key(KNOWN_KEY_HEX)
    profile.open()
    exported = profile.export_keystore(tmp_path / "backup.json", PASSWORD)
    file_profile.import_keystore_file(exported, PASSWORD, password=PASSWORD)
    file_wallet = file_profile.open(password=PASSWORD)
    with pytest.raises(KeyExistsError) as exists_error:
        profile.import_private_key(KNOWN_KEY_HEX)
    secret_service.lock_login()
    with pytest.raises(KeyringLockedError) as locked_error:
        profile.open()

    assert KNOWN_ADDRESS in caplog.text
    texts = [
        caplog.text,
        repr(wallet),
        str(wallet),
        repr(file_wallet),
        repr(profile),
        repr(profile.keyring_store),
        str(exists_error.value),
        str(locked_error.value),
    ]
    for text in texts:
        assert KNOWN_KEY_HEX not in text.lower()
    needles = key_text_forms(key)
    assert files_containing(tmp_path, needles) == []
    assert files_containing(secret_service.base_dir, needles) == []
    assert any(secret_service.base_dir.rglob("*.keyring"))
