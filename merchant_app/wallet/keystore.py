"""Password-encrypted keystore files (Web3 Secret Storage, version 3).

The app writes keystores with scrypt and AES-128-CTR through eth-account, and
reads version 3 files written by other wallets (geth, MetaMask exports,
MyEtherWallet) with scrypt or PBKDF2-HMAC-SHA256. Each field is checked before
any key derivation runs, so a crafted file cannot ask for gigabytes of scrypt
memory or hours of PBKDF2 rounds. Files are written atomically with mode 0600
and never overwrite an existing file unless the caller asks for it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keyfile.exceptions import EthKeyfileException
from eth_utils import to_checksum_address

from merchant_app.errors import (
    KeyExistsError,
    KeyNotFoundError,
    WalletError,
    WrongPasswordError,
)
from merchant_app.wallet.keys import account_from_key

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
# scrypt N of geth's "standard" keystores, also eth-account's default. With
# r = 8 it needs 128 * 8 * 2**18 bytes = 256 MiB of memory.
DEFAULT_SCRYPT_N = 2**18
MAX_KEYSTORE_FILE_BYTES = 64 * 1024
# Limits on the cost a keystore file may ask for. scrypt needs 128 * r * N
# bytes of memory and time in proportion to N * r * p. The limits allow 8 times
# the work of a geth standard keystore (N = 2**18, r = 8, p = 1).
MAX_SCRYPT_MEMORY_BYTES = 512 * 1024 * 1024
MAX_SCRYPT_WORK = 8 * 2**18 * 8
MAX_PBKDF2_ITERATIONS = 10_000_000

_KEYSTORE_USER_MESSAGE = "The keystore file cannot be read. Choose a valid keystore."


def check_new_password(password: str) -> None:
    """Raise :class:`WalletError` if ``password`` is too short for a new keystore.

    Only passwords that protect a new file are checked: an imported keystore
    is opened with whatever password it was made with.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WalletError(
            f"keystore password too short: {len(password)} characters, at least "
            f"{MIN_PASSWORD_LENGTH} required",
            user_message=(
                f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters."
            ),
        )


def encrypt_account(
    account: LocalAccount, password: str, *, scrypt_n: int = DEFAULT_SCRYPT_N
) -> dict[str, Any]:
    """Encrypt the account's key into a version 3 keystore with scrypt.

    ``scrypt_n`` must be a power of two. Tests lower it to run faster.
    """
    if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
        raise ValueError(f"scrypt_n must be a power of two above 1, got {scrypt_n}")
    check_new_password(password)
    keystore: dict[str, Any] = Account.encrypt(
        account.key, password, kdf="scrypt", iterations=scrypt_n
    )
    return keystore


def decrypt_keystore(
    keystore: str | bytes | Mapping[str, Any], password: str
) -> LocalAccount:
    """Decrypt a version 3 keystore, given as JSON text or a parsed mapping.

    Raises:
        WrongPasswordError: when the MAC check fails (wrong password or a
            damaged ciphertext).
        WalletError: when the JSON is malformed, a field is missing or
            invalid, the version or algorithm is unsupported, a cost
            parameter is above the limits, or the ``address`` field does not
            match the decrypted key.
    """
    document = _parse_keystore_document(keystore)
    _check_keystore_fields(document)

    try:
        key = bytes(Account.decrypt(document, password))
    except EthKeyfileException as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPasswordError(
                "keystore decryption failed: wrong password or damaged "
                "ciphertext (MAC mismatch)"
            ) from exc
        raise WalletError(
            f"keystore decryption failed: {exc}", user_message=_KEYSTORE_USER_MESSAGE
        ) from exc

    account = account_from_key(key)
    _check_address_field(document, account)
    return account


def read_keystore_file(path: Path) -> str:
    """Read a keystore file as text, refusing files above 64 KiB."""
    try:
        size = path.stat().st_size
        if size > MAX_KEYSTORE_FILE_BYTES:
            raise WalletError(
                f"keystore file {path} is {size} bytes; a keystore is at most "
                f"{MAX_KEYSTORE_FILE_BYTES} bytes",
                user_message=_KEYSTORE_USER_MESSAGE,
            )
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise WalletError(
            f"keystore file not found: {path}",
            user_message="The keystore file was not found.",
        ) from exc
    except UnicodeDecodeError as exc:
        raise WalletError(
            f"keystore file {path} is not UTF-8 text: {exc.reason}",
            user_message=_KEYSTORE_USER_MESSAGE,
        ) from exc
    except OSError as exc:
        raise WalletError(
            f"cannot read keystore file {path}: {exc.strerror}",
            user_message=_KEYSTORE_USER_MESSAGE,
        ) from exc


def write_keystore_file(
    path: Path, keystore: Mapping[str, Any], *, replace: bool = False
) -> None:
    """Write a keystore atomically to ``path`` with mode 0600.

    Raises:
        FileExistsError: when ``path`` exists and ``replace`` is false.
        WalletError: when the folder is missing or the write fails.
    """
    data = (json.dumps(keystore, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        write_private_file(path, data, replace=replace)
    except FileExistsError:
        raise
    except OSError as exc:
        raise WalletError(
            f"cannot write keystore file {path}: {exc.strerror}",
            user_message="The keystore file could not be saved. Check the folder.",
        ) from exc
    logger.info("wrote keystore file %s", path)


def write_private_file(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only.

    The bytes go to a temporary file in the same folder first, so a crash
    never leaves a partial file at ``path``. Without ``replace`` the file is
    published with a hard link, which fails if ``path`` exists even when
    another process creates it meanwhile.

    Raises:
        FileExistsError: when ``path`` exists and ``replace`` is false.
        OSError: when the folder is missing or a write fails.
    """
    if not replace and path.exists():
        raise FileExistsError(path)

    # mkstemp creates the file with mode 0600 on POSIX.
    handle, temporary_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o600)
        if replace:
            os.replace(temporary, path)
        else:
            _publish_without_overwrite(temporary, path, data)
        _sync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _publish_without_overwrite(temporary: Path, path: Path, data: bytes) -> None:
    try:
        os.link(temporary, path)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        # Some file systems (FAT, exFAT, some network shares) have no hard
        # links, so an exclusive create is the next best thing.
        logger.debug("hard link to %s failed (%s); creating it with O_EXCL", path, exc)

    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except OSError:
        path.unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    """Flush the folder entry of a new file to disk, where the OS allows it."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        logger.debug("cannot open folder %s to sync it: %s", folder, exc)
        return
    try:
        os.fsync(handle)
    except OSError as exc:
        logger.debug("cannot sync folder %s: %s", folder, exc)
    finally:
        os.close(handle)


class KeystoreFileStore:
    """The profile's key as a password-encrypted keystore file.

    The fallback for computers without a usable OS keyring: the key never
    touches the disk in plain text, and each use needs the password.
    """

    FILE_NAME = "wallet.keystore.json"

    def __init__(self, profile_dir: Path, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        self.profile_dir = profile_dir
        self.scrypt_n = scrypt_n

    @property
    def path(self) -> Path:
        """Location of the keystore file in the profile folder."""
        return self.profile_dir / self.FILE_NAME

    def has_key(self) -> bool:
        """Return whether the profile folder contains a keystore file."""
        return self.path.is_file()

    def write_key(
        self, account: LocalAccount, password: str, *, replace: bool = False
    ) -> None:
        """Encrypt the key with ``password`` and write it to :attr:`path`.

        Raises:
            KeyExistsError: when the file exists and ``replace`` is false.
        """
        if not replace and self.has_key():
            raise self._key_exists_error()
        keystore = encrypt_account(account, password, scrypt_n=self.scrypt_n)
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        try:
            write_keystore_file(self.path, keystore, replace=replace)
        except FileExistsError as exc:
            raise self._key_exists_error() from exc
        logger.info("stored key of %s in keystore file %s", account.address, self.path)

    def read_key(self, password: str) -> LocalAccount:
        """Decrypt the profile's keystore file.

        Raises:
            KeyNotFoundError: when the file does not exist.
            WrongPasswordError: when the password is wrong.
        """
        if not self.has_key():
            raise KeyNotFoundError(f"no keystore file at {self.path}")
        account = decrypt_keystore(read_keystore_file(self.path), password)
        logger.info("opened keystore file %s for %s", self.path, account.address)
        return account

    def delete_key(self) -> None:
        """Delete the keystore file.

        Raises:
            KeyNotFoundError: when the file does not exist.
        """
        try:
            self.path.unlink()
        except FileNotFoundError as exc:
            raise KeyNotFoundError(f"no keystore file at {self.path}") from exc
        logger.info("deleted keystore file %s", self.path)

    def _key_exists_error(self) -> KeyExistsError:
        return KeyExistsError(
            f"keystore file {self.path} exists; export the key and pass "
            "replace=True to replace it"
        )


def _parse_keystore_document(
    keystore: str | bytes | Mapping[str, Any],
) -> dict[str, Any]:
    """Return the keystore as a dict whose keys are all lowercase.

    Some wallets write ``Crypto`` instead of ``crypto``. eth-keyfile
    lowercases the keys in the same way before it decrypts.
    """
    if isinstance(keystore, Mapping):
        parsed: Any = keystore
    else:
        try:
            parsed = json.loads(keystore)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WalletError(
                f"the keystore is not valid JSON: {exc}",
                user_message=_KEYSTORE_USER_MESSAGE,
            ) from exc
    if not isinstance(parsed, Mapping):
        raise WalletError(
            f"the keystore is not a JSON object but a {type(parsed).__name__}",
            user_message=_KEYSTORE_USER_MESSAGE,
        )
    return _lowercase_keys(parsed)


def _lowercase_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in mapping.items():
        name = key.lower() if isinstance(key, str) else key
        result[name] = _lowercase_keys(value) if isinstance(value, Mapping) else value
    return result


def _check_keystore_fields(document: Mapping[str, Any]) -> None:
    """Check version, algorithms, field sizes and KDF cost before decrypting."""
    version = document.get("version")
    if version != 3:
        raise _format_error(
            f"unsupported keystore version {version!r}; only version 3 is supported"
        )
    crypto = _require_mapping(document, "crypto", "keystore")

    cipher = crypto.get("cipher")
    if cipher != "aes-128-ctr":
        raise _format_error(
            f"unsupported keystore cipher {cipher!r}; expected 'aes-128-ctr'"
        )
    cipherparams = _require_mapping(crypto, "cipherparams", "crypto")
    _require_hex(cipherparams, "iv", "crypto.cipherparams", sizes=(16,))
    _require_hex(crypto, "ciphertext", "crypto", sizes=(32,))
    _require_hex(crypto, "mac", "crypto", sizes=(32,))

    kdf = crypto.get("kdf")
    kdfparams = _require_mapping(crypto, "kdfparams", "crypto")
    if kdfparams.get("dklen") != 32:
        raise _format_error(
            f"crypto.kdfparams.dklen is {kdfparams.get('dklen')!r}; expected 32"
        )
    _require_hex(kdfparams, "salt", "crypto.kdfparams", sizes=range(8, 129))
    if kdf == "scrypt":
        _check_scrypt_parameters(
            n=_require_int(kdfparams, "n"),
            r=_require_int(kdfparams, "r"),
            p=_require_int(kdfparams, "p"),
        )
    elif kdf == "pbkdf2":
        _check_pbkdf2_parameters(kdfparams)
    else:
        raise _format_error(
            f"unsupported key derivation function {kdf!r}; "
            "expected 'scrypt' or 'pbkdf2'"
        )


def _check_scrypt_parameters(*, n: int, r: int, p: int) -> None:
    if n < 2 or n & (n - 1):
        raise _format_error(f"scrypt n must be a power of two above 1, got {n}")
    if r < 1 or p < 1:
        raise _format_error(f"scrypt r and p must be at least 1, got r={r}, p={p}")
    if 128 * r * n > MAX_SCRYPT_MEMORY_BYTES:
        raise _format_error(
            f"scrypt parameters n={n}, r={r} need {128 * r * n} bytes of memory; "
            f"the limit is {MAX_SCRYPT_MEMORY_BYTES}"
        )
    if n * r * p > MAX_SCRYPT_WORK:
        raise _format_error(
            f"scrypt parameters n={n}, r={r}, p={p} exceed the work limit "
            f"n * r * p <= {MAX_SCRYPT_WORK}"
        )


def _check_pbkdf2_parameters(kdfparams: Mapping[str, Any]) -> None:
    prf = kdfparams.get("prf")
    if prf != "hmac-sha256":
        raise _format_error(f"unsupported PBKDF2 prf {prf!r}; expected 'hmac-sha256'")
    iterations = _require_int(kdfparams, "c")
    if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise _format_error(
            f"PBKDF2 iteration count {iterations} is outside [1, "
            f"{MAX_PBKDF2_ITERATIONS}]"
        )


def _check_address_field(document: Mapping[str, Any], account: LocalAccount) -> None:
    """Compare the optional ``address`` field with the decrypted key's address."""
    address = document.get("address")
    if address is None:
        return
    try:
        expected = to_checksum_address(address)
    except (TypeError, ValueError) as exc:
        raise _format_error(
            f"the keystore address field {address!r} is invalid"
        ) from exc
    if expected != account.address:
        raise _format_error(
            f"the keystore address field {expected} does not match the address "
            f"{account.address} of the decrypted key"
        )


def _require_mapping(
    parent: Mapping[str, Any], name: str, where: str
) -> Mapping[str, Any]:
    value = parent.get(name)
    if not isinstance(value, Mapping):
        raise _format_error(f"{where}.{name} is missing or not a JSON object")
    return value


def _require_int(parent: Mapping[str, Any], name: str) -> int:
    value = parent.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _format_error(f"crypto.kdfparams.{name} is missing or not an integer")
    return value


def _require_hex(
    parent: Mapping[str, Any], name: str, where: str, *, sizes: range | tuple[int, ...]
) -> None:
    value = parent.get(name)
    if not isinstance(value, str):
        raise _format_error(f"{where}.{name} is missing or not a string")
    digits = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        size = len(bytes.fromhex(digits))
    except ValueError as exc:
        raise _format_error(f"{where}.{name} is not hexadecimal") from exc
    if size not in sizes:
        raise _format_error(
            f"{where}.{name} has {size} bytes; expected {_describe(sizes)}"
        )


def _describe(sizes: range | tuple[int, ...]) -> str:
    if isinstance(sizes, range):
        return f"{sizes.start} to {sizes.stop - 1}"
    return " or ".join(str(size) for size in sizes)


def _format_error(message: str) -> WalletError:
    return WalletError(
        f"invalid keystore: {message}", user_message=_KEYSTORE_USER_MESSAGE
    )
