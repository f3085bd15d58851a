"""The merchant's signing account and the profile operations on its key.

:class:`ProfileWallet` creates, imports, opens, exports and deletes the key of
one profile. The key lives in the OS keyring (:class:`KeyStorage.KEYRING`) or,
where no keyring exists, in a password-encrypted keystore file in the profile
folder (:class:`KeyStorage.KEYSTORE_FILE`). It is never written in plain text.
Callers get a :class:`Wallet`, which signs but does not show the key.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from eth_account.datastructures import SignedMessage, SignedTransaction
from eth_account.messages import SignableMessage
from eth_account.signers.local import LocalAccount
from keyring.backend import KeyringBackend

from merchant_app.errors import WalletError
from merchant_app.wallet.keyring_store import BackendInfo, KeyringStore
from merchant_app.wallet.keys import (
    account_from_key,
    generate_private_key,
    parse_private_key,
    private_key_hex,
)
from merchant_app.wallet.keystore import (
    DEFAULT_SCRYPT_N,
    KeystoreFileStore,
    check_new_password,
    decrypt_keystore,
    encrypt_account,
    read_keystore_file,
    write_keystore_file,
)

logger = logging.getLogger(__name__)


class KeyStorage(enum.StrEnum):
    """Storage location of a profile's private key."""

    KEYRING = "keyring"
    KEYSTORE_FILE = "keystore-file"


# ``Wallet.storage`` of a key held only in memory (the demo's throwaway key).
MEMORY_STORAGE = "memory"


class Wallet:
    """A signing account whose private key stays out of ``repr``, ``str`` and pickles.

    The chain client signs through :meth:`sign_transaction`. Code that needs
    the eth-account object itself, such as a web3 signing middleware, uses
    :attr:`local_account` and must not log it.
    """

    __slots__ = ("_account", "storage")

    def __init__(self, account: LocalAccount, *, storage: str) -> None:
        self._account = account
        # Where the key came from: a KeyStorage value, or MEMORY_STORAGE.
        self.storage = storage

    @property
    def address(self) -> str:
        """The account's checksummed address."""
        return str(self._account.address)

    @property
    def local_account(self) -> LocalAccount:
        """The eth-account signer, for libraries that take one."""
        return self._account

    def sign_transaction(self, transaction: Mapping[str, Any]) -> SignedTransaction:
        """Sign a transaction dictionary (legacy, EIP-2930 or EIP-1559)."""
        return self._account.sign_transaction(dict(transaction))

    def sign_message(self, message: SignableMessage) -> SignedMessage:
        """Sign an EIP-191 message built with ``eth_account.messages``."""
        return self._account.sign_message(message)

    def __repr__(self) -> str:
        return f"Wallet(address={self.address}, storage={self.storage!r})"

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(
            "a Wallet contains a private key and cannot be pickled or copied"
        )


class ProfileWallet:
    """Create, import, open, export and delete the private key of one profile.

    ``password`` arguments are for :attr:`KeyStorage.KEYSTORE_FILE` storage,
    where they encrypt the profile's keystore file. With the keyring they
    must be None. A stored key is never replaced unless the caller passes
    ``replace=True``, which it should do only after exporting the old key.
    """

    def __init__(
        self,
        profile_id: str,
        profile_dir: Path,
        *,
        storage: KeyStorage = KeyStorage.KEYRING,
        keyring_backend: KeyringBackend | None = None,
        allow_unlock_prompt: bool = True,
        scrypt_n: int = DEFAULT_SCRYPT_N,
    ) -> None:
        self.profile_id = profile_id
        self.storage = KeyStorage(storage)
        self.scrypt_n = scrypt_n
        self.keyring_store = KeyringStore(
            profile_id,
            backend=keyring_backend,
            allow_unlock_prompt=allow_unlock_prompt,
        )
        self.keystore_file = KeystoreFileStore(profile_dir, scrypt_n=scrypt_n)

    def __repr__(self) -> str:
        return (
            f"ProfileWallet(profile_id={self.profile_id!r}, "
            f"storage={self.storage.value!r})"
        )

    def keyring_backend(self) -> BackendInfo:
        """Describe the OS keyring backend, for the settings screen."""
        return self.keyring_store.backend_info()

    def has_key(self) -> bool:
        """Return whether the profile has a stored key.

        Raises:
            KeyringLockedError: when the keyring is locked.
            KeyringUnavailableError: when keyring storage has no OS keyring.
        """
        if self.storage is KeyStorage.KEYRING:
            return self.keyring_store.has_key()
        return self.keystore_file.has_key()

    def create(self, *, password: str | None = None, replace: bool = False) -> Wallet:
        """Create a new random key, store it and return its wallet.

        Raises:
            KeyExistsError: when a key is stored and ``replace`` is false.
        """
        account = account_from_key(generate_private_key())
        self._store(account, password=password, replace=replace)
        logger.info("created key for profile %s: %s", self.profile_id, account.address)
        return Wallet(account, storage=self.storage.value)

    def import_private_key(
        self, key_text: str, *, password: str | None = None, replace: bool = False
    ) -> Wallet:
        """Import a hex private key (with or without ``0x``) and store it.

        Raises:
            WalletError: when the text is not a valid secp256k1 private key.
            KeyExistsError: when a key is stored and ``replace`` is false.
        """
        account = account_from_key(parse_private_key(key_text))
        self._store(account, password=password, replace=replace)
        logger.info("imported key for profile %s: %s", self.profile_id, account.address)
        return Wallet(account, storage=self.storage.value)

    def import_keystore(
        self,
        keystore_json: str,
        keystore_password: str,
        *,
        password: str | None = None,
        replace: bool = False,
    ) -> Wallet:
        """Decrypt a version 3 keystore given as JSON text and store its key.

        Raises:
            WrongPasswordError: when ``keystore_password`` is wrong.
            WalletError: when the keystore is malformed or unsupported.
            KeyExistsError: when a key is stored and ``replace`` is false.
        """
        account = decrypt_keystore(keystore_json, keystore_password)
        self._store(account, password=password, replace=replace)
        logger.info(
            "imported keystore for profile %s: %s", self.profile_id, account.address
        )
        return Wallet(account, storage=self.storage.value)

    def import_keystore_file(
        self,
        path: Path,
        keystore_password: str,
        *,
        password: str | None = None,
        replace: bool = False,
    ) -> Wallet:
        """Read a keystore file and import it like :meth:`import_keystore`."""
        return self.import_keystore(
            read_keystore_file(path),
            keystore_password,
            password=password,
            replace=replace,
        )

    def open(self, *, password: str | None = None) -> Wallet:
        """Load the stored key and return its wallet.

        Raises:
            KeyNotFoundError: when no key is stored.
            KeyringLockedError: when the keyring is locked.
            WrongPasswordError: when the keystore file password is wrong.
        """
        account = self._load(password)
        logger.info("opened key for profile %s: %s", self.profile_id, account.address)
        return Wallet(account, storage=self.storage.value)

    def export_keystore(
        self, destination: Path, export_password: str, *, password: str | None = None
    ) -> Path:
        """Write the stored key to ``destination`` as a new scrypt keystore file.

        The file gets mode 0600, and an existing file is never overwritten.

        Raises:
            WalletError: when ``export_password`` is too short, the file
                exists, or its folder is missing.
            KeyNotFoundError: when no key is stored.
        """
        check_new_password(export_password)
        if destination.exists():
            raise WalletError(
                f"export destination {destination} exists; choose a new file name",
                user_message="A file with that name exists. Choose another name.",
            )
        if not destination.parent.is_dir():
            raise WalletError(
                f"export folder {destination.parent} does not exist",
                user_message="The folder for the export does not exist.",
            )

        account = self._load(password)
        keystore = encrypt_account(account, export_password, scrypt_n=self.scrypt_n)
        try:
            write_keystore_file(destination, keystore, replace=False)
        except FileExistsError as exc:
            raise WalletError(
                f"export destination {destination} was created by another program; "
                "choose a new file name",
                user_message="A file with that name exists. Choose another name.",
            ) from exc
        logger.info("exported key of %s to %s", account.address, destination)
        return destination

    def delete(self) -> None:
        """Delete the stored key.

        Raises:
            KeyNotFoundError: when no key is stored.
        """
        if self.storage is KeyStorage.KEYRING:
            self.keyring_store.delete_key()
        else:
            self.keystore_file.delete_key()
        logger.info("deleted key of profile %s", self.profile_id)

    def _store(
        self, account: LocalAccount, *, password: str | None, replace: bool
    ) -> None:
        if self.storage is KeyStorage.KEYRING:
            self._reject_password(password)
            self.keyring_store.write_key(private_key_hex(account), replace=replace)
        else:
            self.keystore_file.write_key(
                account, self._require_password(password), replace=replace
            )

    def _load(self, password: str | None) -> LocalAccount:
        if self.storage is KeyStorage.KEYSTORE_FILE:
            return self.keystore_file.read_key(self._require_password(password))

        self._reject_password(password)
        stored = self.keyring_store.read_key()
        try:
            return account_from_key(parse_private_key(stored))
        except WalletError as exc:
            raise WalletError(
                f"the keyring entry of profile {self.profile_id!r} does not contain "
                f"a valid private key: {exc}",
                user_message="The stored wallet key is damaged.",
            ) from exc

    def _reject_password(self, password: str | None) -> None:
        if password is not None:
            raise ValueError(
                "a password is only used with keystore-file storage; "
                f"profile {self.profile_id!r} keeps its key in the keyring"
            )

    def _require_password(self, password: str | None) -> str:
        if password is None:
            raise WalletError(
                f"the keystore file of profile {self.profile_id!r} needs a password",
                user_message="Enter the wallet password.",
            )
        return password
