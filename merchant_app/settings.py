"""A profile's settings: declared once, typed, with defaults and a schema version.

Settings live in ``settings.json`` in the profile folder (see
:mod:`merchant_app.profiles`). :func:`load_settings` and :func:`save_settings`
validate every field and raise :class:`ConfigError` naming the bad field, its
value and what to enter instead. Every default points at this computer
(127.0.0.1), so a new profile talks to no other host until the merchant
configures one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eth_utils import is_hex_address

from merchant_app.errors import ConfigError, InvalidSettingError
from merchant_app.services.anvil import DEFAULT_CHAIN_ID
from merchant_app.wallet import KeyStorage

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_CHAIN_RPC_URL = "http://127.0.0.1:8545"

# Profile names become folder names and keyring ids, so they are kept to a
# portable set of characters.
PROFILE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Settings:
    """The settings of one merchant profile.

    ``contract_address`` is empty while the merchant has not joined a
    consortium. ``kubo_api_url`` is None when the app starts its own local
    Kubo node. ``wallet_key_id`` names the profile's key in the OS keyring.
    It is random per profile, so a profile deleted and created again under
    the same name never reads the old key.
    """

    name: str
    wallet_key_id: str
    chain_rpc_url: str = DEFAULT_CHAIN_RPC_URL
    chain_id: int = DEFAULT_CHAIN_ID
    contract_address: str = ""
    kubo_api_url: str | None = None
    wallet_storage: KeyStorage = KeyStorage.KEYRING
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        validate_settings(self)

    @property
    def has_contract(self) -> bool:
        """Whether a consortium contract is configured."""
        return bool(self.contract_address)

    @property
    def starts_local_kubo(self) -> bool:
        """Whether the app runs its own Kubo node instead of a configured one."""
        return self.kubo_api_url is None

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """Return the settings as the JSON object ``settings.json`` holds."""
        document = dataclasses.asdict(self)
        document["wallet_storage"] = self.wallet_storage.value
        return document


def validate_settings(settings: Settings) -> None:
    """Check every field; raise ConfigError naming the first invalid one."""
    _check_type(settings, "name", str)
    if not PROFILE_NAME_PATTERN.fullmatch(settings.name):
        raise _invalid(
            settings,
            "name",
            "use 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    _check_type(settings, "wallet_key_id", str)
    if not settings.wallet_key_id:
        raise _invalid(settings, "wallet_key_id", "it must not be empty")
    _check_type(settings, "chain_rpc_url", str)
    _check_http_url(settings, "chain_rpc_url")
    _check_type(settings, "chain_id", int)
    if settings.chain_id < 1:
        raise _invalid(
            settings, "chain_id", "use a positive chain id (31337 for anvil)"
        )
    _check_type(settings, "contract_address", str)
    if settings.contract_address and not is_hex_address(settings.contract_address):
        raise _invalid(
            settings,
            "contract_address",
            "use 0x followed by 40 hexadecimal digits, or leave it empty",
        )
    if settings.kubo_api_url is not None:
        _check_type(settings, "kubo_api_url", str)
        _check_http_url(settings, "kubo_api_url")
    if not isinstance(settings.wallet_storage, KeyStorage):
        raise _invalid(
            settings,
            "wallet_storage",
            f"use one of {', '.join(kind.value for kind in KeyStorage)}",
        )
    _check_type(settings, "schema_version", int)


def settings_from_json(document: object, *, source: str) -> Settings:
    """Build settings from a parsed ``settings.json``; ``source`` names the file.

    Missing optional fields take their defaults. Unknown fields and a newer
    schema version are rejected, because this app would drop what they mean.
    """
    if not isinstance(document, dict):
        raise ConfigError(
            f"{source}: expected a JSON object, got {type(document).__name__}",
            user_message="The profile's settings file is damaged.",
        )
    version = document.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ConfigError(
            f"{source}: schema_version {version!r} is newer than this app's "
            f"{SCHEMA_VERSION}; update the app to open this profile",
            user_message="This profile was saved by a newer version of the app.",
        )
    known = {field.name for field in dataclasses.fields(Settings)}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown field {unknown[0]!r}; remove it or update the app",
            user_message=f"The settings file has an unknown field {unknown[0]}.",
        )
    for required in ("name", "wallet_key_id"):
        if required not in document:
            raise ConfigError(
                f"{source}: field {required!r} is missing",
                user_message=f"The settings file has no {required}.",
            )

    values = dict(document)
    values["schema_version"] = SCHEMA_VERSION
    storage = values.get("wallet_storage", KeyStorage.KEYRING.value)
    try:
        values["wallet_storage"] = KeyStorage(storage)
    except ValueError as exc:
        raise ConfigError(
            f"{source}: field 'wallet_storage' is invalid: {storage!r}; use one "
            f"of {', '.join(kind.value for kind in KeyStorage)}",
            user_message="The wallet storage in the settings file is invalid.",
        ) from exc
    try:
        return Settings(**values)
    except InvalidSettingError as exc:
        raise InvalidSettingError(
            f"{source}: {exc}", field=exc.field, user_message=exc.user_message
        ) from exc
    except TypeError as exc:
        raise ConfigError(
            f"{source}: {exc}", user_message="The profile's settings file is damaged."
        ) from exc


def load_settings(path: Path) -> Settings:
    """Read and validate a ``settings.json`` file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"settings file not found: {path}",
            user_message="This profile has no settings file.",
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read settings file {path}: {exc.strerror}",
            user_message="The profile's settings file cannot be read.",
        ) from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            user_message="The profile's settings file is damaged.",
        ) from exc
    return settings_from_json(document, source=str(path))


def save_settings(path: Path, settings: Settings) -> None:
    """Validate and write ``settings`` to ``path``, replacing it atomically."""
    validate_settings(settings)
    text = json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".settings-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write settings file {path}: {exc.strerror}",
            user_message="The settings cannot be saved.",
        ) from exc
    logger.info("settings saved: profile %s", settings.name)


def _check_type(settings: Settings, field: str, expected: type) -> None:
    value = getattr(settings, field)
    # bool is an int subclass, and `"chain_id": true` is a mistake, not 1.
    if not isinstance(value, expected) or isinstance(value, bool):
        raise _invalid(settings, field, f"expected {expected.__name__}")


def _check_http_url(settings: Settings, field: str) -> None:
    value = getattr(settings, field)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(settings, field, "use an http:// or https:// URL with a host")
    try:
        # urlsplit checks the port only when it is read.
        _ = parts.port
    except ValueError as exc:
        raise _invalid(settings, field, f"the port is invalid ({exc})") from exc


_FIELD_LABELS = {
    "name": "profile name",
    "wallet_key_id": "wallet key id",
    "chain_rpc_url": "chain RPC URL",
    "chain_id": "chain id",
    "contract_address": "contract address",
    "kubo_api_url": "Kubo API URL",
    "wallet_storage": "wallet storage",
    "schema_version": "schema version",
}


def _invalid(settings: Settings, field: str, advice: str) -> InvalidSettingError:
    value = getattr(settings, field)
    return InvalidSettingError(
        f"field {field!r} is invalid: {value!r}; {advice}",
        field=field,
        user_message=f"The {_FIELD_LABELS[field]} {value!r} is invalid: {advice}.",
    )
