"""The round state machine of one merchant.

A :class:`RoundDriver` takes its merchant through one round of the consortium
contract. It fetches the base model, trains on the local events, publishes the
update on IPFS and submits its CID. Once the round is closed it fetches and
validates every member's update, aggregates them, and proposes and approves
the aggregate CID. When the round is final it loads the final model and
refits the customer factors. docs/rounds.md lists the steps and their checks.

Every step is written to the merchant's database before it runs, and every
transaction hash right after it is sent. Before sending, the driver reads the
chain to see whether the action already happened. A driver built again on the
same database after a crash therefore resumes the round without sending any
transaction twice.

The driver is blocking: the GUI runs it in a worker thread, passes a
``progress`` callback (and ``training_progress`` for the loss while it
trains) and stops it through a ``threading.Event``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd
import requests
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import TxParams

from merchant_app.chain.cid import Cid
from merchant_app.chain.consortium import (
    AggregateApproved,
    AggregateProposed,
    ConsortiumContract,
    Phase,
    RoundState,
    UpdateSubmitted,
)
from merchant_app.errors import (
    Cancelled,
    ChainError,
    InvalidUpdateError,
    IpfsError,
    IpfsNotFoundError,
    IpfsTimeoutError,
    IpfsUnreachableError,
    ModelError,
    TransactionRevertedError,
)
from merchant_app.federation.aggregation import aggregate_updates
from merchant_app.federation.local_update import (
    compute_local_update,
    refit_local_customers,
)
from merchant_app.federation.round_state import (
    Exclusion,
    RoundRecord,
    RoundStateStore,
    RoundStep,
    TxAction,
)
from merchant_app.federation.shared_model import SharedModel
from merchant_app.federation.update_file import (
    ModelUpdate,
    normalize_address,
    update_to_bytes,
)
from merchant_app.federation.validation import (
    UpdateContext,
    ValidationLimits,
    validate_shared_model,
    validate_update,
)
from merchant_app.ipfs import KuboClient
from merchant_app.recommender.als import TrainingProgress
from merchant_app.recommender.model import FactorModel
from merchant_app.store import EventStore

logger = logging.getLogger(__name__)

# Hook points around a step, for tests that simulate crashes: "before" runs
# after the step was saved and before it acts. "sent" runs right after a
# transaction was sent and before its hash is saved, and "pending" after the
# hash is saved and before the receipt is awaited. "after" runs once the step
# acted and before the next step is saved.
HOOK_BEFORE = "before"
HOOK_SENT = "sent"
HOOK_PENDING = "pending"
HOOK_AFTER = "after"

StepHook = Callable[[RoundStep, str], None]

_MemberEvent = UpdateSubmitted | AggregateProposed | AggregateApproved

# IPFS failures worth another attempt after reconnecting to the peers.
_RETRYABLE_IPFS_ERRORS = (IpfsNotFoundError, IpfsTimeoutError, IpfsUnreachableError)


@dataclass(frozen=True)
class DriverSettings:
    """Timing, privacy and validation settings of a driver.

    The model parameters are not here: they come from the round's base model.
    """

    poll_interval: float = 0.5
    fetch_timeout: float = 60.0
    fetch_attempts: int = 3
    # Items with fewer distinct customers are left out of this merchant's update.
    min_customers: int = 1
    # Seconds between the proposal turns of members in address order.
    proposal_stagger: float = 2.0
    limits: ValidationLimits = field(default_factory=ValidationLimits)
    # Seconds one wait (round closed, round final) may last; None waits until
    # cancelled.
    wait_timeout: float | None = None


@dataclass(frozen=True)
class RoundProgress:
    """One progress report: the round, the step starting, and a short text."""

    round_id: int
    step: RoundStep
    message: str


ProgressCallback = Callable[[RoundProgress], None]
# Receives the training objective while the train step solves the customers.
TrainingProgressCallback = Callable[[TrainingProgress], None]


@dataclass(frozen=True)
class RoundOutcome:
    """A finished round as one merchant saw it."""

    round_id: int
    final_cid: str
    aggregate_cid: str | None
    model: FactorModel
    excluded: tuple[Exclusion, ...]
    gas_used: int
    bytes_uploaded: int
    phase_seconds: dict[str, float]


@dataclass
class _Cache:
    """Files and results of the running round, kept between steps in memory.

    After a restart the cache is empty and each step rebuilds what it needs
    from IPFS (content-addressed, so the bytes are the same) or recomputes it.
    """

    round_id: int
    base: SharedModel | None = None
    update_bytes: bytes | None = None
    update_weight: int | None = None
    fetched: dict[str, bytes] = field(default_factory=dict)
    valid: dict[str, ModelUpdate] = field(default_factory=dict)
    model: FactorModel | None = None


def events_from_store(store: EventStore) -> Callable[[], pd.DataFrame]:
    """Return a loader of the store's included interaction events."""

    def load() -> pd.DataFrame:
        rows = store.interactions(included_only=True)
        return pd.DataFrame(
            {
                "user_id": pd.array([row[0] for row in rows], dtype="int64"),
                "product_id": pd.array([row[1] for row in rows], dtype="int64"),
                "event_type": [row[2] for row in rows],
            }
        )

    return load


class RoundDriver:
    """Runs rounds of one contract for one merchant.

    ``contract`` must be bound to a client that signs with the merchant's
    key, and ``ipfs`` must be a client of the merchant's own Kubo node.
    ``training_events`` returns the merchant's training events, with the
    columns ``user_id``, ``product_id`` and ``event_type``.
    """

    def __init__(
        self,
        *,
        contract: ConsortiumContract,
        ipfs: KuboClient,
        state: RoundStateStore,
        training_events: Callable[[], pd.DataFrame],
        settings: DriverSettings | None = None,
        progress: ProgressCallback | None = None,
        training_progress: TrainingProgressCallback | None = None,
        cancel: threading.Event | None = None,
        step_hook: StepHook | None = None,
    ) -> None:
        account = contract.client.account
        if account is None:
            raise ChainError("the round driver needs a chain client with an account")
        self.contract = contract
        self.ipfs = ipfs
        self.state = state
        self.training_events = training_events
        self.settings = settings or DriverSettings()
        self.progress = progress
        self.training_progress = training_progress
        self.cancel = cancel or threading.Event()
        self.step_hook = step_hook
        self.address = account.address
        self._cache: _Cache | None = None

    # -- public ----------------------------------------------------------

    def run_round(self) -> RoundOutcome:
        """Run (or resume) one round until it is final and the model is loaded.

        Resumes the newest unfinished round stored in the database, else
        starts the round that is open on chain.

        Raises:
            Cancelled: when ``cancel`` is set; the round resumes on the next
                call.
            ChainError, IpfsError, ModelError: when a service fails; the round
                also resumes on the next call.
        """
        record = self._current_record()
        if self._cache is None or self._cache.round_id != record.round_id:
            self._cache = _Cache(record.round_id)
        while record.step != RoundStep.DONE:
            self._check_cancel()
            step = record.step
            self._report(record.round_id, step, f"round {record.round_id}: {step}")
            self._hook(step, HOOK_BEFORE)
            started = time.monotonic()
            done = self._run_step(record)
            seconds = dict(done.phase_seconds)
            seconds[step.value] = seconds.get(step.value, 0.0) + (
                time.monotonic() - started
            )
            self._hook(step, HOOK_AFTER)
            record = replace(done, phase_seconds=seconds)
            self.state.save(record)
        return self._outcome(record)

    # -- records ---------------------------------------------------------

    def _current_record(self) -> RoundRecord:
        contract = self.contract.address
        unfinished = self.state.unfinished(contract)
        if unfinished is not None:
            logger.info(
                "resuming round %d of %s at step %s for %s",
                unfinished.round_id,
                contract,
                unfinished.step,
                self.address,
            )
            return unfinished

        running = self.contract.current_round()
        if running.phase == Phase.NOT_STARTED:
            raise ChainError(
                f"the consortium {contract} has not opened round 1 yet",
                user_message="The consortium has not started its first round.",
            )
        round_id = running.round_id
        stored = self.state.load(contract, round_id)
        if stored is not None:
            # A finished round that is still the running one cannot happen:
            # DONE is saved only after the round was final on chain.
            raise ChainError(
                f"round {round_id} is stored as done but still runs on {contract}"
            )
        opened = self.contract.rounds_opened(round_id)
        if not opened:
            raise ChainError(f"no RoundOpened event for round {round_id} on {contract}")
        record = RoundRecord(
            contract=contract,
            round_id=round_id,
            step=RoundStep.FETCH_BASE,
            base_cid=str(opened[-1].base_cid),
        )
        self.state.save(record)
        logger.info(
            "starting round %d of %s on base %s for %s",
            round_id,
            contract,
            record.base_cid,
            self.address,
        )
        return record

    def _run_step(self, record: RoundRecord) -> RoundRecord:
        handlers: dict[RoundStep, Callable[[RoundRecord], RoundRecord]] = {
            RoundStep.FETCH_BASE: self._fetch_base,
            RoundStep.TRAIN: self._train,
            RoundStep.UPLOAD: self._upload,
            RoundStep.SUBMIT: self._submit,
            RoundStep.WAIT_CLOSED: self._wait_closed,
            RoundStep.FETCH_UPDATES: self._fetch_updates,
            RoundStep.VALIDATE: self._validate,
            RoundStep.AGGREGATE: self._aggregate,
            RoundStep.PROPOSE: self._propose,
            RoundStep.APPROVE: self._approve,
            RoundStep.WAIT_FINAL: self._wait_final,
            RoundStep.LOAD_FINAL: self._load_final,
        }
        return handlers[record.step](record)

    def _outcome(self, record: RoundRecord) -> RoundOutcome:
        cache = self._require_cache()
        if cache.model is None:
            raise ModelError(f"round {record.round_id} ended without a loaded model")
        assert record.final_cid is not None
        return RoundOutcome(
            round_id=record.round_id,
            final_cid=record.final_cid,
            aggregate_cid=record.aggregate_cid,
            model=cache.model,
            excluded=record.excluded,
            gas_used=self.state.gas_used(record.contract, record.round_id),
            bytes_uploaded=record.update_size or 0,
            phase_seconds=dict(record.phase_seconds),
        )

    # -- steps: local work -----------------------------------------------

    def _fetch_base(self, record: RoundRecord) -> RoundRecord:
        self._base_model(record)
        return record.advanced()

    def _train(self, record: RoundRecord) -> RoundRecord:
        if not self._may_submit(record.round_id):
            return replace(record, step=RoundStep.WAIT_CLOSED)
        self._trained_update(record)
        return record.advanced()

    def _upload(self, record: RoundRecord) -> RoundRecord:
        data, weight = self._trained_update(record)
        cid = self.ipfs.add_bytes(data, name=f"update-round-{record.round_id}")
        logger.info(
            "round %d: update of %s added as %s (%d bytes, weight %d)",
            record.round_id,
            self.address,
            cid,
            len(data),
            weight,
        )
        return record.advanced(
            update_cid=cid, update_weight=weight, update_size=len(data)
        )

    def _submit(self, record: RoundRecord) -> RoundRecord:
        round_id = record.round_id
        assert record.update_cid is not None and record.update_weight is not None
        if not self._may_submit(round_id):
            logger.warning(
                "round %d closed before %s submitted its update %s",
                round_id,
                self.address,
                record.update_cid,
            )
            return record.advanced()
        cid, weight = record.update_cid, record.update_weight
        try:
            self._transact(
                record,
                TxAction.SUBMIT,
                already_sent=lambda: self._own_submission_tx(round_id),
                call_data=lambda: self.contract.encode(
                    "submitUpdate", round_id, *_cid_arguments(cid), weight
                ),
            )
        except TransactionRevertedError as exc:
            # Another member's transaction closed the round first.
            logger.warning(
                "round %d: submission of %s by %s rejected: %s",
                round_id,
                cid,
                self.address,
                exc.reason,
            )
        return record.advanced()

    def _wait_closed(self, record: RoundRecord) -> RoundRecord:
        round_id = record.round_id
        started = time.monotonic()
        while True:
            running = self.contract.current_round()
            if running.round_id > round_id or running.phase == Phase.CLOSED:
                logger.info("round %d closed (seen by %s)", round_id, self.address)
                return record.advanced()
            if self._may_close(running):
                self._try_close(record)
                continue
            self._pause(started, f"round {round_id} to close")

    def _fetch_updates(self, record: RoundRecord) -> RoundRecord:
        cache = self._require_cache()
        submissions = sorted(
            self.contract.updates_submitted(record.round_id),
            key=lambda event: event.member.lower(),
        )
        self._connect_peers()
        excluded = [
            item for item in record.excluded if not item.reason.startswith("fetch")
        ]
        for event in submissions:
            cid = str(event.cid)
            if cid in cache.fetched:
                continue
            try:
                cache.fetched[cid] = self._fetch_update(cid)
            except IpfsError as exc:
                logger.warning(
                    "round %d: update %s of %s not retrievable, excluded: %s",
                    record.round_id,
                    cid,
                    event.member,
                    exc,
                )
                excluded.append(Exclusion(event.member, cid, f"fetch failed: {exc}"))
        return record.advanced(excluded=tuple(excluded))

    def _validate(self, record: RoundRecord) -> RoundRecord:
        cache = self._require_cache()
        base = self._base_model(record)
        context = UpdateContext(
            round=record.round_id, base_cid=record.base_cid, parameters=base.parameters
        )
        excluded = list(record.excluded)
        skipped = {item.cid for item in excluded}
        cache.valid = {}
        for event in self.contract.updates_submitted(record.round_id):
            cid = str(event.cid)
            if cid in skipped:
                continue
            data = cache.fetched.get(cid)
            if data is None:
                data = self._fetch_update(cid)
                cache.fetched[cid] = data
            try:
                update = validate_update(data, context, self.settings.limits)
                _check_submitter(update, event.member)
            except InvalidUpdateError as exc:
                logger.warning(
                    "round %d: update %s of %s excluded (%s): %s",
                    record.round_id,
                    cid,
                    event.member,
                    exc.reason,
                    exc,
                )
                excluded.append(Exclusion(event.member, cid, f"{exc.reason}: {exc}"))
                continue
            cache.valid[event.member] = update
        logger.info(
            "round %d: %d valid updates, %d excluded (seen by %s)",
            record.round_id,
            len(cache.valid),
            len(excluded),
            self.address,
        )
        return record.advanced(excluded=tuple(excluded))

    def _aggregate(self, record: RoundRecord) -> RoundRecord:
        cache = self._require_cache()
        if not cache.valid:
            # Resumed after a crash: the validated updates were only in memory.
            kept = tuple(
                item for item in record.excluded if item.reason.startswith("fetch")
            )
            record = replace(
                record, excluded=self._validate(replace(record, excluded=kept)).excluded
            )
        base = self._base_model(record)
        result = aggregate_updates(
            base,
            list(cache.valid.items()),
            round_id=record.round_id,
            base_cid=record.base_cid,
            limits=self.settings.limits,
        )
        excluded = list(record.excluded)
        for item in result.excluded:
            excluded.append(
                Exclusion(item.merchant, "", f"{item.reason}: {item.message}")
            )
        data = result.model_bytes
        cid = self.ipfs.add_bytes(data, name=f"aggregate-round-{record.round_id}")
        logger.info(
            "round %d: aggregate of %d updates is %s (%d bytes, computed by %s)",
            record.round_id,
            len(result.included),
            cid,
            len(data),
            self.address,
        )
        return record.advanced(aggregate_cid=cid, excluded=tuple(excluded))

    # -- steps: agreement ------------------------------------------------

    def _propose(self, record: RoundRecord) -> RoundRecord:
        round_id = record.round_id
        cid = record.aggregate_cid
        assert cid is not None
        if not self._may_act(round_id):
            return record.advanced()
        # A proposal this member sent before a restart is recorded below,
        # even when the round is final by now.
        sent_before = self._stored_sent(record, TxAction.PROPOSE) or (
            self._own_event_tx(self.contract.aggregates_proposed(round_id)) is not None
        )
        if not sent_before:
            if self._round_finalized(round_id):
                return record.advanced()
            if self._proposed_by_others(round_id, cid):
                logger.info("round %d: aggregate %s already proposed", round_id, cid)
                return record.advanced()
        try:
            self._transact(
                record,
                TxAction.PROPOSE,
                already_sent=lambda: self._own_event_tx(
                    self.contract.aggregates_proposed(round_id)
                ),
                call_data=lambda: self.contract.encode(
                    "proposeAggregate", round_id, *_cid_arguments(cid)
                ),
            )
        except TransactionRevertedError as exc:
            logger.warning(
                "round %d: proposal of %s by %s rejected: %s",
                round_id,
                cid,
                self.address,
                exc.reason,
            )
        return record.advanced()

    def _proposed_by_others(self, round_id: int, cid: str) -> bool:
        """Wait this member's turn to propose; return True when ``cid`` was
        proposed meanwhile.

        One proposal per CID is enough, so the members take turns in address
        order, ``proposal_stagger`` seconds apart, instead of all proposing
        at once.
        """
        members = sorted(member.address.lower() for member in self.contract.members())
        position = members.index(self.address.lower())
        turn = time.monotonic() + position * self.settings.proposal_stagger
        while True:
            if self.contract.candidate(round_id, cid).proposed:
                return True
            if time.monotonic() >= turn:
                return False
            self._sleep()

    def _approve(self, record: RoundRecord) -> RoundRecord:
        round_id = record.round_id
        cid = record.aggregate_cid
        assert cid is not None
        if not self._may_act(round_id):
            return record.advanced()
        started = time.monotonic()
        while not self.contract.candidate(round_id, cid).proposed:
            if self._round_finalized(round_id):
                return record.advanced()
            self._pause(started, f"aggregate {cid} of round {round_id} to be proposed")
        # After the round is final only this member's own approval, sent
        # before a restart, still has to be recorded.
        if (
            self._round_finalized(round_id)
            and not self._stored_sent(record, TxAction.APPROVE)
            and self._own_event_tx(self.contract.aggregates_approved(round_id)) is None
        ):
            return record.advanced()
        try:
            self._transact(
                record,
                TxAction.APPROVE,
                already_sent=lambda: self._own_event_tx(
                    self.contract.aggregates_approved(round_id)
                ),
                call_data=lambda: self.contract.encode(
                    "approveAggregate", round_id, *_cid_arguments(cid)
                ),
            )
        except TransactionRevertedError as exc:
            # The threshold was reached by the others first (WrongRound).
            logger.info(
                "round %d: approval of %s by %s rejected: %s",
                round_id,
                cid,
                self.address,
                exc.reason,
            )
        return record.advanced()

    def _wait_final(self, record: RoundRecord) -> RoundRecord:
        round_id = record.round_id
        started = time.monotonic()
        while True:
            finalized = self.contract.rounds_finalized(round_id)
            if finalized:
                final_cid = str(finalized[0].cid)
                if final_cid != record.aggregate_cid:
                    logger.warning(
                        "round %d final model %s differs from the aggregate %s "
                        "computed by %s",
                        round_id,
                        final_cid,
                        record.aggregate_cid,
                        self.address,
                    )
                logger.info("round %d final on %s", round_id, final_cid)
                return record.advanced(final_cid=final_cid)
            self._pause(started, f"round {round_id} to be final")

    def _load_final(self, record: RoundRecord) -> RoundRecord:
        cache = self._require_cache()
        assert record.final_cid is not None
        base = self._base_model(record)
        data = self._cat(record.final_cid, self.settings.limits.max_file_bytes)
        final = validate_shared_model(
            data,
            parameters=base.parameters,
            expected_round=record.round_id,
            expected_parent_cid=record.base_cid,
            base=base.items,
            limits=self.settings.limits,
        )
        cache.model = refit_local_customers(final, self.training_events())
        logger.info(
            "round %d: model %s loaded and %d customers refitted by %s",
            record.round_id,
            record.final_cid,
            len(cache.model.customers.customer_ids),
            self.address,
        )
        return record.advanced()

    # -- transactions ----------------------------------------------------

    def _transact(
        self,
        record: RoundRecord,
        action: TxAction,
        *,
        already_sent: Callable[[], str | None],
        call_data: Callable[[], str],
    ) -> None:
        """Send one round transaction unless the chain shows it was sent.

        A stored hash without a receipt means the driver stopped while
        waiting: it waits on that hash again instead of sending.
        """
        contract, round_id = record.contract, record.round_id
        client = self.contract.client
        stored = self.state.transaction(contract, round_id, action)
        if stored is not None and stored.mined:
            return
        if stored is not None and stored.tx_hash is not None:
            # NOTE: a transaction the node dropped (never mined) makes this
            # wait time out on every restart; nothing resends it.
            logger.info(
                "round %d: waiting again for %s tx %s of %s",
                round_id,
                action,
                stored.tx_hash,
                self.address,
            )
            self._await_receipt(round_id, action, stored.tx_hash)
            return

        # A transaction sent just before a crash may still be unmined, and
        # the chain only shows its effect once it is mined.
        self._wait_for_pending_transactions()
        on_chain = already_sent()
        if on_chain is not None:
            logger.info(
                "round %d: %s of %s already on chain in tx %s; not sending again",
                round_id,
                action,
                self.address,
                on_chain,
            )
            self._await_receipt(round_id, action, on_chain)
            return

        data = call_data()
        tx_hash = client.send(
            to=self.contract.address, data=data, gas=self._gas_limit(data)
        )
        self._hook(record.step, HOOK_SENT)
        self.state.record_sent(contract, round_id, action, tx_hash)
        logger.info(
            "round %d: %s sent by %s in tx %s", round_id, action, self.address, tx_hash
        )
        self._hook(record.step, HOOK_PENDING)
        self._await_receipt(round_id, action, tx_hash)

    def _await_receipt(self, round_id: int, action: TxAction, tx_hash: str) -> None:
        contract = self.contract.address
        self.state.record_sent(contract, round_id, action, tx_hash)
        try:
            result = self.contract.client.wait_for_receipt(tx_hash)
        except TransactionRevertedError:
            gas, block = self._receipt_gas(tx_hash)
            self.state.record_mined(
                contract,
                round_id,
                action,
                tx_hash=tx_hash,
                gas_used=gas,
                block_number=block,
            )
            raise
        self.state.record_mined(
            contract,
            round_id,
            action,
            tx_hash=tx_hash,
            gas_used=result.gas_used,
            block_number=result.block_number,
        )

    def _stored_sent(self, record: RoundRecord, action: TxAction) -> bool:
        stored = self.state.transaction(record.contract, record.round_id, action)
        return stored is not None and stored.tx_hash is not None

    def _try_close(self, record: RoundRecord) -> None:
        round_id = record.round_id
        try:
            self._transact(
                record,
                TxAction.CLOSE,
                already_sent=lambda: self._own_close_tx(round_id),
                call_data=lambda: self.contract.encode("closeRound", round_id),
            )
        except TransactionRevertedError as exc:
            # Usually another member closed it first, or the chain's clock
            # has not reached the deadline yet.
            logger.info(
                "round %d: close by %s rejected: %s", round_id, self.address, exc.reason
            )
            self._sleep()

    # -- chain reads -----------------------------------------------------

    def _may_act(self, round_id: int) -> bool:
        member = self.contract.member_state(self.address)
        if not member.is_member:
            raise ChainError(
                f"{self.address} is not a member of {self.contract.address}",
                user_message="This account is not a member of the consortium.",
            )
        if member.since_round > round_id:
            logger.info(
                "%s takes part from round %d, so it only follows round %d",
                self.address,
                member.since_round,
                round_id,
            )
            return False
        return True

    def _may_submit(self, round_id: int) -> bool:
        running = self.contract.current_round()
        if running.round_id != round_id or running.phase != Phase.OPEN:
            return self._own_submission_tx(round_id) is not None
        return self._may_act(round_id)

    def _may_close(self, running: RoundState) -> bool:
        if running.phase != Phase.OPEN:
            return False
        if running.submitted_updates < running.min_updates:
            return False
        if max(self._block_time(), time.time()) < running.deadline:
            return False
        return self._may_act(running.round_id)

    def _round_finalized(self, round_id: int) -> bool:
        return self.contract.current_round().round_id > round_id

    def _own_submission_tx(self, round_id: int) -> str | None:
        member = self.contract.member_state(self.address)
        if member.submitted_round != round_id:
            return None
        return self._own_event_tx(self.contract.updates_submitted(round_id))

    def _own_close_tx(self, round_id: int) -> str | None:
        for event in self.contract.rounds_closed(round_id):
            if event.closed_by.lower() == self.address.lower():
                return event.meta.tx_hash
        return None

    def _own_event_tx(self, events: Sequence[_MemberEvent]) -> str | None:
        for event in events:
            if event.member.lower() == self.address.lower():
                return event.meta.tx_hash
        return None

    def _block_time(self) -> int:
        w3 = self.contract.client.w3
        try:
            return int(w3.eth.get_block("latest")["timestamp"])
        except (requests.RequestException, Web3Exception) as exc:
            raise ChainError(f"reading the latest block failed: {exc}") from exc

    def _wait_for_pending_transactions(self) -> None:
        w3 = self.contract.client.w3
        started = time.monotonic()
        while True:
            try:
                pending = w3.eth.get_transaction_count(self.address, "pending")
                mined = w3.eth.get_transaction_count(self.address, "latest")
            except (requests.RequestException, Web3Exception) as exc:
                raise ChainError(
                    f"reading the nonce of {self.address} failed: {exc}"
                ) from exc
            if pending <= mined:
                return
            self._pause(started, f"{pending - mined} pending transactions")

    def _gas_limit(self, data: str) -> int | None:
        """Return twice the gas estimate of a round transaction.

        The estimate holds for the current state, which can change before the
        transaction is mined. An approval estimated before another member's
        approval can become the one that reaches the threshold. That one also
        opens the next round and costs about 30% more (docs/contract.md has
        the measured gas). Unused gas is not charged. Returns None when the
        estimate reverts, so that the client's simulation reports the reason.
        """
        w3 = self.contract.client.w3
        params: TxParams = {
            "from": self.address,
            "to": self.contract.address,
            "data": HexBytes(data),
        }
        try:
            return 2 * int(w3.eth.estimate_gas(params))
        except ContractLogicError as exc:
            logger.debug("gas estimate for %s reverted: %s", self.address, exc)
            return None
        except (requests.RequestException, Web3Exception) as exc:
            raise ChainError(
                f"estimating gas for {self.address} failed: {exc}"
            ) from exc

    def _receipt_gas(self, tx_hash: str) -> tuple[int, int]:
        w3 = self.contract.client.w3
        try:
            receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except (requests.RequestException, Web3Exception) as exc:
            raise ChainError(
                f"reading the receipt of tx {tx_hash} failed: {exc}"
            ) from exc
        return int(receipt["gasUsed"]), int(receipt["blockNumber"])

    # -- IPFS ------------------------------------------------------------

    def _connect_peers(self) -> None:
        for member in self.contract.members():
            if member.address.lower() == self.address.lower():
                continue
            if not member.peer_address:
                logger.info("member %s has no peer address on chain", member.address)
                continue
            try:
                self.ipfs.swarm_connect(
                    member.peer_address, timeout=self.settings.fetch_timeout
                )
            except IpfsError as exc:
                logger.warning(
                    "connecting to %s of member %s failed: %s",
                    member.peer_address,
                    member.address,
                    exc,
                )

    def _fetch_update(self, cid: str) -> bytes:
        return self._cat(cid, self.settings.limits.max_file_bytes)

    def _cat(self, cid: str, max_size: int) -> bytes:
        attempts = max(1, self.settings.fetch_attempts)
        for attempt in range(1, attempts + 1):
            self._check_cancel()
            try:
                return self.ipfs.cat(
                    cid, max_size=max_size, timeout=self.settings.fetch_timeout
                )
            except _RETRYABLE_IPFS_ERRORS as exc:
                if attempt == attempts:
                    raise
                logger.warning(
                    "fetching %s failed (attempt %d of %d): %s",
                    cid,
                    attempt,
                    attempts,
                    exc,
                )
                self._connect_peers()
        raise AssertionError("unreachable")

    def _base_model(self, record: RoundRecord) -> SharedModel:
        cache = self._require_cache()
        if cache.base is None:
            data = self._cat(record.base_cid, self.settings.limits.max_file_bytes)
            cache.base = validate_shared_model(data, limits=self.settings.limits)
            logger.info(
                "round %d: base model %s loaded (%d items)",
                record.round_id,
                record.base_cid,
                len(cache.base.items.item_ids),
            )
        return cache.base

    def _trained_update(self, record: RoundRecord) -> tuple[bytes, int]:
        cache = self._require_cache()
        if cache.update_bytes is None or cache.update_weight is None:
            base = self._base_model(record)
            self._check_cancel()
            local = compute_local_update(
                base,
                self.training_events(),
                round_id=record.round_id,
                base_cid=record.base_cid,
                merchant=self.address,
                min_customers=self.settings.min_customers,
                progress=self.training_progress,
                cancel=self.cancel,
            )
            cache.update_bytes = update_to_bytes(local.update)
            # The contract counts whole interaction weights, at least 1.
            cache.update_weight = max(1, round(local.update.total_weight))
        return cache.update_bytes, cache.update_weight

    # -- plumbing --------------------------------------------------------

    def _require_cache(self) -> _Cache:
        assert self._cache is not None
        return self._cache

    def _pause(self, started: float, waiting_for: str) -> None:
        limit = self.settings.wait_timeout
        if limit is not None and time.monotonic() - started > limit:
            raise ChainError(
                f"{self.address} waited more than {limit:.0f} s for {waiting_for}",
                user_message="The consortium round is taking too long.",
            )
        self._sleep()

    def _sleep(self) -> None:
        if self.cancel.wait(self.settings.poll_interval):
            raise Cancelled("round driver cancelled")

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("round driver cancelled")

    def _report(self, round_id: int, step: RoundStep, message: str) -> None:
        if self.progress is not None:
            self.progress(RoundProgress(round_id, step, message))

    def _hook(self, step: RoundStep, point: str) -> None:
        if self.step_hook is not None:
            self.step_hook(step, point)


def _cid_arguments(cid: str) -> tuple[int, bytes]:
    parsed = Cid.parse(cid)
    return parsed.codec, parsed.digest


def _check_submitter(update: ModelUpdate, submitter: str) -> None:
    if update.header.merchant != normalize_address(submitter):
        raise InvalidUpdateError(
            f"update declares merchant {update.header.merchant} but was submitted "
            f"by {submitter}",
            reason="merchant",
        )
