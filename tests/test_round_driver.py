"""Tests of the round driver with real Kubo nodes, a real anvil chain and
real SQLite stores: a full round, bad updates, crashes at every step, a member
that never submits, and cancellation."""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from eth_account.signers.local import LocalAccount

from merchant_app.chain.artifact import load_artifact
from merchant_app.chain.client import ChainClient
from merchant_app.chain.consortium import ConsortiumContract, Phase
from merchant_app.errors import Cancelled
from merchant_app.federation.driver import (
    HOOK_AFTER,
    HOOK_BEFORE,
    HOOK_PENDING,
    HOOK_SENT,
    DriverSettings,
    RoundDriver,
    RoundOutcome,
    RoundProgress,
    events_from_store,
)
from merchant_app.federation.local_update import compute_local_update
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.round_state import (
    Exclusion,
    RoundRecord,
    RoundStateStore,
    RoundStep,
    TxAction,
)
from merchant_app.federation.update_file import update_to_bytes
from merchant_app.federation.validation import validate_shared_model
from merchant_app.ipfs import KuboClient
from merchant_app.recommender.dataset import load_events_csv
from merchant_app.services.anvil import AnvilChain
from merchant_app.services.kubo import KuboNode
from merchant_app.simulation.consortium_setup import (
    MemberSpec,
    connect_nodes,
    deploy_consortium,
    publish_starter_model,
)
from merchant_app.simulation.merchant_data import open_merchant_store
from merchant_app.store import EventStore
from merchant_app.tensor_files import dump_tensors
from tests.fixtures.chain import rpc
from tests.fixtures.ipfs import KuboNodeFactory

# Rows taken from the start of each seed shop: small, so a round takes seconds.
SHOP_ROWS = 300
SHOPS = ("shop_0", "shop_1", "shop_2")
# Small statistics keep the update files and solves small.
PARAMETERS = ConsortiumParameters(dimension=8)
FAST = DriverSettings(poll_interval=0.05, fetch_timeout=20.0, wait_timeout=120.0)


class SimulatedCrash(Exception):
    """Raised by a step hook to stop a driver as a crash would."""


@pytest.fixture(scope="module")
def small_shops(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Write the first rows of each seed shop to a folder and return it."""
    folder = tmp_path_factory.mktemp("shops")
    for name in SHOPS:
        source = shared_data / "seed-shops" / f"{name}.csv"
        lines = source.read_text().splitlines()[: SHOP_ROWS + 1]
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return folder


@dataclass
class Merchant:
    """One merchant of a test consortium and what its drivers need."""

    name: str
    account: LocalAccount
    node: KuboNode
    database: Path
    store: EventStore | None
    rpc_url: str
    contract_address: str
    from_block: int
    sent: list[str] = field(default_factory=list)

    def contract(self) -> ConsortiumContract:
        """Return a new contract client, as a restarted app would build it."""
        client = ChainClient(
            self.rpc_url,
            expected_chain_id=31337,
            account=self.account,
            abi=_abi(),
            receipt_timeout=30.0,
        )
        # Count every transaction this merchant sends, across restarts.
        send = client.send

        def counting_send(**kwargs: object) -> str:
            tx_hash = send(**kwargs)  # type: ignore[arg-type]
            self.sent.append(tx_hash)
            return tx_hash

        client.send = counting_send  # type: ignore[method-assign]
        return ConsortiumContract(
            client, self.contract_address, from_block=self.from_block
        )

    def driver(self, **options: object) -> RoundDriver:
        """Build a fresh driver on the merchant's database and node."""
        assert self.store is not None
        options.setdefault("settings", FAST)
        return RoundDriver(
            contract=self.contract(),
            ipfs=KuboClient(self.node.api_url),
            state=RoundStateStore.open(self.database),
            training_events=events_from_store(self.store),
            **options,  # type: ignore[arg-type]
        )


@dataclass
class Consortium:
    owner: ConsortiumContract
    merchants: list[Merchant]
    starter_cid: str


def _abi() -> list[dict[str, object]]:
    return load_artifact("Consortium").abi


@pytest.fixture
def consortium_builder(
    tmp_path: Path,
    small_shops: Path,
    anvil_chain: AnvilChain,
    dev_accounts: list[LocalAccount],
    client_for: Callable[[LocalAccount], ChainClient],
    kubo_node_factory: KuboNodeFactory,
) -> Iterator[Callable[..., Consortium]]:
    """Build a consortium of the small shops plus ``extra`` data-less members.

    Members without a shop share one extra Kubo node. Stores are closed at
    teardown.
    """
    stores: list[EventStore] = []

    def build(
        *,
        extra: int = 0,
        min_updates: int | None = None,
        threshold: int | None = None,
        round_seconds: int = 3600,
        chain: AnvilChain = anvil_chain,
        accounts: list[LocalAccount] = dev_accounts,
    ) -> Consortium:
        count = len(SHOPS) + extra
        nodes = kubo_node_factory(len(SHOPS) + (1 if extra else 0))
        connect_nodes(nodes)
        member_nodes = nodes[: len(SHOPS)] + [nodes[-1]] * extra
        names = [*SHOPS, *(f"extra_{index}" for index in range(extra))]
        specs = [
            MemberSpec(name, account, node)
            for name, account, node in zip(
                names, accounts[1 : count + 1], member_nodes, strict=True
            )
        ]
        with nodes[0].client() as ipfs:
            starter_cid = publish_starter_model(ipfs, PARAMETERS)
        owner_client = ChainClient(
            chain.rpc_url, expected_chain_id=31337, account=accounts[0], abi=_abi()
        )
        owner, _ = deploy_consortium(
            owner_client,
            specs,
            min_updates=min_updates or count,
            approval_threshold=threshold or len(SHOPS),
            round_seconds=round_seconds,
            starter_cid=starter_cid,
        )
        merchants = []
        for spec in specs:
            database = tmp_path / f"{spec.name}.sqlite"
            store = None
            if spec.name in SHOPS:
                store = open_merchant_store(
                    database,
                    small_shops / f"{spec.name}.csv",
                    pd.DataFrame({"user_id": [], "product_id": []}),
                )
                stores.append(store)
            merchants.append(
                Merchant(
                    name=spec.name,
                    account=spec.account,
                    node=spec.node,
                    database=database,
                    store=store,
                    rpc_url=chain.rpc_url,
                    contract_address=owner.address,
                    from_block=owner.from_block,
                )
            )
        return Consortium(owner, merchants, starter_cid)

    yield build
    for store in stores:
        store.close()


def run_concurrently(
    jobs: list[Callable[[], RoundOutcome]],
) -> list[RoundOutcome]:
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [future.result(timeout=300) for future in futures]


# -- round state store ---------------------------------------------------


def test_round_state_store_round_trip(tmp_path: Path):
    database = tmp_path / "merchant.sqlite"
    record = RoundRecord(
        contract="0xabc",
        round_id=3,
        step=RoundStep.SUBMIT,
        base_cid="bafkbase",
        update_cid="bafkupdate",
        update_weight=12,
        update_size=345,
        excluded=(Exclusion("0xdef", "bafkbad", "finite: NaN in item_rhs"),),
        phase_seconds={"train": 1.5},
    )

    with RoundStateStore.open(database) as state:
        state.save(record)
        state.record_sent("0xabc", 3, TxAction.SUBMIT, "0x01")
    with RoundStateStore.open(database) as reopened:
        loaded = reopened.load("0xabc", 3)
        unfinished = reopened.unfinished("0xabc")
        sent = reopened.transaction("0xabc", 3, TxAction.SUBMIT)
        reopened.record_mined(
            "0xabc", 3, TxAction.SUBMIT, tx_hash="0x01", gas_used=40_000, block_number=9
        )
        gas = reopened.gas_used("0xabc", 3)

    assert loaded == record
    assert unfinished == record
    assert sent is not None
    assert sent.tx_hash == "0x01"
    assert not sent.mined
    assert gas == 40_000


def test_round_state_store_done_round_not_unfinished(tmp_path: Path):
    with RoundStateStore.open(tmp_path / "merchant.sqlite") as state:
        state.save(RoundRecord("0xabc", 1, RoundStep.DONE, "bafkbase"))
        state.save(RoundRecord("0xother", 1, RoundStep.TRAIN, "bafkbase"))

        assert state.unfinished("0xabc") is None
        assert state.unfinished("0xother") is not None


def test_round_step_order_ends_at_done():
    steps = list(RoundStep)

    assert steps[0] == RoundStep.FETCH_BASE
    assert RoundStep.SUBMIT.next() == RoundStep.WAIT_CLOSED
    assert RoundStep.DONE.next() == RoundStep.DONE


# -- full rounds -----------------------------------------------------------


def test_round_three_merchants_agree_on_aggregate(
    consortium_builder: Callable[..., Consortium],
):
    consortium = consortium_builder()
    drivers = [merchant.driver() for merchant in consortium.merchants]

    outcomes = run_concurrently([driver.run_round for driver in drivers])

    aggregates = {outcome.aggregate_cid for outcome in outcomes}
    finalized = consortium.owner.rounds_finalized(1)
    assert len(aggregates) == 1
    assert len(finalized) == 1
    assert str(finalized[0].cid) == outcomes[0].aggregate_cid
    assert all(outcome.final_cid == outcomes[0].aggregate_cid for outcome in outcomes)
    assert consortium.owner.current_round().round_id == 2
    assert consortium.owner.current_round().phase == Phase.OPEN
    for outcome in outcomes:
        assert outcome.excluded == ()
        assert outcome.gas_used > 0
        assert outcome.bytes_uploaded > 0
        assert len(outcome.model.customers.customer_ids) > 0
        assert set(outcome.phase_seconds) == {
            step.value for step in RoundStep if step != RoundStep.DONE
        }


def test_round_two_starts_from_round_one_model(
    consortium_builder: Callable[..., Consortium],
):
    consortium = consortium_builder()
    drivers = [merchant.driver() for merchant in consortium.merchants]
    first = run_concurrently([driver.run_round for driver in drivers])

    second = run_concurrently([driver.run_round for driver in drivers])

    opened = consortium.owner.rounds_opened(2)
    assert [outcome.round_id for outcome in second] == [2, 2, 2]
    assert str(opened[0].base_cid) == first[0].final_cid
    assert len({outcome.aggregate_cid for outcome in second}) == 1
    assert second[0].aggregate_cid != first[0].aggregate_cid


# -- bad updates -------------------------------------------------------------


def _honest_update(
    consortium: Consortium, merchant: Merchant, events: pd.DataFrame
) -> tuple[bytes, object]:
    with KuboClient(merchant.node.api_url) as ipfs:
        base = validate_shared_model(
            ipfs.cat(consortium.starter_cid, max_size=10_000_000)
        )
    local = compute_local_update(
        base,
        events,
        round_id=1,
        base_cid=consortium.starter_cid,
        merchant=merchant.account.address,
    )
    return update_to_bytes(local.update), local.update


def _crafted_update(kind: str, update: object) -> bytes:
    """Return update file bytes that break one validation rule."""
    from dataclasses import replace

    from merchant_app.federation.update_file import ModelUpdate

    assert isinstance(update, ModelUpdate)
    if kind == "nan":
        rhs = update.rhs.copy()
        rhs[0, 0] = np.nan
        return update_to_bytes(replace(update, rhs=rhs))
    if kind == "huge_norm":
        return update_to_bytes(
            replace(
                update,
                rhs=update.rhs * 1e12,
                lhs_packed=update.lhs_packed * 1e12,
            )
        )
    if kind == "wrong_shape":
        tensors = {
            "item_ids": update.item_ids,
            "item_customer_counts": update.customer_counts,
            "item_weights": update.weights.astype(np.float32),
            "item_rhs": np.zeros((len(update.item_ids), 3), np.float32),
            "item_lhs_packed": update.lhs_packed.astype(np.float32),
            "gram_packed": np.zeros(3, np.float32),
        }
        return dump_tensors(tensors, update.header.to_metadata())
    if kind == "pickle":
        return pickle.dumps({"item_ids": update.item_ids, "item_rhs": update.rhs})
    raise AssertionError(kind)


BAD_KINDS = ("nan", "huge_norm", "wrong_shape", "pickle")
# The validation rule each crafted file breaks first.
EXPECTED_RULES = {
    "nan": "non_finite",
    "huge_norm": "rhs",
    "wrong_shape": "shape",
    "pickle": "format",
}


def test_bad_updates_excluded_by_every_merchant(
    consortium_builder: Callable[..., Consortium], small_shops: Path
):
    consortium = consortium_builder(extra=len(BAD_KINDS))
    honest = consortium.merchants[: len(SHOPS)]
    attackers = consortium.merchants[len(SHOPS) :]
    events = load_events_csv(small_shops / "shop_0.csv")
    bad_cids = {}
    for kind, attacker in zip(BAD_KINDS, attackers, strict=True):
        _, update = _honest_update(consortium, attacker, events)
        with KuboClient(attacker.node.api_url) as ipfs:
            cid = ipfs.add_bytes(_crafted_update(kind, update), name=kind)
        attacker.contract().submit_update(1, cid, 100)
        bad_cids[cid] = kind

    outcomes = run_concurrently([merchant.driver().run_round for merchant in honest])

    assert len({outcome.aggregate_cid for outcome in outcomes}) == 1
    assert consortium.owner.rounds_finalized(1)
    for outcome in outcomes:
        excluded = {item.cid: item.reason for item in outcome.excluded}
        assert set(excluded) == set(bad_cids), outcome.excluded
        for cid, reason in excluded.items():
            assert reason.split(":")[0] == EXPECTED_RULES[bad_cids[cid]], reason
    reasons = [
        sorted((item.cid, item.reason.split(":")[0]) for item in outcome.excluded)
        for outcome in outcomes
    ]
    assert reasons[0] == reasons[1] == reasons[2]


# -- crashes -----------------------------------------------------------------


class CrashEveryPointOnce:
    """A step hook that crashes once at each (step, point) it reaches.

    A crash at one of the two points of a send ends that send, so the other
    point (``skipped``) is never reached and is left out.
    """

    def __init__(self, skipped: str) -> None:
        self.skipped = skipped
        self.crashed: list[tuple[RoundStep, str]] = []

    def __call__(self, step: RoundStep, point: str) -> None:
        if point == self.skipped:
            return
        if (step, point) not in self.crashed:
            self.crashed.append((step, point))
            raise SimulatedCrash(f"crash at {step} {point}")


def _run_until_done(merchant: Merchant, hook: CrashEveryPointOnce) -> RoundOutcome:
    restarts = 0
    while True:
        driver = merchant.driver(step_hook=hook)
        try:
            outcome = driver.run_round()
        except SimulatedCrash:
            restarts += 1
            assert restarts < 100
            continue
        finally:
            driver.state.close()
            driver.ipfs.close()
        return outcome


@pytest.mark.parametrize(
    ("send_point", "skipped"), [(HOOK_SENT, HOOK_PENDING), (HOOK_PENDING, HOOK_SENT)]
)
def test_crash_at_every_step_sends_each_transaction_once(
    consortium_builder: Callable[..., Consortium], send_point: str, skipped: str
):
    consortium = consortium_builder()
    # The lowest address has the first turn to propose, so it sends all three
    # kinds of transaction.
    merchants = sorted(
        consortium.merchants, key=lambda merchant: merchant.account.address.lower()
    )
    crashing, *others = merchants
    hook = CrashEveryPointOnce(skipped)
    jobs: list[Callable[[], RoundOutcome]] = [lambda: _run_until_done(crashing, hook)]
    jobs += [merchant.driver().run_round for merchant in others]

    outcomes = run_concurrently(jobs)

    address = crashing.account.address
    owner = consortium.owner
    own_events = [
        *(e for e in owner.updates_submitted(1) if e.member == address),
        *(e for e in owner.aggregates_proposed(1) if e.member == address),
        *(e for e in owner.aggregates_approved(1) if e.member == address),
        *(e for e in owner.rounds_closed(1) if e.closed_by == address),
    ]
    crashed_steps = {step for step, _ in hook.crashed}
    assert crashed_steps == {step for step in RoundStep if step != RoundStep.DONE}
    assert (RoundStep.SUBMIT, send_point) in hook.crashed
    assert (RoundStep.PROPOSE, send_point) in hook.crashed
    assert (RoundStep.APPROVE, send_point) in hook.crashed
    # The last submission also closes the round: two events, one transaction.
    own_transactions = {event.meta.tx_hash for event in own_events}
    assert len(crashing.sent) == len(set(crashing.sent))
    assert set(crashing.sent) == own_transactions
    assert len({outcome.aggregate_cid for outcome in outcomes}) == 1
    assert owner.rounds_finalized(1)
    w3 = owner.client.w3
    receipts = [w3.eth.get_transaction_receipt(tx) for tx in own_transactions]  # type: ignore[arg-type]
    assert outcomes[0].gas_used == sum(receipt["gasUsed"] for receipt in receipts)


def test_crash_after_submit_sent_does_not_resend(
    consortium_builder: Callable[..., Consortium],
):
    consortium = consortium_builder()
    merchant = consortium.merchants[0]

    def crash_after_send(step: RoundStep, point: str) -> None:
        if (step, point) == (RoundStep.SUBMIT, HOOK_SENT):
            raise SimulatedCrash("crash right after sending the submission")

    with pytest.raises(SimulatedCrash):
        merchant.driver(step_hook=crash_after_send).run_round()
    cancel = threading.Event()

    def stop_when_waiting(progress: RoundProgress) -> None:
        if progress.step == RoundStep.WAIT_CLOSED:
            cancel.set()

    with pytest.raises(Cancelled):
        merchant.driver(progress=stop_when_waiting, cancel=cancel).run_round()

    member = consortium.owner.member_state(merchant.account.address)
    with RoundStateStore.open(merchant.database) as state:
        stored = state.transaction(consortium.owner.address, 1, TxAction.SUBMIT)
    assert member.submitted_round == 1
    assert len(merchant.sent) == 1
    assert stored is not None
    assert stored.tx_hash == merchant.sent[0]
    assert stored.mined


# -- members that do not submit ------------------------------------------------


def test_round_without_one_member_finalizes_after_deadline(
    consortium_builder: Callable[..., Consortium], anvil_chain: AnvilChain
):
    consortium = consortium_builder(min_updates=2, threshold=2, round_seconds=600)
    active = consortium.merchants[:2]
    absent = consortium.merchants[2]
    results: list[RoundOutcome] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(merchant.driver().run_round) for merchant in active]
        _wait_for(lambda: consortium.owner.current_round().submitted_updates == 2)
        assert consortium.owner.current_round().phase == Phase.OPEN

        rpc(anvil_chain.rpc_url, "evm_increaseTime", 601)
        rpc(anvil_chain.rpc_url, "evm_mine")
        results = [future.result(timeout=120) for future in futures]

    closed = consortium.owner.rounds_closed(1)
    assert len(closed) == 1
    assert closed[0].submitted_updates == 2
    assert closed[0].closed_by in {merchant.account.address for merchant in active}
    assert consortium.owner.rounds_finalized(1)
    assert len({outcome.aggregate_cid for outcome in results}) == 1
    assert consortium.owner.member_state(absent.account.address).submitted_round == 0


def _wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    stop = threading.Event()
    waited = 0.0
    while not condition():
        assert waited < timeout, "condition not reached in time"
        stop.wait(0.1)
        waited += 0.1


# -- cancellation and logs --------------------------------------------------------


def test_driver_cancelled_while_waiting(
    consortium_builder: Callable[..., Consortium],
):
    consortium = consortium_builder()
    merchant = consortium.merchants[0]
    cancel = threading.Event()
    seen: list[RoundStep] = []

    def cancel_in_wait(progress: RoundProgress) -> None:
        seen.append(progress.step)
        if progress.step == RoundStep.WAIT_CLOSED:
            threading.Timer(0.3, cancel.set).start()

    with pytest.raises(Cancelled):
        merchant.driver(progress=cancel_in_wait, cancel=cancel).run_round()

    with RoundStateStore.open(merchant.database) as state:
        record = state.unfinished(consortium.owner.address)
    assert seen[-1] == RoundStep.WAIT_CLOSED
    assert record is not None
    assert record.step == RoundStep.WAIT_CLOSED


def test_hook_points_cover_a_step(consortium_builder: Callable[..., Consortium]):
    consortium = consortium_builder()
    points: list[tuple[RoundStep, str]] = []
    merchant = consortium.merchants[0]

    def record_and_stop(step: RoundStep, point: str) -> None:
        points.append((step, point))
        if step == RoundStep.WAIT_CLOSED:
            raise SimulatedCrash("stop before waiting")

    with pytest.raises(SimulatedCrash):
        merchant.driver(step_hook=record_and_stop).run_round()

    assert points[:2] == [
        (RoundStep.FETCH_BASE, HOOK_BEFORE),
        (RoundStep.FETCH_BASE, HOOK_AFTER),
    ]
    assert (RoundStep.SUBMIT, HOOK_SENT) in points


def test_driver_logs_round_cid_and_tx(
    consortium_builder: Callable[..., Consortium],
    caplog: pytest.LogCaptureFixture,
):
    consortium = consortium_builder()
    merchant = consortium.merchants[0]
    cancel = threading.Event()

    def stop_when_waiting(progress: RoundProgress) -> None:
        if progress.step == RoundStep.WAIT_CLOSED:
            cancel.set()

    with caplog.at_level(logging.INFO, logger="merchant_app.federation.driver"):
        with pytest.raises(Cancelled):
            merchant.driver(progress=stop_when_waiting, cancel=cancel).run_round()

    sent = [r.getMessage() for r in caplog.records if "sent by" in r.getMessage()]
    assert len(sent) == 1
    assert merchant.account.address in sent[0]
    assert merchant.sent[0] in sent[0]
    assert "round 1" in sent[0]
