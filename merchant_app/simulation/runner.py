"""Run a consortium of merchants on one computer with real services.

One anvil chain, one Kubo node per merchant (a private network, the nodes
connected to each other) and one merchant per CSV file, each with its own
SQLite store, throwaway key and round driver. Merchants run concurrently,
one thread each, and every round goes through IPFS and the contract.

After each round the runner scores every merchant's refitted model with the
evaluation protocol and checks that all merchants computed the same
aggregate CID.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from eth_account.signers.local import LocalAccount

from merchant_app.chain.consortium import ConsortiumContract
from merchant_app.errors import Cancelled, InputDataError, ModelError
from merchant_app.federation.driver import (
    DriverSettings,
    RoundDriver,
    RoundOutcome,
    events_from_store,
)
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.round_state import RoundStateStore
from merchant_app.ipfs import KuboClient
from merchant_app.recommender.als import config_for_mode, train_als
from merchant_app.recommender.dataset import build_interactions, load_merchant_folder
from merchant_app.recommender.evaluation import (
    HoldOutSplit,
    RankingModel,
    evaluate_central,
    evaluate_local,
    score_merchant,
    split_hold_one_out,
)
from merchant_app.services.anvil import AnvilChain
from merchant_app.services.kubo import KuboNode
from merchant_app.services.kubo_config import generate_swarm_key
from merchant_app.simulation.consortium_setup import (
    FUNDING_WEI,
    MemberSpec,
    chain_client,
    connect_nodes,
    create_throwaway_accounts,
    deploy_consortium,
    fund_accounts,
    publish_starter_model,
)
from merchant_app.simulation.merchant_data import open_merchant_store
from merchant_app.simulation.report import (
    SimulationReport,
    baseline_entries,
    format_baselines,
    format_round_table,
    merchant_entry,
)

logger = logging.getLogger(__name__)

# Seconds between checks of the worker threads, so Ctrl-C is noticed.
_JOIN_INTERVAL = 0.5


@dataclass(frozen=True)
class SimulationOptions:
    """Options of one simulation run; ``merchant-app simulate --help`` explains them."""

    data: Path
    rounds: int
    report: Path
    workdir: Path | None = None
    round_seconds: int = 300
    min_customers: int = 1
    dimension: int = ConsortiumParameters().dimension
    poll_interval: float = 0.2
    wait_timeout: float = 900.0
    receipt_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise InputDataError(f"--rounds must be at least 1, got {self.rounds}")
        if self.round_seconds < 1:
            raise InputDataError(
                f"--round-seconds must be at least 1, got {self.round_seconds}"
            )
        if self.min_customers < 1:
            raise InputDataError(
                f"--min-customers must be at least 1, got {self.min_customers}"
            )


@dataclass
class SimulatedMerchant:
    """One merchant of the run: its data, key, node and driver."""

    name: str
    account: LocalAccount
    node: KuboNode
    ipfs: KuboClient
    contract: ConsortiumContract
    driver: RoundDriver


def run_simulation(
    options: SimulationOptions,
    *,
    cancel: threading.Event | None = None,
    output: Callable[[str], None] = print,
) -> SimulationReport:
    """Run the simulation, write the report after every round and return it.

    Raises:
        InputDataError: when the data folder contains fewer than two CSV files.
        ModelError: when the merchants computed different aggregates.
        Cancelled: when ``cancel`` is set (Ctrl-C sets it too).
    """
    cancel = cancel or threading.Event()
    frames = load_merchant_folder(options.data)
    if len(frames) < 2:
        raise InputDataError(
            f"{options.data} contains {len(frames)} CSV file; a consortium needs "
            f"at least two, one per merchant"
        )
    csv_files = {path.stem: path for path in options.data.glob("*.csv")}
    split = split_hold_one_out(frames)
    _limit_torch_threads(len(frames))

    report = SimulationReport()
    output("Computing baselines on the same hold-out split...")
    report.baselines = compute_baselines(split)
    output(format_baselines(report.baselines))

    with contextlib.ExitStack() as stack:
        workdir = _workdir(options, stack)
        merchants = _start_consortium(options, split, csv_files, workdir, cancel, stack)
        for round_number in range(1, options.rounds + 1):
            started = time.monotonic()
            outcomes = run_round_concurrently(merchants, cancel)
            wall_seconds = time.monotonic() - started
            entry = _round_entry(round_number, merchants, outcomes, split)
            entry["wall_seconds"] = round(wall_seconds, 3)
            report.rounds.append(entry)
            report.write(options.report)
            output(format_round_table(entry))
    return report


def compute_baselines(split: HoldOutSplit) -> dict[str, list[dict[str, object]]]:
    """Score local-only models and one central model on ``split``."""

    def trainer(mode: str) -> Callable[[pd.DataFrame], RankingModel]:
        config = config_for_mode(mode)
        return lambda events: train_als(build_interactions(events), config)

    local = evaluate_local(split, trainer("local"))
    central = evaluate_central(split, trainer("central"))
    return {"local": baseline_entries(local), "central": baseline_entries(central)}


def run_round_concurrently(
    merchants: list[SimulatedMerchant], cancel: threading.Event
) -> list[RoundOutcome]:
    """Run one round on every merchant, one thread each; return the outcomes.

    When one merchant fails, ``cancel`` stops the others and the first error
    is raised.

    Raises:
        ModelError: when the merchants computed different aggregate CIDs.
    """
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=len(merchants), thread_name_prefix="merchant"
    ) as pool:
        futures = [pool.submit(merchant.driver.run_round) for merchant in merchants]
        try:
            _wait_all(futures, cancel)
        except BaseException:
            cancel.set()
            raise
    outcomes = [future.result() for future in futures]
    check_same_aggregate(merchants, outcomes)
    return outcomes


def check_same_aggregate(
    merchants: list[SimulatedMerchant], outcomes: list[RoundOutcome]
) -> None:
    """Raise ModelError unless every merchant computed the same aggregate CID."""
    computed = {
        merchant.name: outcome.aggregate_cid
        for merchant, outcome in zip(merchants, outcomes, strict=True)
    }
    if len(set(computed.values())) != 1:
        raise ModelError(
            f"round {outcomes[0].round_id}: merchants computed different "
            f"aggregates: {computed}",
            user_message="The merchants did not agree on the aggregate model.",
        )


def _wait_all(
    futures: list[concurrent.futures.Future[RoundOutcome]], cancel: threading.Event
) -> None:
    pending = set(futures)
    while pending:
        done, pending = concurrent.futures.wait(
            pending,
            timeout=_JOIN_INTERVAL,
            return_when=concurrent.futures.FIRST_EXCEPTION,
        )
        for future in done:
            error = future.exception()
            if error is None:
                continue
            if not isinstance(error, Cancelled):
                logger.error("a merchant's round failed: %s", error)
            cancel.set()
            concurrent.futures.wait(pending)
            raise error


def _round_entry(
    round_number: int,
    merchants: list[SimulatedMerchant],
    outcomes: list[RoundOutcome],
    split: HoldOutSplit,
) -> dict[str, object]:
    entries = []
    for merchant, outcome in zip(merchants, outcomes, strict=True):
        score = score_merchant(merchant.name, outcome.model, split)
        entries.append(
            merchant_entry(merchant.name, merchant.account.address, score, outcome)
        )
    return {"round": round_number, "merchants": entries}


def _start_consortium(
    options: SimulationOptions,
    split: HoldOutSplit,
    csv_files: dict[str, Path],
    workdir: Path,
    cancel: threading.Event,
    stack: contextlib.ExitStack,
) -> list[SimulatedMerchant]:
    names = list(split.train)

    # Services: one chain, one node per merchant in one private network.
    chain = AnvilChain(workdir / "anvil" / "state.json")
    stack.enter_context(chain)
    swarm_key = generate_swarm_key()
    nodes = []
    for name in names:
        node = KuboNode(workdir / name / "ipfs", swarm_key=swarm_key)
        stack.enter_context(node)
        nodes.append(node)
    connect_nodes(nodes)

    # Keys: the owner is anvil's first account, members get throwaway keys.
    owner_account = chain.dev_accounts()[0]
    owner = chain_client(
        chain.rpc_url,
        chain.chain_id,
        owner_account,
        receipt_timeout=options.receipt_timeout,
    )
    accounts = create_throwaway_accounts(len(names))
    fund_accounts(owner, accounts, amount_wei=FUNDING_WEI)

    # Contract and round 1 on the deterministic starter model.
    parameters = ConsortiumParameters(dimension=options.dimension)
    starter_ipfs = stack.enter_context(nodes[0].client())
    starter_cid = publish_starter_model(starter_ipfs, parameters)
    members = [
        MemberSpec(name, account, node)
        for name, account, node in zip(names, accounts, nodes, strict=True)
    ]
    _, bound = deploy_consortium(
        owner,
        members,
        min_updates=len(names),
        approval_threshold=len(names),
        round_seconds=options.round_seconds,
        starter_cid=starter_cid,
        receipt_timeout=options.receipt_timeout,
    )

    # Merchants: store, round state and driver each.
    held_out = pd.concat(list(split.test.values()), ignore_index=True)
    settings = DriverSettings(
        poll_interval=options.poll_interval,
        min_customers=options.min_customers,
        wait_timeout=options.wait_timeout,
    )
    merchants = []
    for member, contract in zip(members, bound, strict=True):
        database = workdir / member.name / "merchant.sqlite"
        store = open_merchant_store(database, csv_files[member.name], held_out)
        stack.callback(store.close)
        state = RoundStateStore.open(database)
        stack.callback(state.close)
        ipfs = stack.enter_context(member.node.client())
        driver = RoundDriver(
            contract=contract,
            ipfs=ipfs,
            state=state,
            training_events=events_from_store(store),
            settings=settings,
            cancel=cancel,
        )
        merchants.append(
            SimulatedMerchant(
                member.name, member.account, member.node, ipfs, contract, driver
            )
        )
    return merchants


def _workdir(options: SimulationOptions, stack: contextlib.ExitStack) -> Path:
    if options.workdir is not None:
        options.workdir.mkdir(parents=True, exist_ok=True)
        return options.workdir
    return Path(stack.enter_context(_temporary_folder()))


@contextlib.contextmanager
def _temporary_folder() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="merchant-sim-") as folder:
        yield folder


def _limit_torch_threads(merchants: int) -> None:
    # Each merchant trains in its own thread; more torch threads than cores
    # in total only adds contention.
    threads = max(1, (os.cpu_count() or 1) // merchants)
    torch.set_num_threads(threads)
    logger.info("torch uses %d threads per operation", threads)
