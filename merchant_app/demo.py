"""``merchant-app demo``: a three-merchant consortium on this computer, Qt-free.

:class:`DemoConsortium` starts anvil and one Kubo node per merchant (a
private network), deploys the contract and opens round 1. The first
merchant is a profile under the data root whose key is kept in the OS
keyring; the window opens on it. The other two merchants take part
headless: each runs a round driver in its own thread with a throwaway key
held in memory, and follows the rounds the first merchant contributes to.
Closing the consortium cancels those drivers and stops every service it
started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pandas as pd
from eth_account.signers.local import LocalAccount
from keyring.backend import KeyringBackend

from merchant_app.chain.consortium import ConsortiumContract
from merchant_app.errors import AppError, Cancelled, InputDataError, WalletError
from merchant_app.federation.driver import (
    DriverSettings,
    RoundDriver,
    events_from_store,
)
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.round_state import RoundStateStore
from merchant_app.profiles import (
    OpenProfile,
    WalletSetup,
    create_profile,
    new_settings,
    open_profile,
    profile_paths,
)
from merchant_app.services.anvil import AnvilChain
from merchant_app.services.kubo import KuboNode
from merchant_app.services.kubo_config import generate_swarm_key
from merchant_app.settings import load_settings, save_settings
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
from merchant_app.store import EventStore
from merchant_app.wallet import MEMORY_STORAGE, Wallet

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SEED_SHOPS = PROJECT_ROOT.parent / "shared" / "data" / "seed-shops"
SAMPLE_SHOPS = PROJECT_ROOT / "ml_model" / "sample"
DEMO_PROFILE = "demo-shop"
DEMO_MERCHANTS = 3
# The simulate command's default, used when the demo runs without a window.
DEFAULT_ROUNDS = 10
# Long enough that rounds close because every member submitted, not by time.
DEMO_ROUND_SECONDS = 3600
# Seconds a headless merchant waits before it retries a round that failed.
RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class DemoData:
    """The folder the demo merchants come from, and how to describe it."""

    folder: Path
    csv_files: tuple[Path, ...]
    description: str


@dataclass(frozen=True)
class DemoOptions:
    """Options of one demo run; ``merchant-app demo --help`` explains them."""

    data: DemoData
    data_root: Path
    rounds: int = DEFAULT_ROUNDS
    round_seconds: int = DEMO_ROUND_SECONDS
    dimension: int = ConsortiumParameters().dimension
    driver_settings: DriverSettings = field(default_factory=DriverSettings)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise InputDataError(f"--rounds must be at least 1, got {self.rounds}")


def resolve_demo_data(data: Path | None) -> DemoData:
    """Pick the demo's CSV files: ``data``, else the seed shops, else the sample.

    Raises:
        InputDataError: when the folder contains fewer than three CSV files.
    """
    if data is not None:
        folder, origin = data, "the folder you gave"
    elif SEED_SHOPS.is_dir():
        folder, origin = SEED_SHOPS, "the seed shops"
    else:
        folder, origin = SAMPLE_SHOPS, "the generated sample (no seed shops found)"
    csv_files = tuple(sorted(folder.glob("*.csv")))[:DEMO_MERCHANTS]
    if len(csv_files) < DEMO_MERCHANTS:
        raise InputDataError(
            f"{folder} contains {len(csv_files)} CSV files; the demo needs "
            f"{DEMO_MERCHANTS}, one per merchant. Pass --data with a folder of "
            f"{DEMO_MERCHANTS} event files."
        )
    names = ", ".join(path.name for path in csv_files)
    return DemoData(folder, csv_files, f"{origin}: {names} in {folder}")


def has_display() -> bool:
    """Return whether a window can open: a display, or Qt's offscreen platform."""
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class HeadlessMerchant:
    """A merchant that runs rounds in its own thread until cancelled."""

    def __init__(
        self,
        name: str,
        driver: RoundDriver,
        *,
        rounds: int,
        cancel: threading.Event,
    ) -> None:
        self.name = name
        self.driver = driver
        self.rounds = rounds
        self.cancel = cancel
        self.finished_rounds: list[int] = []
        self.thread = threading.Thread(
            target=self._run, name=f"demo-merchant-{name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        while len(self.finished_rounds) < self.rounds and not self.cancel.is_set():
            try:
                outcome = self.driver.run_round()
            except Cancelled:
                return
            except AppError as exc:
                # The driver saved its step; the next run_round resumes it.
                logger.error("demo merchant %s: round failed: %s", self.name, exc)
                if self.cancel.wait(RETRY_SECONDS):
                    return
                continue
            self.finished_rounds.append(outcome.round_id)
            logger.info(
                "demo merchant %s finished round %d on %s",
                self.name,
                outcome.round_id,
                outcome.final_cid,
            )


class DemoConsortium:
    """Services, contract, the window's profile and two headless merchants.

    Use as a context manager: leaving it stops the headless merchants and
    every service it started, also after an error or Ctrl-C.
    """

    def __init__(
        self,
        options: DemoOptions,
        *,
        keyring_backend: KeyringBackend | None = None,
        output: Callable[[str], None] = print,
    ) -> None:
        self.options = options
        self.keyring_backend = keyring_backend
        self.output = output
        self.cancel = threading.Event()
        self.chain: AnvilChain | None = None
        self.nodes: list[KuboNode] = []
        self.profile: OpenProfile | None = None
        self.contract_address = ""
        self.headless: list[HeadlessMerchant] = []
        self.key_in_keyring = False
        self._stack = contextlib.ExitStack()
        self._workdir: Path | None = None

    def __enter__(self) -> DemoConsortium:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def service_pids(self) -> list[int]:
        """PIDs of the anvil and Kubo processes this demo started."""
        pids = [] if self.chain is None or self.chain.pid is None else [self.chain.pid]
        return pids + [node.pid for node in self.nodes if node.pid is not None]

    def start(self) -> None:
        """Start the services, deploy the contract and the merchants."""
        data = self.options.data
        self.output(f"Demo data: {data.description}")
        self._workdir = Path(tempfile.mkdtemp(prefix="merchant-demo-"))
        names = [path.stem for path in data.csv_files]

        # Services: one chain, one Kubo node per merchant, one private network.
        self.output("Starting anvil and one Kubo node per merchant…")
        self.chain = AnvilChain(self._workdir / "anvil" / "state.json")
        self._stack.callback(self.chain.stop)
        self.chain.start()
        swarm_key = generate_swarm_key()
        for name in names:
            node = KuboNode(self._workdir / name / "ipfs", swarm_key=swarm_key)
            self._stack.callback(node.stop)
            self.nodes.append(node)
            node.start()
        connect_nodes(self.nodes)

        # Keys: the window's merchant from the keyring, the others throwaway.
        gui_wallet = self._open_or_create_profile(names[0])
        accounts = [gui_wallet.local_account, *create_throwaway_accounts(2)]
        # On chain the window's merchant has the profile's name, as in the window.
        contracts = self._deploy([DEMO_PROFILE, *names[1:]], accounts)
        self._open_gui_profile(names[0], gui_wallet)
        self._start_headless(names[1:], contracts[1:])
        self.output(
            f"Consortium {self.contract_address} is ready: {DEMO_PROFILE} "
            f"({names[0]}) in the window, {', '.join(names[1:])} headless."
        )

    def close(self) -> None:
        """Stop the headless merchants, close the profile, stop the services."""
        self.cancel.set()
        for merchant in self.headless:
            merchant.join()
        if self.profile is not None:
            self.profile.close()
        self._stack.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- steps -----------------------------------------------------------

    def _open_or_create_profile(self, first_name: str) -> Wallet:
        """Return the window merchant's wallet, from the keyring if possible."""
        root = self.options.data_root
        paths = profile_paths(root, DEMO_PROFILE)
        try:
            if not paths.folder.exists():
                create_profile(
                    root,
                    new_settings(DEMO_PROFILE),
                    WalletSetup(kind="create"),
                    keyring_backend=self.keyring_backend,
                )
            profile = open_profile(
                root, DEMO_PROFILE, keyring_backend=self.keyring_backend
            )
        except WalletError as exc:
            logger.warning("demo profile key not in the keyring: %s", exc)
            self.output(
                "No usable OS keyring was found, so the demo uses a throwaway key "
                "held in memory for this run, in a temporary profile that is "
                "deleted when the demo ends."
            )
            return Wallet(create_throwaway_accounts(1)[0], storage=MEMORY_STORAGE)
        self.key_in_keyring = True
        wallet = profile.wallet
        profile.close()
        self.output(
            f"{first_name} is the profile {DEMO_PROFILE} in {root}; its key is "
            "in the OS keyring."
        )
        return wallet

    def _deploy(
        self, names: list[str], accounts: list[LocalAccount]
    ) -> list[ConsortiumContract]:
        assert self.chain is not None
        funder = chain_client(
            self.chain.rpc_url,
            self.chain.chain_id,
            self.chain.dev_accounts()[0],
            receipt_timeout=60.0,
        )
        # A fresh owner key gives a new contract address on every run, so a
        # returning demo profile never finds round state of another contract.
        owner_account = create_throwaway_accounts(1)[0]
        fund_accounts(funder, [owner_account, *accounts], amount_wei=FUNDING_WEI)
        owner = chain_client(
            self.chain.rpc_url, self.chain.chain_id, owner_account, receipt_timeout=60.0
        )
        parameters = ConsortiumParameters(dimension=self.options.dimension)
        with self.nodes[0].client() as ipfs:
            starter_cid = publish_starter_model(ipfs, parameters)
        members = [
            MemberSpec(name, account, node)
            for name, account, node in zip(names, accounts, self.nodes, strict=True)
        ]
        owner_contract, bound = deploy_consortium(
            owner,
            members,
            min_updates=len(members),
            approval_threshold=len(members),
            round_seconds=self.options.round_seconds,
            starter_cid=starter_cid,
        )
        self.contract_address = owner_contract.address
        return bound

    def _open_gui_profile(self, name: str, wallet: Wallet) -> None:
        assert self.chain is not None
        if self.key_in_keyring:
            root = self.options.data_root
        else:
            assert self._workdir is not None
            root = self._workdir / "profiles"
        paths = profile_paths(root, DEMO_PROFILE)
        if not self.key_in_keyring:
            paths.folder.mkdir(parents=True)
            save_settings(paths.settings, new_settings(DEMO_PROFILE))
        settings = load_settings(paths.settings).replace(
            chain_rpc_url=self.chain.rpc_url,
            chain_id=self.chain.chain_id,
            contract_address=self.contract_address,
            kubo_api_url=self.nodes[0].api_url,
        )
        save_settings(paths.settings, settings)
        if self.key_in_keyring:
            profile = open_profile(
                root, DEMO_PROFILE, keyring_backend=self.keyring_backend
            )
        else:
            paths.model_folder.mkdir(exist_ok=True)
            profile = OpenProfile(
                settings=settings,
                paths=paths,
                store=EventStore.open(paths.store),
                wallet=wallet,
                data_root=root,
            )
        self.profile = profile
        csv_file = self.options.data.csv_files[0]
        report = profile.store.import_csv(csv_file)
        logger.info(
            "demo profile: %s imported, %d events added", csv_file, report.rows_added
        )

    def _start_headless(
        self, names: list[str], contracts: list[ConsortiumContract]
    ) -> None:
        assert self._workdir is not None
        no_pairs = pd.DataFrame({"user_id": [], "product_id": []})
        for index, (name, contract) in enumerate(
            zip(names, contracts, strict=True), start=1
        ):
            database = self._workdir / name / "merchant.sqlite"
            csv_file = self.options.data.csv_files[index]
            store = open_merchant_store(database, csv_file, no_pairs)
            self._stack.callback(store.close)
            state = RoundStateStore.open(database)
            self._stack.callback(state.close)
            ipfs = self.nodes[index].client()
            self._stack.callback(ipfs.close)
            driver = RoundDriver(
                contract=contract,
                ipfs=ipfs,
                state=state,
                training_events=events_from_store(store),
                settings=self.options.driver_settings,
                cancel=self.cancel,
            )
            merchant = HeadlessMerchant(
                name, driver, rounds=self.options.rounds, cancel=self.cancel
            )
            self.headless.append(merchant)
            merchant.start()
