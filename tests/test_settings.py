"""Tests of profile settings and profile folders (no Qt, no keyring)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from merchant_app.errors import ConfigError, InvalidSettingError
from merchant_app.profiles import (
    DATA_DIR_ENV,
    default_data_root,
    list_profiles,
    new_settings,
    profile_paths,
)
from merchant_app.settings import (
    SCHEMA_VERSION,
    Settings,
    load_settings,
    save_settings,
)
from merchant_app.wallet import KeyStorage


def write_json(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_settings_round_trip(tmp_path: Path) -> None:
    settings = new_settings(
        "shop-1",
        chain_rpc_url="http://127.0.0.1:8546",
        chain_id=11155111,
        contract_address="0x" + "ab" * 20,
        kubo_api_url="http://127.0.0.1:5001",
        wallet_storage=KeyStorage.KEYSTORE_FILE,
    )
    path = tmp_path / "settings.json"

    save_settings(path, settings)

    assert load_settings(path) == settings
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_settings_defaults_point_at_loopback() -> None:
    settings = new_settings("shop")

    assert settings.chain_rpc_url == "http://127.0.0.1:8545"
    assert settings.chain_id == 31337
    assert settings.starts_local_kubo
    assert not settings.has_contract
    assert settings.wallet_storage is KeyStorage.KEYRING


def test_settings_new_profiles_get_distinct_key_ids() -> None:
    assert new_settings("shop").wallet_key_id != new_settings("shop").wallet_key_id


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "bad/name", "profile name"),
        ("chain_rpc_url", "ftp://127.0.0.1", "chain RPC URL"),
        ("chain_rpc_url", "http://127.0.0.1:99999", "chain RPC URL"),
        ("chain_id", 0, "chain id"),
        ("chain_id", True, "chain id"),
        ("contract_address", "0x1234", "contract address"),
        ("kubo_api_url", "127.0.0.1:5001", "Kubo API URL"),
    ],
)
def test_settings_invalid_field_named(field: str, value: object, message: str) -> None:
    settings = new_settings("shop")

    with pytest.raises(InvalidSettingError) as caught:
        settings.replace(**{field: value})

    assert caught.value.field == field
    assert message in caught.value.user_message
    assert repr(value) in str(caught.value)


def test_settings_file_bad_value_names_file_and_field(tmp_path: Path) -> None:
    document = new_settings("shop").to_json() | {"chain_id": "31337"}
    path = write_json(tmp_path / "settings.json", document)

    with pytest.raises(InvalidSettingError) as caught:
        load_settings(path)

    assert caught.value.field == "chain_id"
    assert str(path) in str(caught.value)


def test_settings_newer_schema_rejected(tmp_path: Path) -> None:
    document = new_settings("shop").to_json() | {"schema_version": SCHEMA_VERSION + 1}
    path = write_json(tmp_path / "settings.json", document)

    with pytest.raises(ConfigError, match="newer than this app"):
        load_settings(path)


def test_settings_unknown_field_rejected(tmp_path: Path) -> None:
    document = new_settings("shop").to_json() | {"colour": "green"}
    path = write_json(tmp_path / "settings.json", document)

    with pytest.raises(ConfigError, match="unknown field 'colour'"):
        load_settings(path)


def test_settings_missing_optional_fields_take_defaults(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "settings.json", {"name": "shop", "wallet_key_id": "shop-1"}
    )

    settings = load_settings(path)

    assert settings == Settings(name="shop", wallet_key_id="shop-1")


def test_settings_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"name": "shop",\n', encoding="utf-8")

    with pytest.raises(ConfigError, match="invalid JSON at line"):
        load_settings(path)


def test_settings_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="settings file not found"):
        load_settings(tmp_path / "settings.json")


def test_data_root_env_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "root"))

    assert default_data_root() == tmp_path / "root"


def test_data_root_default_under_xdg_data_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))

    assert default_data_root() == tmp_path / "xdg" / "merchant-app" / "profiles"


def test_list_profiles_reports_unreadable_ones(tmp_path: Path) -> None:
    good = new_settings("good")
    save_settings(profile_paths(tmp_path, "good").settings, good)
    write_json(tmp_path / "broken" / "settings.json", {"name": "broken"})
    (tmp_path / "not a profile").mkdir()

    entries = list_profiles(tmp_path)

    assert [entry.name for entry in entries] == ["broken", "good"]
    assert entries[0].settings is None
    assert entries[0].problem is not None
    assert "wallet_key_id" in entries[0].problem
    assert entries[1].settings == good
    assert entries[1].problem is None


def test_list_profiles_missing_root(tmp_path: Path) -> None:
    assert list_profiles(tmp_path / "absent") == []
