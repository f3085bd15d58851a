"""Typed access to the Consortium contract: transactions, views and events.

Each contract function has one method. Writes go through
:class:`ChainClient` (simulated first, signed locally) and return a
:class:`TxResult` with the hash, block and gas used. Views return small
dataclasses. Event readers scan logs in block chunks and return one dataclass
per event; docs/contract.md describes the protocol.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from eth_abi import decode as abi_decode
from eth_typing import ABIEvent
from eth_utils import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.types import EventData

from merchant_app.chain.artifact import ContractArtifact, load_artifact
from merchant_app.chain.cid import Cid
from merchant_app.chain.client import ChainClient, TxResult
from merchant_app.errors import ChainError

logger = logging.getLogger(__name__)

EventT = TypeVar("EventT")


class Phase(enum.IntEnum):
    """Phase of the running round, as the contract's ``Phase`` enum."""

    NOT_STARTED = 0
    OPEN = 1
    CLOSED = 2


# -- views -------------------------------------------------------------------


@dataclass(frozen=True)
class Parameters:
    """Parameters for rounds that open from now on, and the member count."""

    min_updates: int
    approval_threshold: int
    round_duration: int
    member_count: int


@dataclass(frozen=True)
class RoundState:
    """The running round as stored on chain."""

    round_id: int
    phase: Phase
    deadline: int
    expected_updates: int
    submitted_updates: int
    min_updates: int
    approval_threshold: int


@dataclass(frozen=True)
class MemberState:
    """One account's membership and the last round of each of its actions."""

    is_member: bool
    since_round: int
    submitted_round: int
    proposed_round: int
    approved_round: int


@dataclass(frozen=True)
class CandidateState:
    """A proposed aggregate of one round and its approvals."""

    proposed: bool
    approvals: int


# -- events ------------------------------------------------------------------


@dataclass(frozen=True)
class EventMeta:
    """Block, transaction and log position of an event."""

    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ParametersChanged:
    min_updates: int
    approval_threshold: int
    round_duration: int
    effective_from_round: int
    meta: EventMeta


@dataclass(frozen=True)
class MemberAdded:
    member: str
    name: str
    since_round: int
    meta: EventMeta


@dataclass(frozen=True)
class MemberRemoved:
    member: str
    round_id: int
    meta: EventMeta


@dataclass(frozen=True)
class PeerAddressSet:
    member: str
    peer_address: str
    meta: EventMeta


@dataclass(frozen=True)
class RoundOpened:
    round_id: int
    base_cid: Cid
    deadline: int
    expected_updates: int
    min_updates: int
    approval_threshold: int
    meta: EventMeta


@dataclass(frozen=True)
class UpdateSubmitted:
    round_id: int
    member: str
    cid: Cid
    weight: int
    meta: EventMeta


@dataclass(frozen=True)
class RoundClosed:
    round_id: int
    submitted_updates: int
    closed_by: str
    meta: EventMeta


@dataclass(frozen=True)
class AggregateProposed:
    round_id: int
    member: str
    cid: Cid
    meta: EventMeta


@dataclass(frozen=True)
class AggregateApproved:
    round_id: int
    member: str
    cid: Cid
    approvals: int
    meta: EventMeta


@dataclass(frozen=True)
class RoundFinalized:
    round_id: int
    cid: Cid
    approvals: int
    meta: EventMeta


@dataclass(frozen=True)
class ApprovalThresholdLowered:
    round_id: int
    old_threshold: int
    new_threshold: int
    meta: EventMeta


@dataclass(frozen=True)
class MemberInfo:
    """A current member as rebuilt from the events."""

    address: str
    name: str
    since_round: int
    peer_address: str | None


def _meta(event: EventData) -> EventMeta:
    return EventMeta(
        block_number=int(event["blockNumber"]),
        tx_hash="0x" + bytes(event["transactionHash"]).hex(),
        log_index=int(event["logIndex"]),
    )


def _cid(args: Any, codec_key: str = "codec", digest_key: str = "digest") -> Cid:
    return Cid.from_chain(int(args[codec_key]), bytes(args[digest_key]))


# Event name -> converter from decoded web3 event data to a dataclass.
_CONVERTERS: dict[str, Callable[[EventData], Any]] = {
    "ParametersChanged": lambda e: ParametersChanged(
        min_updates=e["args"]["minUpdates"],
        approval_threshold=e["args"]["approvalThreshold"],
        round_duration=e["args"]["roundDuration"],
        effective_from_round=e["args"]["effectiveFromRound"],
        meta=_meta(e),
    ),
    "MemberAdded": lambda e: MemberAdded(
        member=e["args"]["member"],
        name=e["args"]["name"],
        since_round=e["args"]["sinceRound"],
        meta=_meta(e),
    ),
    "MemberRemoved": lambda e: MemberRemoved(
        member=e["args"]["member"], round_id=e["args"]["round"], meta=_meta(e)
    ),
    "PeerAddressSet": lambda e: PeerAddressSet(
        member=e["args"]["member"],
        peer_address=e["args"]["peerAddress"],
        meta=_meta(e),
    ),
    "RoundOpened": lambda e: RoundOpened(
        round_id=e["args"]["round"],
        base_cid=_cid(e["args"], "baseCodec", "baseDigest"),
        deadline=e["args"]["deadline"],
        expected_updates=e["args"]["expectedUpdates"],
        min_updates=e["args"]["minUpdates"],
        approval_threshold=e["args"]["approvalThreshold"],
        meta=_meta(e),
    ),
    "UpdateSubmitted": lambda e: UpdateSubmitted(
        round_id=e["args"]["round"],
        member=e["args"]["member"],
        cid=_cid(e["args"]),
        weight=e["args"]["weight"],
        meta=_meta(e),
    ),
    "RoundClosed": lambda e: RoundClosed(
        round_id=e["args"]["round"],
        submitted_updates=e["args"]["submittedUpdates"],
        closed_by=e["args"]["closedBy"],
        meta=_meta(e),
    ),
    "AggregateProposed": lambda e: AggregateProposed(
        round_id=e["args"]["round"],
        member=e["args"]["member"],
        cid=_cid(e["args"]),
        meta=_meta(e),
    ),
    "AggregateApproved": lambda e: AggregateApproved(
        round_id=e["args"]["round"],
        member=e["args"]["member"],
        cid=_cid(e["args"]),
        approvals=e["args"]["approvals"],
        meta=_meta(e),
    ),
    "RoundFinalized": lambda e: RoundFinalized(
        round_id=e["args"]["round"],
        cid=_cid(e["args"]),
        approvals=e["args"]["approvals"],
        meta=_meta(e),
    ),
    "ApprovalThresholdLowered": lambda e: ApprovalThresholdLowered(
        round_id=e["args"]["round"],
        old_threshold=e["args"]["oldThreshold"],
        new_threshold=e["args"]["newThreshold"],
        meta=_meta(e),
    ),
}

# Events whose first indexed field is the round id.
_ROUND_INDEXED = {
    "RoundOpened",
    "UpdateSubmitted",
    "RoundClosed",
    "AggregateProposed",
    "AggregateApproved",
    "RoundFinalized",
    "ApprovalThresholdLowered",
}


def _as_cid(cid: Cid | str) -> Cid:
    return cid if isinstance(cid, Cid) else Cid.parse(cid)


class ConsortiumContract:
    """One deployed Consortium contract, used through a :class:`ChainClient`.

    ``from_block`` is where event scans start: the deployment block, when
    known, saves reading the chain's history before it.
    """

    def __init__(
        self,
        client: ChainClient,
        address: str,
        *,
        artifact: ContractArtifact | None = None,
        from_block: int = 0,
    ) -> None:
        self.client = client
        self.artifact = artifact or load_artifact("Consortium")
        self.address = Web3.to_checksum_address(address)
        self.from_block = from_block
        self._contract: Contract = client.w3.eth.contract(
            address=self.address, abi=self.artifact.abi
        )
        self._topics = {
            entry["name"]: event_abi_to_log_topic(cast(ABIEvent, entry))
            for entry in self.artifact.abi
            if entry.get("type") == "event"
        }

    @classmethod
    def deploy(
        cls,
        client: ChainClient,
        *,
        min_updates: int,
        approval_threshold: int,
        round_seconds: int,
        artifact: ContractArtifact | None = None,
    ) -> tuple[ConsortiumContract, TxResult]:
        """Deploy a new contract owned by the client's account."""
        artifact = artifact or load_artifact("Consortium")
        factory = client.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(
            min_updates, approval_threshold, round_seconds
        ).data_in_transaction
        result = client.transact(to=None, data=data)
        if result.contract_address is None:
            raise ChainError(f"deployment tx {result.tx_hash} created no contract")
        logger.info(
            "deployed Consortium at %s in block %d",
            result.contract_address,
            result.block_number,
        )
        contract = cls(
            client,
            result.contract_address,
            artifact=artifact,
            from_block=result.block_number,
        )
        return contract, result

    # -- owner transactions ----------------------------------------------

    def set_parameters(
        self, *, min_updates: int, approval_threshold: int, round_seconds: int
    ) -> TxResult:
        return self._transact(
            "setParameters", min_updates, approval_threshold, round_seconds
        )

    def add_member(self, account: str, name: str) -> TxResult:
        return self._transact("addMember", Web3.to_checksum_address(account), name)

    def remove_member(self, account: str) -> TxResult:
        return self._transact("removeMember", Web3.to_checksum_address(account))

    def open_first_round(self, base_cid: Cid | str) -> TxResult:
        cid = _as_cid(base_cid)
        return self._transact("openFirstRound", cid.codec, cid.digest)

    def lower_approval_threshold(
        self, round_id: int, approval_threshold: int
    ) -> TxResult:
        """Lower the running round's approval threshold.

        A closed round whose leading candidate already has that many
        approvals finalises in the same transaction.
        """
        return self._transact("lowerApprovalThreshold", round_id, approval_threshold)

    # -- member transactions ---------------------------------------------

    def set_peer_address(self, peer_address: str) -> TxResult:
        return self._transact("setPeerAddress", peer_address)

    def submit_update(self, round_id: int, cid: Cid | str, weight: int) -> TxResult:
        parsed = _as_cid(cid)
        return self._transact(
            "submitUpdate", round_id, parsed.codec, parsed.digest, weight
        )

    def close_round(self, round_id: int) -> TxResult:
        return self._transact("closeRound", round_id)

    def propose_aggregate(self, round_id: int, cid: Cid | str) -> TxResult:
        parsed = _as_cid(cid)
        return self._transact("proposeAggregate", round_id, parsed.codec, parsed.digest)

    def approve_aggregate(self, round_id: int, cid: Cid | str) -> TxResult:
        parsed = _as_cid(cid)
        return self._transact("approveAggregate", round_id, parsed.codec, parsed.digest)

    def encode(self, function: str, *args: Any) -> str:
        """Return the call data of ``function(*args)`` for a caller that sends it."""
        return str(self._contract.encode_abi(function, args=list(args)))

    # -- views -----------------------------------------------------------

    def owner(self) -> str:
        (address,) = self._view("owner")
        return Web3.to_checksum_address(address)

    def parameters(self) -> Parameters:
        return Parameters(*self._view("parameters"))

    def current_round(self) -> RoundState:
        values = self._view("currentRound")
        return RoundState(
            round_id=values[0],
            phase=Phase(values[1]),
            deadline=values[2],
            expected_updates=values[3],
            submitted_updates=values[4],
            min_updates=values[5],
            approval_threshold=values[6],
        )

    def member_state(self, account: str) -> MemberState:
        return MemberState(
            *self._view("memberState", Web3.to_checksum_address(account))
        )

    def candidate(self, round_id: int, cid: Cid | str) -> CandidateState:
        parsed = _as_cid(cid)
        return CandidateState(
            *self._view("candidate", round_id, parsed.codec, parsed.digest)
        )

    # -- events ----------------------------------------------------------

    def parameter_changes(self) -> list[ParametersChanged]:
        return self._events("ParametersChanged", ParametersChanged)

    def members_added(self) -> list[MemberAdded]:
        return self._events("MemberAdded", MemberAdded)

    def members_removed(self) -> list[MemberRemoved]:
        return self._events("MemberRemoved", MemberRemoved)

    def peer_addresses_set(self) -> list[PeerAddressSet]:
        return self._events("PeerAddressSet", PeerAddressSet)

    def rounds_opened(self, round_id: int | None = None) -> list[RoundOpened]:
        return self._events("RoundOpened", RoundOpened, round_id)

    def updates_submitted(self, round_id: int | None = None) -> list[UpdateSubmitted]:
        return self._events("UpdateSubmitted", UpdateSubmitted, round_id)

    def rounds_closed(self, round_id: int | None = None) -> list[RoundClosed]:
        return self._events("RoundClosed", RoundClosed, round_id)

    def aggregates_proposed(
        self, round_id: int | None = None
    ) -> list[AggregateProposed]:
        return self._events("AggregateProposed", AggregateProposed, round_id)

    def aggregates_approved(
        self, round_id: int | None = None
    ) -> list[AggregateApproved]:
        return self._events("AggregateApproved", AggregateApproved, round_id)

    def rounds_finalized(self, round_id: int | None = None) -> list[RoundFinalized]:
        return self._events("RoundFinalized", RoundFinalized, round_id)

    def approval_thresholds_lowered(
        self, round_id: int | None = None
    ) -> list[ApprovalThresholdLowered]:
        return self._events(
            "ApprovalThresholdLowered", ApprovalThresholdLowered, round_id
        )

    def members(self) -> list[MemberInfo]:
        """Rebuild the current members, with names and latest peer addresses.

        Events are replayed in chain order, so a member removed and added
        again appears once, with its latest name.
        """
        changes: list[MemberAdded | MemberRemoved | PeerAddressSet] = [
            *self.members_added(),
            *self.members_removed(),
            *self.peer_addresses_set(),
        ]
        changes.sort(key=lambda event: (event.meta.block_number, event.meta.log_index))
        current: dict[str, MemberInfo] = {}
        peers: dict[str, str] = {}
        for event in changes:
            if isinstance(event, MemberAdded):
                current[event.member] = MemberInfo(
                    event.member, event.name, event.since_round, None
                )
            elif isinstance(event, MemberRemoved):
                current.pop(event.member, None)
            else:
                peers[event.member] = event.peer_address
        return [
            MemberInfo(info.address, info.name, info.since_round, peers.get(address))
            for address, info in sorted(current.items())
        ]

    def events_in(self, result: TxResult) -> list[object]:
        """Decode this contract's events from the logs of one transaction."""
        by_topic = {topic: name for name, topic in self._topics.items()}
        decoded: list[object] = []
        for log in result.logs:
            if Web3.to_checksum_address(log["address"]) != self.address:
                continue
            name = by_topic.get(bytes(log["topics"][0]))
            if name is not None:
                event = self._contract.events[name]().process_log(log)
                decoded.append(_CONVERTERS[name](event))
        return decoded

    # -- internals -------------------------------------------------------

    def _transact(self, function: str, *args: Any) -> TxResult:
        data = self.encode(function, *args)
        result = self.client.transact(to=self.address, data=data)
        logger.info(
            "%s on %s: tx %s, gas used %d",
            function,
            self.address,
            result.tx_hash,
            result.gas_used,
        )
        return result

    def _view(self, function: str, *args: Any) -> tuple[Any, ...]:
        data = self.encode(function, *args)
        raw = self.client.call(self.address, data)
        outputs = self._contract.get_function_by_name(function).abi["outputs"]
        types = [output["type"] for output in outputs]
        return tuple(abi_decode(types, raw))

    def _events(
        self, name: str, expected: type[EventT], round_id: int | None = None
    ) -> list[EventT]:
        topics: list[Any] = [HexBytes(self._topics[name])]
        if round_id is not None:
            if name not in _ROUND_INDEXED:
                raise ValueError(f"event {name} is not indexed by round")
            topics.append(HexBytes(round_id.to_bytes(32, "big")))
        logs = self.client.get_logs(self.address, topics, from_block=self.from_block)
        event = self._contract.events[name]()
        return [self._convert(name, event.process_log(log), expected) for log in logs]

    @staticmethod
    def _convert(name: str, event: EventData, expected: type[EventT]) -> EventT:
        converted = _CONVERTERS[name](event)
        assert isinstance(converted, expected)
        return converted
