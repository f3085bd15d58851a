"""``merchant-app deploy``: deploy the consortium contract from the command line."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from merchant_app.chain.artifact import load_artifact
from merchant_app.chain.client import ChainClient
from merchant_app.chain.consortium import ConsortiumContract
from merchant_app.errors import ConfigError
from merchant_app.services.anvil import DEFAULT_CHAIN_ID

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    """Add the ``deploy`` sub-command to the ``merchant-app`` parser."""
    parser = subparsers.add_parser(
        "deploy",
        help="deploy a new consortium contract owned by the given key",
        description=(
            "Deploy the Consortium contract. The deploying key becomes the "
            "owner, who adds members and opens round 1."
        ),
    )
    parser.add_argument(
        "--rpc-url", required=True, help="JSON-RPC URL of the Ethereum node"
    )
    parser.add_argument(
        "--chain-id",
        type=int,
        default=DEFAULT_CHAIN_ID,
        help=f"chain id the node must serve (default {DEFAULT_CHAIN_ID}, anvil)",
    )
    parser.add_argument(
        "--key-env",
        required=True,
        metavar="VAR",
        help="name of the environment variable that contains the owner's "
        "private key as hex",
    )
    parser.add_argument(
        "--min-updates",
        type=int,
        required=True,
        help="updates a round needs before it can close after its deadline",
    )
    parser.add_argument(
        "--threshold",
        type=int,
        required=True,
        help="approvals of one aggregate CID that finalise a round",
    )
    parser.add_argument(
        "--round-seconds",
        type=int,
        required=True,
        help="round duration in seconds, from its opening to its deadline",
    )
    parser.add_argument(
        "--artifact-dir",
        type=Path,
        default=None,
        help="folder that contains Consortium.json (default contracts/build)",
    )
    parser.set_defaults(handler=run_deploy)


def run_deploy(args: argparse.Namespace) -> int:
    """Deploy the contract and print its address, transaction and gas used."""
    account = _account_from_env(args.key_env)
    for name in ("min_updates", "threshold", "round_seconds"):
        value = getattr(args, name)
        if value < 1:
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} must be at least 1, got {value}")

    artifact = load_artifact("Consortium", directory=args.artifact_dir)
    client = ChainClient(
        args.rpc_url,
        expected_chain_id=args.chain_id,
        account=account,
        abi=artifact.abi,
    )
    contract, result = ConsortiumContract.deploy(
        client,
        min_updates=args.min_updates,
        approval_threshold=args.threshold,
        round_seconds=args.round_seconds,
        artifact=artifact,
    )
    print(f"contract: {contract.address}")
    print(f"owner: {account.address}")
    print(f"transaction: {result.tx_hash}")
    print(f"block: {result.block_number}")
    print(f"gas used: {result.gas_used}")
    return 0


def _account_from_env(variable: str) -> LocalAccount:
    key = os.environ.get(variable)
    if not key:
        raise ConfigError(
            f"environment variable {variable} is not set or empty; set it to the "
            f"owner's private key as hex",
            user_message=f"Set {variable} to the owner's private key.",
        )
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError):
        # "from None" keeps the parser's error, which may quote the value, out
        # of logs and tracebacks.
        raise ConfigError(
            f"environment variable {variable} does not contain a valid private "
            f"key (expected 32 bytes as hex)"
        ) from None
    return account
