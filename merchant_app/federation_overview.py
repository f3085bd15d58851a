"""What the Federation screen shows: rounds, members, peers and metrics.

Rounds and members are rebuilt from the contract's events; this merchant's
saved round state adds its own step and transactions; the local Kubo node's
swarm peers tell which members' nodes are connected. The blocking reads
open short-lived clients, so the GUI calls :func:`read_federation_overview`
from its worker pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from merchant_app.chain.consortium import ConsortiumContract
from merchant_app.connectivity import CHECK_TIMEOUT_SECONDS, chain_client
from merchant_app.errors import IpfsError
from merchant_app.federation.round_state import RoundStateStore, RoundStep, TxRecord
from merchant_app.ipfs import KuboClient
from merchant_app.profile_rounds import (
    RoundMetrics,
    contract_address,
    load_metrics,
)
from merchant_app.settings import Settings

logger = logging.getLogger(__name__)

PEER_SELF = "this computer"
PEER_CONNECTED = "connected"
PEER_NOT_CONNECTED = "not connected"
PEER_NO_ADDRESS = "no peer address on chain"
PEER_UNKNOWN = "unknown: the IPFS node cannot be reached"


@dataclass(frozen=True)
class Participation:
    """One member's update in a round."""

    name: str
    address: str
    update_cid: str
    weight: int
    tx_hash: str


@dataclass(frozen=True)
class RoundRow:
    """One round: status, base and final model, updates and this merchant's part.

    ``own_step`` is the step this merchant's driver saved for the round, or
    None when it never took part on this computer.
    """

    round_id: int
    status: str
    base_cid: str
    opened_tx: str
    participants: tuple[Participation, ...]
    expected_updates: int
    final_cid: str | None = None
    final_tx: str | None = None
    own_step: str | None = None
    own_transactions: tuple[TxRecord, ...] = ()


@dataclass(frozen=True)
class MemberRow:
    """A current member with the state of its IPFS peer."""

    name: str
    address: str
    since_round: int
    peer_address: str | None
    peer_state: str


@dataclass(frozen=True)
class FederationOverview:
    """Everything the Federation screen shows, read at one moment."""

    contract: str
    rounds: tuple[RoundRow, ...]
    members: tuple[MemberRow, ...]
    metrics: tuple[RoundMetrics, ...] = field(default_factory=tuple)


def read_federation_overview(
    settings: Settings, store_path: Path, own_address: str, metrics_file: Path
) -> FederationOverview | None:
    """Read rounds, members, peers and metrics; None without a contract.

    Raises:
        ChainError: when the chain cannot be read.
    """
    if not settings.has_contract:
        return None
    address = contract_address(settings)
    contract = ConsortiumContract(chain_client(settings), address)
    members = contract.members()
    names = {event.member.lower(): event.name for event in contract.members_added()}
    rounds = _rounds(contract, names, store_path)
    connected = _connected_peer_ids(settings)
    member_rows = []
    for member in members:
        if member.address.lower() == own_address.lower():
            state = PEER_SELF
        else:
            state = _peer_state(member.peer_address, connected)
        member_rows.append(
            MemberRow(
                name=member.name,
                address=member.address,
                since_round=member.since_round,
                peer_address=member.peer_address,
                peer_state=state,
            )
        )
    return FederationOverview(
        contract=address,
        rounds=rounds,
        members=tuple(member_rows),
        metrics=tuple(load_metrics(metrics_file, address)),
    )


def _rounds(
    contract: ConsortiumContract, names: dict[str, str], store_path: Path
) -> tuple[RoundRow, ...]:
    opened = contract.rounds_opened()
    closed = {event.round_id for event in contract.rounds_closed()}
    finalized = {event.round_id: event for event in contract.rounds_finalized()}
    submitted: dict[int, list[Participation]] = {}
    for event in contract.updates_submitted():
        submitted.setdefault(event.round_id, []).append(
            Participation(
                name=names.get(event.member.lower(), ""),
                address=event.member,
                update_cid=str(event.cid),
                weight=event.weight,
                tx_hash=event.meta.tx_hash,
            )
        )

    rows = []
    with RoundStateStore.open(store_path) as state:
        for opened_event in sorted(opened, key=lambda item: item.round_id):
            round_id = opened_event.round_id
            final = finalized.get(round_id)
            if final is not None:
                status = "final"
            elif round_id in closed:
                status = "closed"
            else:
                status = "open"
            record = state.load(contract.address, round_id)
            rows.append(
                RoundRow(
                    round_id=round_id,
                    status=status,
                    base_cid=str(opened_event.base_cid),
                    opened_tx=opened_event.meta.tx_hash,
                    participants=tuple(submitted.get(round_id, [])),
                    expected_updates=opened_event.expected_updates,
                    final_cid=None if final is None else str(final.cid),
                    final_tx=None if final is None else final.meta.tx_hash,
                    own_step=None if record is None else _step_text(record.step),
                    own_transactions=tuple(
                        state.transactions(contract.address, round_id)
                    ),
                )
            )
    return tuple(rows)


def _step_text(step: RoundStep) -> str:
    return "finished" if step == RoundStep.DONE else f"at step {step.value}"


def _connected_peer_ids(settings: Settings) -> set[str] | None:
    """Return the peer ids the local node is connected to; None if unreachable."""
    if settings.kubo_api_url is None:
        return None
    try:
        with KuboClient(settings.kubo_api_url, timeout=CHECK_TIMEOUT_SECONDS) as ipfs:
            return {peer.peer_id for peer in ipfs.swarm_peers()}
    except IpfsError as exc:
        logger.info("swarm peers of %s not read: %s", settings.kubo_api_url, exc)
        return None


def _peer_state(peer_address: str | None, connected: set[str] | None) -> str:
    if not peer_address:
        return PEER_NO_ADDRESS
    if connected is None:
        return PEER_UNKNOWN
    peer_id = peer_address.rsplit("/p2p/", 1)[-1]
    return PEER_CONNECTED if peer_id in connected else PEER_NOT_CONNECTED
