"""GUI tests of the Home tab's consortium line against a real contract."""

from __future__ import annotations

from collections.abc import Callable

from pytestqt.qtbot import QtBot

from merchant_app.services.anvil import AnvilChain
from merchant_app.ui.main_window import MainWindow
from tests.fixtures.chain import Consortium

WAIT_MS = 60_000


def test_home_shows_round_and_model_cid(
    qtbot: QtBot,
    main_window: Callable[..., MainWindow],
    anvil_chain: AnvilChain,
    consortium_factory: Callable[..., Consortium],
) -> None:
    consortium = consortium_factory(members=3)
    window = main_window(
        chain_rpc_url=anvil_chain.rpc_url,
        contract_address=consortium.owner.address,
    )
    home = window.home_tab

    home.refresh()
    qtbot.waitUntil(lambda: home.chain_task is None, timeout=WAIT_MS)

    text = home.round_label.text()
    assert text.startswith("Round 1: open, 0 of 3 updates.")
    assert f"Shared model in use: file {str(consortium.base_cid)[:10]}…" in text
    assert str(consortium.base_cid) in home.round_label.toolTip()


def test_home_unreachable_chain_says_not_connected(
    qtbot: QtBot, main_window: Callable[..., MainWindow]
) -> None:
    window = main_window(
        chain_rpc_url="http://127.0.0.1:9", contract_address="0x" + "12" * 20
    )
    home = window.home_tab

    home.refresh()
    qtbot.waitUntil(lambda: home.chain_task is None, timeout=WAIT_MS)

    assert home.round_label.text().startswith("Not connected: ")
    assert "cannot be reached" in home.round_label.text()


def test_home_contract_check_in_test_connection(
    qtbot: QtBot,
    main_window: Callable[..., MainWindow],
    anvil_chain: AnvilChain,
    consortium_factory: Callable[..., Consortium],
) -> None:
    consortium = consortium_factory(members=2)
    window = main_window(
        chain_rpc_url=anvil_chain.rpc_url,
        contract_address=consortium.owner.address,
    )

    task = window.wallet_tab.test_connection()
    assert task is not None
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass

    chain = window.wallet_tab.last_checks[0]
    assert chain.ok is True
    assert "contract round 1" in chain.detail
