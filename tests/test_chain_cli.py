"""Tests of the ``merchant-app deploy`` command against a real anvil."""

from __future__ import annotations

import argparse

import pytest
from eth_account.signers.local import LocalAccount

from merchant_app.chain.client import ChainClient
from merchant_app.chain.consortium import ConsortiumContract
from merchant_app.commands import chain as chain_command
from merchant_app.errors import ConfigError
from merchant_app.services.anvil import DEFAULT_CHAIN_ID, AnvilChain


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="merchant-app")
    chain_command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def deploy_argv(rpc_url: str, *extra: str) -> list[str]:
    return [
        "deploy",
        "--rpc-url",
        rpc_url,
        "--key-env",
        "TEST_OWNER_KEY",
        "--min-updates",
        "2",
        "--threshold",
        "2",
        "--round-seconds",
        "600",
        *extra,
    ]


def test_deploy_command_deploys_contract(
    anvil_chain: AnvilChain,
    dev_accounts: list[LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    owner = dev_accounts[0]
    monkeypatch.setenv("TEST_OWNER_KEY", owner.key.hex())
    args = parse(deploy_argv(anvil_chain.rpc_url))

    exit_code = args.handler(args)

    assert exit_code == 0
    output = dict(
        line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines()
    )
    assert output["owner"] == owner.address
    client = ChainClient(anvil_chain.rpc_url, expected_chain_id=DEFAULT_CHAIN_ID)
    contract = ConsortiumContract(client, output["contract"])
    assert contract.owner() == owner.address
    parameters = contract.parameters()
    assert parameters.min_updates == 2
    assert parameters.approval_threshold == 2
    assert parameters.round_duration == 600
    assert owner.key.hex() not in capsys.readouterr().out


def test_deploy_command_missing_key_rejected(
    anvil_chain: AnvilChain, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("TEST_OWNER_KEY", raising=False)
    args = parse(deploy_argv(anvil_chain.rpc_url))

    with pytest.raises(ConfigError, match="TEST_OWNER_KEY is not set"):
        args.handler(args)


def test_deploy_command_invalid_key_rejected(
    anvil_chain: AnvilChain, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TEST_OWNER_KEY", "0x1234")
    args = parse(deploy_argv(anvil_chain.rpc_url))

    with pytest.raises(ConfigError, match="valid private key") as info:
        args.handler(args)

    assert "1234" not in str(info.value)
    assert info.value.__cause__ is None


def test_deploy_command_zero_threshold_rejected(
    anvil_chain: AnvilChain,
    dev_accounts: list[LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("TEST_OWNER_KEY", dev_accounts[0].key.hex())
    argv = deploy_argv(anvil_chain.rpc_url)
    argv[argv.index("--threshold") + 1] = "0"
    args = parse(argv)

    with pytest.raises(ConfigError, match="--threshold must be at least 1"):
        args.handler(args)
