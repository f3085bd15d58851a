"""A profile's part in the consortium rounds: preview, run, apply, measure.

The Contribute screen calls these blocking functions from its worker pool.
:func:`preview_contribution` computes this merchant's update for the running
round without sending anything, so the screen can show what would leave the
device. :func:`run_contribution` takes the merchant through one round with
:class:`~merchant_app.federation.driver.RoundDriver`, saves the final model in
the profile (the Recommendations screen then uses it) and records the model's
HR@10 and NDCG@10 on a held-out split of the merchant's own events.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

import pandas as pd
from web3 import Web3

from merchant_app.chain.artifact import load_artifact
from merchant_app.chain.client import ChainClient
from merchant_app.chain.consortium import ConsortiumContract, Phase
from merchant_app.errors import AppError, Cancelled, ChainError, ConfigError
from merchant_app.federation.driver import (
    DriverSettings,
    RoundDriver,
    RoundOutcome,
    RoundProgress,
)
from merchant_app.federation.local_update import (
    compute_local_update,
    refit_local_customers,
)
from merchant_app.federation.round_state import (
    RoundRecord,
    RoundStateStore,
    TxRecord,
)
from merchant_app.federation.shared_model import SharedModel
from merchant_app.federation.update_file import UPDATE_TENSORS, update_to_bytes
from merchant_app.federation.validation import validate_shared_model
from merchant_app.ipfs import KuboClient
from merchant_app.local_model import CUSTOMER_FILE, ITEM_FILE, read_events
from merchant_app.recommender.als import TrainingProgress
from merchant_app.recommender.evaluation import score_merchant, split_hold_one_out
from merchant_app.recommender.io import save_customer_factors, save_item_factors
from merchant_app.settings import Settings
from merchant_app.tensor_files import read_header
from merchant_app.wallet import Wallet

logger = logging.getLogger(__name__)

METRICS_FILE = "round_metrics.json"
TRAINING_COLUMNS = ["user_id", "product_id", "event_type"]
RECEIPT_TIMEOUT_SECONDS = 120.0
# Axis names of UPDATE_TENSORS that would count customers. None exists today;
# the preview checks the written file against this rule, not a fixed sentence.
CUSTOMER_AXES = frozenset({"customers", "customer"})


@dataclass(frozen=True)
class ContributionPreview:
    """What this merchant's update for ``round_id`` contains, computed locally.

    ``rows_used`` counts the included events (the rows the update is computed
    from), ``customers`` the customers solved on this device, ``products`` the
    products the update covers, ``single_customer_products`` those of them
    that only one customer interacted with (their rows reveal that customer's
    factor, see docs/privacy.md). ``tensor_names`` are the tensors of the file
    and ``unexpected_tensors`` those the update format does not allow, or
    that have a customer axis; the file is per-product only when it is empty.
    """

    round_id: int
    base_cid: str
    rows_used: int
    customers: int
    products: int
    single_customer_products: int
    update_bytes: int
    tensor_names: tuple[str, ...]
    metadata_keys: tuple[str, ...]
    unexpected_tensors: tuple[str, ...]
    resumes_step: str | None

    @property
    def per_product_only(self) -> bool:
        """Whether every tensor is an allowed per-product or matrix tensor."""
        return not self.unexpected_tensors


@dataclass(frozen=True)
class RoundSnapshot:
    """One progress report of a running round, with the saved state so far."""

    progress: RoundProgress
    record: RoundRecord | None
    transactions: tuple[TxRecord, ...]


@dataclass(frozen=True)
class RoundMetrics:
    """HR@10 and NDCG@10 of the model after a final round, on own data.

    Measured on one held-out product per customer with at least two distinct
    products (the evaluation protocol's rule), among this merchant's
    products. The customer factors are refitted without the held-out pairs,
    but the shared item factors were trained with them, so the numbers are
    optimistic.
    """

    contract: str
    round_id: int
    final_cid: str
    hr10: float
    ndcg10: float
    test_customers: int


@dataclass(frozen=True)
class ContributionResult:
    """A finished round as the profile applied it."""

    outcome: RoundOutcome
    metrics: RoundMetrics | None
    transactions: tuple[TxRecord, ...]
    record: RoundRecord | None


def readiness_problem(settings: Settings) -> str | None:
    """Return why this profile cannot take part in rounds, or None when it can."""
    if not settings.has_contract:
        return (
            "No consortium contract is configured. Enter its address in the Wallet tab."
        )
    if settings.kubo_api_url is None:
        # Callers pass OpenProfile.connection_settings(), which contains the
        # URL of the local node while it runs.
        return (
            "The local IPFS node is not running. Its status is in the Wallet "
            "tab, where you can also enter the Kubo API URL of another node."
        )
    return None


def contract_address(settings: Settings) -> str:
    """Return the configured contract address in checksum form."""
    return str(Web3.to_checksum_address(settings.contract_address))


def metrics_path(profile_folder: Path) -> Path:
    """Return the file of the profile's per-round metrics."""
    return profile_folder / METRICS_FILE


class ProfileConsortium:
    """The clients one profile needs for a round: signing contract, IPFS, state.

    Opened per task and closed when the task ends; the clients are not shared
    between threads.
    """

    def __init__(
        self,
        settings: Settings,
        wallet: Wallet,
        store_path: Path,
        *,
        driver_settings: DriverSettings | None = None,
        peer_address: str | None = None,
    ) -> None:
        problem = readiness_problem(settings)
        if problem is not None:
            raise ConfigError(
                f"profile {settings.name} cannot run rounds: {problem}",
                user_message=problem,
            )
        assert settings.kubo_api_url is not None
        self.settings = settings
        self.store_path = store_path
        self.driver_settings = driver_settings or DriverSettings()
        client = ChainClient(
            settings.chain_rpc_url,
            expected_chain_id=settings.chain_id,
            account=wallet.local_account,
            abi=load_artifact("Consortium").abi,
            receipt_timeout=RECEIPT_TIMEOUT_SECONDS,
        )
        self.contract = ConsortiumContract(client, settings.contract_address)
        self.ipfs = KuboClient(settings.kubo_api_url)
        self.state = RoundStateStore.open(store_path)
        self.address = wallet.address
        # The local node's address that run_contribution publishes; None when
        # the profile uses a node it did not start.
        self.peer_address = peer_address

    def close(self) -> None:
        """Close the IPFS client and the round state connection."""
        self.ipfs.close()
        self.state.close()

    def __enter__(self) -> ProfileConsortium:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def training_events(self) -> pd.DataFrame:
        """Read the included events through a read-only connection."""
        return read_events(self.store_path)[TRAINING_COLUMNS]

    def unfinished(self) -> RoundRecord | None:
        """Return the saved round the driver has not finished, if any."""
        return self.state.unfinished(self.contract.address)


def unfinished_round(settings: Settings, store_path: Path) -> RoundRecord | None:
    """Return the profile's unfinished round of its contract, or None."""
    if not settings.has_contract:
        return None
    with RoundStateStore.open(store_path) as state:
        return state.unfinished(contract_address(settings))


def preview_contribution(
    consortium: ProfileConsortium, cancel: threading.Event | None = None
) -> ContributionPreview:
    """Compute the update this merchant would send now; nothing is sent.

    The round is the unfinished one saved in the profile, else the one open
    on chain. The update is computed exactly as the driver computes it, so
    its size is the size the driver uploads.

    Raises:
        ChainError: when this account is not a member or the consortium has no
            open round.
        IpfsError: when the base model cannot be fetched.
        ModelError: when there are no events to compute an update from.
    """
    member = consortium.contract.member_state(consortium.address)
    if not member.is_member:
        raise ChainError(
            f"{consortium.address} is not a member of {consortium.contract.address}",
            user_message=(
                f"This account ({consortium.address}) is not a member of the "
                "consortium. Ask the consortium's organiser to add it."
            ),
        )
    round_id, base_cid, resumes = _round_to_preview(consortium)
    limits = consortium.driver_settings.limits
    data = consortium.ipfs.cat(
        base_cid,
        max_size=limits.max_file_bytes,
        timeout=consortium.driver_settings.fetch_timeout,
    )
    base = validate_shared_model(data, limits=limits)
    if cancel is not None and cancel.is_set():
        raise Cancelled("preview cancelled")

    events = consortium.training_events()
    local = compute_local_update(
        base,
        events,
        round_id=round_id,
        base_cid=base_cid,
        merchant=consortium.address,
        min_customers=consortium.driver_settings.min_customers,
    )
    update_bytes = update_to_bytes(local.update)
    header = read_header(update_bytes)
    tensor_names = tuple(sorted(name for name in header if name != "__metadata__"))
    metadata = json.loads(next(iter(header.get("__metadata__", {}).values()), "{}"))
    preview = ContributionPreview(
        round_id=round_id,
        base_cid=base_cid,
        rows_used=len(events),
        customers=len(local.customers.customer_ids),
        products=len(local.update.item_ids),
        single_customer_products=int((local.update.customer_counts == 1).sum()),
        update_bytes=len(update_bytes),
        tensor_names=tensor_names,
        metadata_keys=tuple(sorted(metadata)),
        unexpected_tensors=_unexpected_tensors(tensor_names),
        resumes_step=None if resumes is None else resumes.step.value,
    )
    logger.info(
        "contribution preview for round %d of %s: %d rows, %d products, %d bytes",
        round_id,
        consortium.contract.address,
        preview.rows_used,
        preview.products,
        preview.update_bytes,
    )
    return preview


def run_contribution(
    consortium: ProfileConsortium,
    model_folder: Path,
    *,
    report: Callable[[RoundSnapshot | TrainingProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> ContributionResult:
    """Run (or resume) one round, save the final model and record its metrics.

    Raises:
        Cancelled: when ``cancel`` is set; the round resumes on the next call.
        ChainError, IpfsError, ModelError: as :meth:`RoundDriver.run_round`.
    """
    state = consortium.state
    contract = consortium.contract.address

    def progress(value: RoundProgress) -> None:
        if report is None:
            return
        record = state.load(contract, value.round_id)
        transactions = tuple(state.transactions(contract, value.round_id))
        report(RoundSnapshot(value, record, transactions))

    publish_peer_address(consortium)
    driver = RoundDriver(
        contract=consortium.contract,
        ipfs=consortium.ipfs,
        state=state,
        training_events=consortium.training_events,
        settings=consortium.driver_settings,
        progress=progress,
        # The train step's loss reports (customers fitted, loss per customer).
        training_progress=report,
        cancel=cancel,
    )
    outcome = driver.run_round()
    apply_model(outcome, model_folder)
    metrics = _measure_quietly(consortium, outcome)
    record = state.load(contract, outcome.round_id)
    transactions = tuple(state.transactions(contract, outcome.round_id))
    return ContributionResult(outcome, metrics, transactions, record)


def publish_peer_address(consortium: ProfileConsortium) -> None:
    """Set this member's peer address on the contract when it changed.

    Other members' drivers connect to the published address to fetch this
    merchant's files. Nothing is sent without a local node's address, or when
    the contract already has it, so a resumed round sends no extra
    transaction.
    """
    address = consortium.peer_address
    if address is None:
        return
    members = {member.address: member for member in consortium.contract.members()}
    own = members.get(consortium.address)
    if own is None or own.peer_address == address:
        # A non-member cannot set an address; the driver reports that.
        return
    consortium.contract.set_peer_address(address)
    logger.info("peer address of %s set to %s", consortium.address, address)


def apply_model(outcome: RoundOutcome, model_folder: Path) -> None:
    """Save the round's refitted model as the profile's model."""
    model_folder.mkdir(parents=True, exist_ok=True)
    save_item_factors(model_folder / ITEM_FILE, outcome.model.items)
    save_customer_factors(model_folder / CUSTOMER_FILE, outcome.model.customers)
    logger.info(
        "model of round %d (%s) applied in %s",
        outcome.round_id,
        outcome.final_cid,
        model_folder,
    )


def measure_round(
    final: SharedModel,
    events: pd.DataFrame,
    *,
    contract: str,
    round_id: int,
    final_cid: str,
) -> RoundMetrics:
    """Score ``final`` on a hold-one-out split of this merchant's ``events``.

    The customer factors are refitted on the training part only; the held-out
    product of each customer is ranked among the merchant's products.
    """
    name = "own"
    split = split_hold_one_out({name: events})
    model = refit_local_customers(final, split.train[name])
    score = score_merchant(name, model, split)
    return RoundMetrics(
        contract=contract,
        round_id=round_id,
        final_cid=final_cid,
        hr10=score.hr10,
        ndcg10=score.ndcg10,
        test_customers=score.test_customers,
    )


def load_metrics(path: Path, contract: str | None = None) -> list[RoundMetrics]:
    """Return the recorded metrics in round order, of ``contract`` if given.

    A damaged file is logged and read as empty, because the metrics are a
    record for the chart and the next round writes them again.
    """
    if not path.exists():
        return []
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = [RoundMetrics(**entry) for entry in document["rounds"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("round metrics in %s cannot be read: %s", path, exc)
        return []
    if contract is not None:
        entries = [entry for entry in entries if entry.contract == contract]
    return sorted(entries, key=lambda entry: (entry.contract, entry.round_id))


def record_metrics(path: Path, metrics: RoundMetrics) -> None:
    """Add or replace the metrics of one round in the profile's metrics file."""
    entries = [
        entry
        for entry in load_metrics(path)
        if (entry.contract, entry.round_id) != (metrics.contract, metrics.round_id)
    ]
    entries.append(metrics)
    entries.sort(key=lambda entry: (entry.contract, entry.round_id))
    document = {"rounds": [asdict(entry) for entry in entries]}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    logger.info(
        "round %d metrics recorded: HR@10 %.4f, NDCG@10 %.4f",
        metrics.round_id,
        metrics.hr10,
        metrics.ndcg10,
    )


def _round_to_preview(
    consortium: ProfileConsortium,
) -> tuple[int, str, RoundRecord | None]:
    unfinished = consortium.unfinished()
    if unfinished is not None:
        return unfinished.round_id, unfinished.base_cid, unfinished
    running = consortium.contract.current_round()
    if running.phase == Phase.NOT_STARTED:
        raise ChainError(
            f"the consortium {consortium.contract.address} has not opened round 1",
            user_message="The consortium has not started its first round.",
        )
    opened = consortium.contract.rounds_opened(running.round_id)
    if not opened:
        raise ChainError(f"no RoundOpened event for round {running.round_id}")
    return running.round_id, str(opened[-1].base_cid), None


def _unexpected_tensors(names: tuple[str, ...]) -> tuple[str, ...]:
    unexpected = []
    for name in names:
        spec = UPDATE_TENSORS.get(name)
        if spec is None or CUSTOMER_AXES.intersection(spec.axes):
            unexpected.append(name)
    return tuple(unexpected)


def _measure_quietly(
    consortium: ProfileConsortium, outcome: RoundOutcome
) -> RoundMetrics | None:
    """Measure and record the round's metrics; a failure is logged, not raised.

    The model is applied already, so a failed measurement loses only a point
    of the chart.
    """
    limits = consortium.driver_settings.limits
    try:
        data = consortium.ipfs.cat(
            outcome.final_cid,
            max_size=limits.max_file_bytes,
            timeout=consortium.driver_settings.fetch_timeout,
        )
        final = validate_shared_model(data, limits=limits)
        metrics = measure_round(
            final,
            consortium.training_events(),
            contract=consortium.contract.address,
            round_id=outcome.round_id,
            final_cid=outcome.final_cid,
        )
        record_metrics(metrics_path(consortium.store_path.parent), metrics)
    except (AppError, OSError) as exc:
        logger.warning("round %d metrics not recorded: %s", outcome.round_id, exc)
        return None
    return metrics
