"""Reads of the chain and the Kubo node that the window's screens show.

Each function is blocking and opens its own short-lived client, so the GUI
calls it from its worker pool. Errors come out as the chain and IPFS
families of :mod:`merchant_app.errors`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests
from web3 import Web3
from web3.exceptions import Web3Exception

from merchant_app.chain.artifact import load_artifact
from merchant_app.chain.client import ChainClient
from merchant_app.chain.consortium import ConsortiumContract, Phase
from merchant_app.errors import AppError, ChainError, ChainUnreachableError
from merchant_app.ipfs.client import KuboClient
from merchant_app.settings import Settings

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ServiceCheck:
    """The result of testing one service: ``ok`` is None when it was skipped."""

    service: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class RoundSummary:
    """The consortium's running round and the model it started from."""

    round_id: int
    phase: str
    submitted_updates: int
    expected_updates: int
    base_cid: str | None


def chain_client(settings: Settings) -> ChainClient:
    """Return a read-only client of the configured chain."""
    abi = load_artifact("Consortium").abi
    return ChainClient(
        settings.chain_rpc_url,
        expected_chain_id=settings.chain_id,
        abi=abi,
        request_timeout=CHECK_TIMEOUT_SECONDS,
    )


def check_chain(settings: Settings) -> ServiceCheck:
    """Test the RPC endpoint, its chain id and, if configured, the contract."""
    try:
        client = chain_client(settings)
        chain_id = client.check_chain()
        block = client.block_number()
        detail = f"chain id {chain_id}, block {block}"
        if settings.has_contract:
            round_state = ConsortiumContract(
                client, settings.contract_address
            ).current_round()
            detail += f"; contract round {round_state.round_id}"
    except AppError as exc:
        logger.info("chain check failed for %s: %s", settings.chain_rpc_url, exc)
        return ServiceCheck("Chain", False, exc.user_message)
    return ServiceCheck("Chain", True, detail)


def check_kubo(settings: Settings) -> ServiceCheck:
    """Test the Kubo RPC API at ``settings.kubo_api_url``.

    None there means a local node that is not running: callers pass
    :meth:`OpenProfile.connection_settings`, which fills in the URL of the
    running local node.
    """
    if settings.kubo_api_url is None:
        return ServiceCheck(
            "IPFS",
            False,
            "The local IPFS node is not running; its status is shown above.",
        )
    try:
        with KuboClient(settings.kubo_api_url, timeout=CHECK_TIMEOUT_SECONDS) as ipfs:
            version = ipfs.version()
            identity = ipfs.id()
    except AppError as exc:
        logger.info("Kubo check failed for %s: %s", settings.kubo_api_url, exc)
        return ServiceCheck("IPFS", False, exc.user_message)
    return ServiceCheck("IPFS", True, f"Kubo {version}, peer {identity.peer_id}")


def read_round(settings: Settings) -> RoundSummary | None:
    """Return the running round, or None when no contract is configured."""
    if not settings.has_contract:
        return None
    contract = ConsortiumContract(chain_client(settings), settings.contract_address)
    state = contract.current_round()
    base_cid = None
    if state.phase is not Phase.NOT_STARTED:
        opened = contract.rounds_opened(state.round_id)
        base_cid = str(opened[-1].base_cid) if opened else None
    return RoundSummary(
        round_id=state.round_id,
        phase=state.phase.name.replace("_", " ").lower(),
        submitted_updates=state.submitted_updates,
        expected_updates=state.expected_updates,
        base_cid=base_cid,
    )


def read_balance(settings: Settings, address: str) -> int:
    """Return the balance of ``address`` in wei."""
    client = chain_client(settings)
    client.check_chain()
    # TODO: move into ChainClient (a `balance` method using its error
    # conversion); the chain package has no balance read yet.
    try:
        return int(client.w3.eth.get_balance(Web3.to_checksum_address(address)))
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ChainUnreachableError(
            f"eth_getBalance on {settings.chain_rpc_url} failed: {exc}"
        ) from exc
    except Web3Exception as exc:
        raise ChainError(
            f"eth_getBalance on {settings.chain_rpc_url} failed: {exc}"
        ) from exc
