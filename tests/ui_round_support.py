"""A small real consortium around a GUI profile, for the round screens' tests.

The profile's merchant and two headless merchants share the session's anvil
node; each merchant has its own Kubo node. The event files are the generated
sample cut to :data:`SAMPLE_ROWS` rows each, so a round takes seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from eth_account.signers.local import LocalAccount
from pytestqt.qtbot import QtBot

from merchant_app.chain.consortium import ConsortiumContract
from merchant_app.demo import HeadlessMerchant
from merchant_app.federation.driver import (
    DriverSettings,
    RoundDriver,
    events_from_store,
)
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.round_state import RoundStateStore
from merchant_app.ipfs import KuboClient
from merchant_app.profiles import OpenProfile
from merchant_app.services.anvil import AnvilChain
from merchant_app.services.kubo import KuboNode
from merchant_app.settings import save_settings
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
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.main_window import MainWindow
from tests.fixtures.ipfs import KuboNodeFactory
from tests.fixtures.ui import QUICK_TRAINING

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_FOLDER = PROJECT_ROOT / "ml_model" / "sample"
SAMPLE_ROWS = 1000
# Short polls and a bounded wait, so a broken round fails the test in minutes.
FAST = DriverSettings(
    poll_interval=0.05, fetch_timeout=20.0, wait_timeout=120.0, proposal_stagger=0.2
)
PARAMETERS = ConsortiumParameters(dimension=8)
WAIT_MS = 180_000


def cut_sample(folder: Path) -> list[Path]:
    """Write the first SAMPLE_ROWS rows of each sample shop into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for source in sorted(SAMPLE_FOLDER.glob("*.csv")):
        lines = source.read_text().splitlines()[: SAMPLE_ROWS + 1]
        target = folder / source.name
        target.write_text("\n".join(lines) + "\n")
        files.append(target)
    return files


@dataclass
class RoundConsortium:
    """The deployed contract, the profile's member and two headless members."""

    contract_address: str
    owner: ConsortiumContract
    profile_contract: ConsortiumContract
    headless_contracts: list[ConsortiumContract]
    headless_accounts: list[LocalAccount]
    nodes: list[KuboNode]
    csv_files: list[Path]
    workdir: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    headless: list[HeadlessMerchant] = field(default_factory=list)
    _closers: list[object] = field(default_factory=list)

    def start_headless(self, rounds: int = 1) -> list[HeadlessMerchant]:
        """Start the two headless merchants' drivers in their threads."""
        no_pairs = pd.DataFrame({"user_id": [], "product_id": []})
        for index, contract in enumerate(self.headless_contracts, start=1):
            database = self.workdir / f"headless-{index}.sqlite"
            store = open_merchant_store(database, self.csv_files[index], no_pairs)
            state = RoundStateStore.open(database)
            ipfs = KuboClient(self.nodes[index].api_url)
            self._closers.extend([store, state, ipfs])
            driver = RoundDriver(
                contract=contract,
                ipfs=ipfs,
                state=state,
                training_events=events_from_store(store),
                settings=FAST,
                cancel=self.cancel,
            )
            merchant = HeadlessMerchant(
                f"headless-{index}", driver, rounds=rounds, cancel=self.cancel
            )
            merchant.start()
            self.headless.append(merchant)
        return self.headless

    def stop(self) -> None:
        """Cancel and join the headless merchants, close their files."""
        self.cancel.set()
        for merchant in self.headless:
            merchant.join(60)
        for closer in self._closers:
            closer.close()  # type: ignore[attr-defined]


def build_round_consortium(
    profile: OpenProfile,
    chain: AnvilChain,
    nodes: list[KuboNode],
    funder: LocalAccount,
    workdir: Path,
) -> RoundConsortium:
    """Deploy a three-member contract with ``profile`` as the first member.

    The profile's settings get the chain, the contract and its Kubo node,
    and its store gets the first sample shop.
    """
    csv_files = cut_sample(workdir / "shops")
    connect_nodes(nodes)
    funding = chain_client(chain.rpc_url, chain.chain_id, funder, receipt_timeout=30)
    owner_account, *headless_accounts = create_throwaway_accounts(3)
    accounts = [profile.wallet.local_account, *headless_accounts]
    fund_accounts(funding, [owner_account, *accounts], amount_wei=FUNDING_WEI)
    owner = chain_client(
        chain.rpc_url, chain.chain_id, owner_account, receipt_timeout=30
    )
    with nodes[0].client() as ipfs:
        starter_cid = publish_starter_model(ipfs, PARAMETERS)
    members = [
        MemberSpec(f"shop_{index}", account, node)
        for index, (account, node) in enumerate(zip(accounts, nodes, strict=True))
    ]
    owner_contract, bound = deploy_consortium(
        owner,
        members,
        min_updates=3,
        approval_threshold=3,
        round_seconds=3600,
        starter_cid=starter_cid,
        receipt_timeout=30,
    )
    profile.settings = profile.settings.replace(
        chain_rpc_url=chain.rpc_url,
        chain_id=chain.chain_id,
        contract_address=owner_contract.address,
        kubo_api_url=nodes[0].api_url,
    )
    save_settings(profile.paths.settings, profile.settings)
    profile.store.import_csv(csv_files[0])
    return RoundConsortium(
        contract_address=owner_contract.address,
        owner=owner_contract,
        profile_contract=bound[0],
        headless_contracts=bound[1:],
        headless_accounts=headless_accounts,
        nodes=nodes,
        csv_files=csv_files,
        workdir=workdir,
    )


@pytest.fixture
def round_setup(
    make_profile: Callable[..., OpenProfile],
    anvil_chain: AnvilChain,
    dev_accounts: list[LocalAccount],
    kubo_node_factory: KuboNodeFactory,
    tmp_path: Path,
) -> Iterator[tuple[OpenProfile, RoundConsortium]]:
    """A profile that is the first of three members of a fresh contract."""
    profile = make_profile("shop")
    consortium = build_round_consortium(
        profile, anvil_chain, kubo_node_factory(3), dev_accounts[0], tmp_path
    )
    yield profile, consortium
    consortium.stop()


def open_window(
    profile: OpenProfile, environment: AppEnvironment, qtbot: QtBot
) -> MainWindow:
    """Show the main window of ``profile`` and wait for the update preview."""
    window = MainWindow(
        profile, environment, training_config=QUICK_TRAINING, driver_settings=FAST
    )
    window.show()
    window.load()
    tab = window.contribute_tab
    qtbot.waitUntil(
        lambda: tab.check_task is None and tab.preview is not None, timeout=WAIT_MS
    )
    return window
