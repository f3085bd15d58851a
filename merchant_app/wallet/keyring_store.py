"""The profile's private key in the OS keyring, through the ``keyring`` library.

One keyring entry contains one profile's key. Its service is
``merchant-app``, its username the profile id, and its secret the key as
``0x`` and 64 hex digits. The address is derived from the key when it is
loaded. Because the username is the profile id alone, a profile finds its
key without knowing its address, and a second key for the same profile
cannot be stored by accident.

Only the OS keyrings that the ``keyring`` package ships are used: Secret
Service (GNOME Keyring, KWallet 5.97+, KeePassXC), KWallet through D-Bus, the
macOS Keychain and the Windows Credential Locker. The ``fail`` and ``null``
backends, an empty chainer, and third-party backends such as ``keyrings.alt``
(plain-text files, or files encrypted with a password typed on the terminal)
count as "no keyring": the caller then offers a password-encrypted keystore
file instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends.chainer import ChainerBackend

from merchant_app.errors import (
    KeyExistsError,
    KeyNotFoundError,
    KeyringLockedError,
    KeyringUnavailableError,
    WalletError,
)

try:
    import secretstorage
    import secretstorage.exceptions as secretstorage_errors
    from jeepney.wrappers import DBusErrorResponse
except ImportError:  # SecretStorage and jeepney are installed on Linux only.
    HAS_SECRETSTORAGE = False
else:
    HAS_SECRETSTORAGE = True

logger = logging.getLogger(__name__)

SERVICE_NAME = "merchant-app"
MAX_PROFILE_ID_LENGTH = 255

_SECRET_SERVICE_CLASS = "keyring.backends.SecretService.Keyring"
# Readable names of the OS keyrings the app stores keys in, by backend class.
SYSTEM_BACKEND_NAMES: dict[str, str] = {
    _SECRET_SERVICE_CLASS: "Secret Service (GNOME Keyring, KWallet or KeePassXC)",
    "keyring.backends.libsecret.Keyring": "Secret Service through libsecret",
    "keyring.backends.kwallet.DBusKeyring": "KDE Wallet",
    "keyring.backends.kwallet.DBusKeyringKWallet4": "KDE Wallet 4",
    "keyring.backends.macOS.Keyring": "macOS Keychain",
    "keyring.backends.Windows.WinVaultKeyring": "Windows Credential Locker",
}

_UNAVAILABLE_ADVICE = (
    "No system keyring exists on this computer. Store the key in a "
    "password-encrypted keystore file in the profile folder instead."
)

if HAS_SECRETSTORAGE:
    _SECRET_STORAGE_LOCKED: tuple[type[Exception], ...] = (
        secretstorage_errors.LockedException,
        secretstorage_errors.PromptDismissedException,
    )
    _SECRET_STORAGE_UNAVAILABLE: tuple[type[Exception], ...] = (
        secretstorage_errors.SecretServiceNotAvailableException,
    )
    _SECRET_STORAGE_OTHER: tuple[type[Exception], ...] = (
        secretstorage_errors.SecretStorageException,
        DBusErrorResponse,
    )
else:
    _SECRET_STORAGE_LOCKED = _SECRET_STORAGE_UNAVAILABLE = _SECRET_STORAGE_OTHER = ()

_OTHER_KEYRING_ERRORS: tuple[type[Exception], ...] = (
    keyring.errors.KeyringError,
    *_SECRET_STORAGE_OTHER,
)


@dataclass(frozen=True)
class BackendInfo:
    """The keyring backend in use, as the settings screen shows it."""

    name: str
    usable: bool
    # The reason the backend cannot store keys, or "" when it is usable.
    reason: str
    backend_class: str


def backend_class_name(backend: KeyringBackend) -> str:
    """Return the dotted class name of a keyring backend."""
    backend_type = type(backend)
    return f"{backend_type.__module__}.{backend_type.__qualname__}"


def describe_backend(backend: KeyringBackend | None = None) -> BackendInfo:
    """Describe ``backend``, or the one ``keyring`` selected when it is None.

    A chainer is described by the first system keyring it chains, because
    that is the one :func:`resolve_backend` uses.
    """
    backend = backend if backend is not None else keyring.get_keyring()
    class_name = backend_class_name(backend)
    try:
        chosen = resolve_backend(backend)
    except KeyringUnavailableError as exc:
        return BackendInfo(
            name=_unusable_backend_name(backend),
            usable=False,
            reason=str(exc),
            backend_class=class_name,
        )
    return BackendInfo(
        name=SYSTEM_BACKEND_NAMES[backend_class_name(chosen)],
        usable=True,
        reason="",
        backend_class=class_name,
    )


def resolve_backend(backend: KeyringBackend | None = None) -> KeyringBackend:
    """Return the OS keyring backend to store keys in.

    ``backend`` defaults to the one ``keyring`` selected. From a chainer, the
    first chained system keyring is used directly, so a read or write never
    falls through to a plain-text backend chained after it.

    Raises:
        KeyringUnavailableError: when no OS keyring backend is available.
    """
    backend = backend if backend is not None else keyring.get_keyring()
    class_name = backend_class_name(backend)
    if class_name in SYSTEM_BACKEND_NAMES:
        return backend

    if isinstance(backend, ChainerBackend):
        chained = list(backend.backends)
        for candidate in chained:
            if backend_class_name(candidate) in SYSTEM_BACKEND_NAMES:
                return candidate
        names = ", ".join(backend_class_name(item) for item in chained)
        reason = (
            "the keyring chainer has no backends"
            if not chained
            else f"the keyring chainer has no system keyring among {names}"
        )
    elif class_name == "keyring.backends.fail.Keyring":
        reason = "keyring found no backend (keyring.backends.fail.Keyring)"
    elif class_name == "keyring.backends.null.Keyring":
        reason = "keyring is disabled (keyring.backends.null.Keyring)"
    elif class_name.startswith("keyrings.alt."):
        reason = (
            f"{class_name} from keyrings.alt stores secrets in a file, not in a "
            "system keyring"
        )
    else:
        reason = f"{class_name} is not a system keyring backend"
    raise KeyringUnavailableError(
        f"no system keyring: {reason}. Use a password-encrypted keystore file "
        "in the profile folder instead",
        user_message=_UNAVAILABLE_ADVICE,
    )


class KeyringStore:
    """Read, write and delete one profile's private key in the OS keyring.

    With ``allow_unlock_prompt`` false, a locked Secret Service collection
    raises :class:`KeyringLockedError` at once instead of showing the
    desktop's unlock dialog. Tests and headless runs need this, because with
    no prompter the unlock call would fail or wait.
    """

    def __init__(
        self,
        profile_id: str,
        *,
        backend: KeyringBackend | None = None,
        service: str = SERVICE_NAME,
        allow_unlock_prompt: bool = True,
    ) -> None:
        check_profile_id(profile_id)
        self.profile_id = profile_id
        self.service = service
        self.allow_unlock_prompt = allow_unlock_prompt
        self._backend = backend

    def __repr__(self) -> str:
        return f"KeyringStore(profile_id={self.profile_id!r}, service={self.service!r})"

    def backend_info(self) -> BackendInfo:
        """Describe the keyring backend this store uses."""
        return describe_backend(self._backend)

    def has_key(self) -> bool:
        """Return whether the keyring contains a key for this profile.

        Raises:
            KeyringLockedError: when the keyring is locked. A locked keyring
                is never reported as having no key.
            KeyringUnavailableError: when there is no OS keyring.
        """
        return self._read_secret("check for key") is not None

    def read_key(self) -> str:
        """Return the stored key as hex text.

        Raises:
            KeyNotFoundError: when the keyring has no key for this profile.
            KeyringLockedError: when the keyring is locked.
            KeyringUnavailableError: when there is no OS keyring.
        """
        secret = self._read_secret("read key")
        if secret is None:
            raise KeyNotFoundError(
                f"no key for profile {self.profile_id!r} in the keyring "
                f"(service {self.service!r})"
            )
        return secret

    def write_key(self, key_hex: str, *, replace: bool = False) -> None:
        """Store ``key_hex`` for this profile.

        Raises:
            KeyExistsError: when a key is stored and ``replace`` is false.
                Callers export the old key before they pass ``replace=True``.
            KeyringLockedError: when the keyring is locked.
            KeyringUnavailableError: when there is no OS keyring.
        """
        # NOTE: another process could store a key between this check and the
        # write, because the keyring API has no create-only call.
        if not replace and self._read_secret("check for key") is not None:
            raise KeyExistsError(
                f"profile {self.profile_id!r} already has a key in the keyring; "
                "export it and pass replace=True to replace it"
            )

        backend = self._usable_backend("write key")
        with self._converted_errors("write key"):
            backend.set_password(self.service, self.profile_id, key_hex)

        # Read the entry back, because a backend that drops writes would
        # otherwise leave the profile without its key.
        if self._read_secret("verify written key") != key_hex:
            raise WalletError(
                f"the keyring did not keep the key of profile {self.profile_id!r}: "
                "reading it back returned a different value"
            )
        logger.info("stored key for profile %s in the keyring", self.profile_id)

    def delete_key(self) -> None:
        """Delete this profile's key from the keyring.

        Raises:
            KeyNotFoundError: when no key is stored.
            KeyringLockedError: when the keyring is locked.
            KeyringUnavailableError: when there is no OS keyring.
        """
        if self._read_secret("check for key") is None:
            raise KeyNotFoundError(
                f"no key for profile {self.profile_id!r} in the keyring to delete"
            )
        backend = self._usable_backend("delete key")
        with self._converted_errors("delete key"):
            backend.delete_password(self.service, self.profile_id)
        logger.info("deleted key for profile %s from the keyring", self.profile_id)

    def _read_secret(self, operation: str) -> str | None:
        backend = self._usable_backend(operation)
        with self._converted_errors(operation):
            secret: str | None = backend.get_password(self.service, self.profile_id)
        return secret

    def _usable_backend(self, operation: str) -> KeyringBackend:
        backend = resolve_backend(self._backend)
        if not self.allow_unlock_prompt and _is_secret_service(backend):
            with self._converted_errors(operation):
                self._check_collection_unlocked(backend)
        return backend

    def _check_collection_unlocked(self, backend: KeyringBackend) -> None:
        """Raise :class:`KeyringLockedError` if the Secret Service collection is locked.

        Reading the collection's ``Locked`` property never shows a prompt.
        """
        if not HAS_SECRETSTORAGE:
            raise KeyringUnavailableError(
                "the Secret Service backend needs the SecretStorage package",
                user_message=_UNAVAILABLE_ADVICE,
            )
        path = getattr(backend, "preferred_collection", None)
        with closing(secretstorage.dbus_init()) as connection:
            try:
                if path:
                    collection = secretstorage.Collection(connection, path)
                else:
                    collection = secretstorage.get_collection_by_alias(
                        connection, "default"
                    )
            except secretstorage_errors.ItemNotFoundException as exc:
                raise KeyringUnavailableError(
                    f"the Secret Service has no collection {path or 'default'!r}",
                    user_message=(
                        "The system keyring has no default keyring. Create one in "
                        "your keyring manager, or use a keystore file."
                    ),
                ) from exc
            locked = collection.is_locked()
        if locked:
            raise KeyringLockedError(
                f"{_describe_collection(path)} is locked; unlock it in the "
                f"keyring manager to use the key of profile {self.profile_id!r}"
            )

    @contextmanager
    def _converted_errors(self, operation: str) -> Iterator[None]:
        """Convert keyring and SecretStorage exceptions to wallet errors."""
        context = f"{operation} for profile {self.profile_id!r}"
        try:
            yield
        except keyring.errors.KeyringLocked as exc:
            raise KeyringLockedError(
                f"{context} failed: the keyring is locked and was not unlocked ({exc})"
            ) from exc
        except _SECRET_STORAGE_LOCKED as exc:
            raise KeyringLockedError(
                f"{context} failed: the keyring is locked ({exc})"
            ) from exc
        except (keyring.errors.NoKeyringError, keyring.errors.InitError) as exc:
            raise KeyringUnavailableError(
                f"{context} failed: the keyring cannot be opened ({exc})",
                user_message=_UNAVAILABLE_ADVICE,
            ) from exc
        except _SECRET_STORAGE_UNAVAILABLE as exc:
            raise KeyringUnavailableError(
                f"{context} failed: the Secret Service is not available ({exc})",
                user_message=_UNAVAILABLE_ADVICE,
            ) from exc
        except _OTHER_KEYRING_ERRORS as exc:
            raise WalletError(
                f"{context} failed: {type(exc).__name__}: {exc}",
                user_message="The system keyring reported an error. See the log.",
            ) from exc


def check_profile_id(profile_id: str) -> None:
    """Raise :class:`WalletError` unless ``profile_id`` can be a keyring username."""
    if not profile_id or len(profile_id) > MAX_PROFILE_ID_LENGTH:
        raise WalletError(
            f"invalid profile id {profile_id!r}: expected 1 to "
            f"{MAX_PROFILE_ID_LENGTH} characters"
        )
    if not profile_id.isprintable():
        raise WalletError(
            f"invalid profile id {profile_id!r}: it contains control characters"
        )


def _is_secret_service(backend: KeyringBackend) -> bool:
    return backend_class_name(backend) == _SECRET_SERVICE_CLASS


def _describe_collection(path: str | None) -> str:
    if path:
        return f"the Secret Service collection {path}"
    return "the default Secret Service collection"


def _unusable_backend_name(backend: KeyringBackend) -> str:
    class_name = backend_class_name(backend)
    if class_name.startswith("keyrings.alt."):
        return f"None (plain-file backend {class_name} is not used)"
    return "None"
