"""Set up a consortium for a simulation: keys, contract, members, round 1.

Every merchant gets a throwaway key created in memory, funded from one of
anvil's pre-funded accounts. Keys are never written anywhere: they guard
nothing but test ether on a chain that ends with the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount

from merchant_app.chain.artifact import load_artifact
from merchant_app.chain.client import ChainClient
from merchant_app.chain.consortium import ConsortiumContract
from merchant_app.errors import IpfsError
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.shared_model import shared_model_to_bytes
from merchant_app.federation.starter import starter_model
from merchant_app.ipfs import KuboClient
from merchant_app.services.kubo import KuboNode

logger = logging.getLogger(__name__)

# Enough test ether for thousands of round transactions at anvil's fees.
FUNDING_WEI = 10 * 10**18


@dataclass(frozen=True)
class MemberSpec:
    """A merchant to add: display name, key and Kubo node."""

    name: str
    account: LocalAccount
    node: KuboNode


def create_throwaway_accounts(count: int) -> list[LocalAccount]:
    """Create ``count`` new keys in memory (``eth_account`` uses ``os.urandom``)."""
    return [Account.create() for _ in range(count)]


def chain_client(
    rpc_url: str, chain_id: int, account: LocalAccount, *, receipt_timeout: float
) -> ChainClient:
    """Return a client of the Consortium contract that signs with ``account``."""
    return ChainClient(
        rpc_url,
        expected_chain_id=chain_id,
        account=account,
        abi=load_artifact("Consortium").abi,
        receipt_timeout=receipt_timeout,
    )


def fund_accounts(
    funder: ChainClient, accounts: Sequence[LocalAccount], *, amount_wei: int
) -> None:
    """Send ``amount_wei`` from ``funder``'s account to each of ``accounts``."""
    for account in accounts:
        result = funder.transact(to=account.address, data=b"", value=amount_wei)
        logger.info(
            "funded %s with %d wei in tx %s",
            account.address,
            amount_wei,
            result.tx_hash,
        )


def connect_nodes(nodes: Sequence[KuboNode]) -> None:
    """Connect every pair of nodes; a failed connection is logged, not raised."""
    for index, node in enumerate(nodes):
        with node.client() as client:
            for other in nodes[index + 1 :]:
                try:
                    client.swarm_connect(other.peer_multiaddr)
                except IpfsError as exc:
                    logger.warning(
                        "connecting %s to %s failed: %s",
                        node.peer_id,
                        other.peer_multiaddr,
                        exc,
                    )


def publish_starter_model(ipfs: KuboClient, parameters: ConsortiumParameters) -> str:
    """Add the deterministic starter model to ``ipfs`` and return its CID."""
    data = shared_model_to_bytes(starter_model(parameters))
    cid = ipfs.add_bytes(data, name="starter-model")
    logger.info("starter model published as %s (%d bytes)", cid, len(data))
    return cid


def deploy_consortium(
    owner: ChainClient,
    members: Sequence[MemberSpec],
    *,
    min_updates: int,
    approval_threshold: int,
    round_seconds: int,
    starter_cid: str,
    receipt_timeout: float = 60.0,
) -> tuple[ConsortiumContract, list[ConsortiumContract]]:
    """Deploy the contract, add the members, publish their peer addresses and
    open round 1 on ``starter_cid``.

    Returns the owner's contract and one contract per member, bound to the
    member's key.
    """
    contract, _ = ConsortiumContract.deploy(
        owner,
        min_updates=min_updates,
        approval_threshold=approval_threshold,
        round_seconds=round_seconds,
    )
    for member in members:
        contract.add_member(member.account.address, member.name)
    bound = [
        ConsortiumContract(
            chain_client(
                owner.rpc_url,
                owner.expected_chain_id,
                member.account,
                receipt_timeout=receipt_timeout,
            ),
            contract.address,
            from_block=contract.from_block,
        )
        for member in members
    ]
    for member, member_contract in zip(members, bound, strict=True):
        member_contract.set_peer_address(member.node.peer_multiaddr)
    contract.open_first_round(starter_cid)
    logger.info(
        "consortium %s: %d members, round 1 open on %s",
        contract.address,
        len(members),
        starter_cid,
    )
    return contract, bound
