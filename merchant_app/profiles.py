"""Merchant profiles: one folder each under a data root.

A profile folder contains ``settings.json``, the event store
``events.sqlite3``, the model files under ``model/`` and the log ``app.log``.
The data root is ``~/.local/share/merchant-app/profiles`` unless the
``MERCHANT_APP_DATA_DIR`` environment variable or a caller's parameter names
another folder; tests always pass a temporary one.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from keyring.backend import KeyringBackend

from merchant_app.errors import AppError, ConfigError
from merchant_app.profile_node import LocalNodeStatus
from merchant_app.settings import (
    PROFILE_NAME_PATTERN,
    Settings,
    load_settings,
    save_settings,
)
from merchant_app.store import EventStore
from merchant_app.wallet import KeyStorage, ProfileWallet, Wallet

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "MERCHANT_APP_DATA_DIR"
SETTINGS_FILE = "settings.json"
STORE_FILE = "events.sqlite3"
MODEL_FOLDER = "model"
LOG_FILE = "app.log"


def default_data_root() -> Path:
    """Return the folder that contains the profile folders.

    ``MERCHANT_APP_DATA_DIR`` wins over ``$XDG_DATA_HOME/merchant-app/profiles``
    (``~/.local/share`` when XDG_DATA_HOME is unset).
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "merchant-app" / "profiles"


@dataclass(frozen=True)
class ProfilePaths:
    """The files of one profile folder."""

    folder: Path

    @property
    def settings(self) -> Path:
        return self.folder / SETTINGS_FILE

    @property
    def store(self) -> Path:
        return self.folder / STORE_FILE

    @property
    def model_folder(self) -> Path:
        return self.folder / MODEL_FOLDER

    @property
    def log(self) -> Path:
        return self.folder / LOG_FILE


@dataclass(frozen=True)
class ProfileEntry:
    """A profile folder as the sign-in list shows it.

    When the folder's settings cannot be read, ``settings`` is None and
    ``problem`` is the reason.
    """

    name: str
    paths: ProfilePaths
    settings: Settings | None
    problem: str | None = None


@dataclass(frozen=True)
class WalletSetup:
    """The source of a new profile's key.

    ``kind`` is ``"create"`` (a new random key), ``"import_key"`` (hex text in
    ``private_key``) or ``"import_keystore"`` (``keystore_json`` decrypted with
    ``keystore_password``). ``password`` encrypts the profile's own keystore
    file when the storage is ``KeyStorage.KEYSTORE_FILE``; the keyring needs
    none.
    """

    kind: str = "create"
    private_key: str = field(default="", repr=False)
    keystore_json: str = field(default="", repr=False)
    keystore_password: str = field(default="", repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass
class OpenProfile:
    """An opened profile: its settings, event store and wallet.

    ``local_node`` is the running local Kubo node, set by the window that
    started it while the settings name no Kubo API URL.
    """

    settings: Settings
    paths: ProfilePaths
    store: EventStore
    wallet: Wallet
    data_root: Path
    is_closed: bool = False
    local_node: LocalNodeStatus | None = None

    def connection_settings(self, settings: Settings | None = None) -> Settings:
        """Return ``settings`` (default: the profile's) with the Kubo URL to use.

        A profile that starts a local node gets that node's API URL while it
        runs. Otherwise ``kubo_api_url`` stays None, which the readers of
        IPFS report as "local node not running".
        """
        settings = settings or self.settings
        if settings.starts_local_kubo and self.local_node is not None:
            return settings.replace(kubo_api_url=self.local_node.api_url)
        return settings

    def local_peer_address(self) -> str | None:
        """Return the peer address of the running local node, if one is used."""
        if self.settings.starts_local_kubo and self.local_node is not None:
            return self.local_node.peer_address
        return None

    def close(self) -> None:
        """Close the event store; closing again does nothing."""
        if self.is_closed:
            return
        self.is_closed = True
        self.store.close()
        logger.info("profile closed: %s", self.settings.name)


def profile_paths(data_root: Path, name: str) -> ProfilePaths:
    """Return the paths of profile ``name`` under ``data_root``."""
    check_profile_name(name)
    return ProfilePaths(data_root / name)


def check_profile_name(name: str) -> None:
    """Raise ConfigError when ``name`` cannot be a profile folder name."""
    if not PROFILE_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"invalid profile name {name!r}: use 1 to 64 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit",
            user_message=(
                f"The profile name {name!r} is invalid. Use letters, digits, "
                "'.', '_' or '-'."
            ),
        )


def list_profiles(data_root: Path) -> list[ProfileEntry]:
    """Return the profiles under ``data_root`` by name, readable or not."""
    if not data_root.is_dir():
        return []
    entries = []
    for folder in sorted(data_root.iterdir(), key=lambda path: path.name):
        if not folder.is_dir() or not PROFILE_NAME_PATTERN.fullmatch(folder.name):
            continue
        paths = ProfilePaths(folder)
        try:
            settings = load_settings(paths.settings)
        except ConfigError as exc:
            logger.warning("profile %s cannot be read: %s", folder.name, exc)
            entries.append(ProfileEntry(folder.name, paths, None, exc.user_message))
            continue
        entries.append(ProfileEntry(folder.name, paths, settings))
    return entries


def new_settings(
    name: str,
    *,
    chain_rpc_url: str | None = None,
    chain_id: int | None = None,
    contract_address: str = "",
    kubo_api_url: str | None = None,
    wallet_storage: KeyStorage = KeyStorage.KEYRING,
) -> Settings:
    """Return validated settings for a new profile with a fresh wallet key id."""
    check_profile_name(name)
    settings = Settings(
        name=name,
        wallet_key_id=f"{name}-{uuid.uuid4().hex[:12]}",
        contract_address=contract_address,
        kubo_api_url=kubo_api_url,
        wallet_storage=wallet_storage,
    )
    if chain_rpc_url is not None:
        settings = settings.replace(chain_rpc_url=chain_rpc_url)
    if chain_id is not None:
        settings = settings.replace(chain_id=chain_id)
    return settings


def create_profile(
    data_root: Path,
    settings: Settings,
    wallet_setup: WalletSetup,
    *,
    keyring_backend: KeyringBackend | None = None,
) -> Wallet:
    """Create the profile folder, its wallet key and its settings file.

    When a step fails, the folder is removed and a key already written to the
    keyring is deleted again (a failed delete is logged, not raised).
    """
    paths = profile_paths(data_root, settings.name)
    if paths.folder.exists():
        raise ConfigError(
            f"profile folder {paths.folder} exists; choose another name",
            user_message=f"A profile named {settings.name} exists already.",
        )
    paths.folder.mkdir(parents=True)
    wallet = _profile_wallet(settings, paths, keyring_backend)
    key_written = False
    try:
        account = _store_key(wallet, wallet_setup)
        key_written = True
        save_settings(paths.settings, settings)
        EventStore.open(paths.store).close()
    except BaseException:
        if key_written:
            _delete_key_quietly(wallet)
        shutil.rmtree(paths.folder, ignore_errors=True)
        raise
    logger.info("profile created: %s (%s)", settings.name, account.address)
    return account


def open_profile(
    data_root: Path,
    name: str,
    *,
    password: str | None = None,
    keyring_backend: KeyringBackend | None = None,
) -> OpenProfile:
    """Load the settings, open the event store and the wallet of a profile."""
    paths = profile_paths(data_root, name)
    if not paths.folder.is_dir():
        raise ConfigError(
            f"profile folder not found: {paths.folder}",
            user_message=f"The profile {name} does not exist.",
        )
    settings = load_settings(paths.settings)
    wallet = _profile_wallet(settings, paths, keyring_backend).open(password=password)
    store = EventStore.open(paths.store)
    paths.model_folder.mkdir(exist_ok=True)
    logger.info("profile opened: %s (%s)", name, wallet.address)
    return OpenProfile(
        settings=settings,
        paths=paths,
        store=store,
        wallet=wallet,
        data_root=data_root,
    )


def profile_wallet(
    profile: OpenProfile, *, keyring_backend: KeyringBackend | None = None
) -> ProfileWallet:
    """Return the key operations (export, backend info) of an opened profile."""
    return _profile_wallet(profile.settings, profile.paths, keyring_backend)


def _profile_wallet(
    settings: Settings, paths: ProfilePaths, keyring_backend: KeyringBackend | None
) -> ProfileWallet:
    return ProfileWallet(
        settings.wallet_key_id,
        paths.folder,
        storage=settings.wallet_storage,
        keyring_backend=keyring_backend,
        # A GUI cannot answer a terminal prompt; a locked keyring is reported.
        allow_unlock_prompt=False,
    )


def _store_key(wallet: ProfileWallet, setup: WalletSetup) -> Wallet:
    if setup.kind == "create":
        return wallet.create(password=setup.password)
    if setup.kind == "import_key":
        return wallet.import_private_key(setup.private_key, password=setup.password)
    if setup.kind == "import_keystore":
        return wallet.import_keystore(
            setup.keystore_json, setup.keystore_password, password=setup.password
        )
    raise ValueError(
        f"unknown wallet setup {setup.kind!r}; expected create, import_key or "
        "import_keystore"
    )


def _delete_key_quietly(wallet: ProfileWallet) -> None:
    try:
        wallet.delete()
    except AppError as exc:
        logger.warning("key of a failed profile creation not deleted: %s", exc)
