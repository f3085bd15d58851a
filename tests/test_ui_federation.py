"""The Federation tab after a real round: rounds, members, peers and metrics."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from merchant_app.federation_overview import PEER_CONNECTED, PEER_SELF
from merchant_app.profile_rounds import METRICS_FILE
from merchant_app.profiles import OpenProfile
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.federation_tab import METRICS_CAPTION
from tests.ui_round_support import WAIT_MS, RoundConsortium, open_window, round_setup

__all__ = ["round_setup"]  # the fixture, imported for pytest


def test_federation_tab_lists_round_members_metrics(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    round_setup: tuple[OpenProfile, RoundConsortium],
) -> None:
    profile, consortium = round_setup
    window = open_window(profile, ui_environment, qtbot)
    tab = window.federation_tab
    qtbot.waitUntil(lambda: tab.overview is not None, timeout=WAIT_MS)
    assert tab.overview is not None
    assert [row.status for row in tab.overview.rounds] == ["open"]
    assert tab.overview.metrics == ()

    consortium.start_headless(rounds=1)
    contribute = window.contribute_tab
    with qtbot.waitSignal(contribute.model_applied, timeout=WAIT_MS):
        contribute.contribute_button.click()
    # The Contribute tab asks for a refresh when its round ends.
    qtbot.waitUntil(
        lambda: tab.overview is not None and len(tab.overview.rounds) == 2,
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: tab.task is None, timeout=WAIT_MS)
    overview = tab.overview
    assert overview is not None

    # Rounds: round 1 final with three updates, round 2 open on its model.
    first, second = overview.rounds
    assert first.round_id == 1
    assert first.status == "final"
    assert len(first.participants) == 3
    assert {part.name for part in first.participants} == {
        "shop_0",
        "shop_1",
        "shop_2",
    }
    assert all(part.tx_hash.startswith("0x") for part in first.participants)
    assert first.final_cid is not None
    assert first.own_step == "finished"
    assert second.status == "open"
    assert second.base_cid == first.final_cid
    round_item = tab.rounds_tree.topLevelItem(1)
    assert round_item is not None
    assert round_item.text(0) == "Round 1"
    assert round_item.text(2) == first.final_cid
    assert round_item.childCount() >= 3

    # Members: names, addresses and peer states from the local node.
    members = {member.name: member for member in overview.members}
    assert set(members) == {"shop_0", "shop_1", "shop_2"}
    assert members["shop_0"].address == profile.wallet.address
    assert members["shop_0"].peer_state == PEER_SELF
    assert members["shop_1"].peer_state == PEER_CONNECTED
    assert members["shop_2"].peer_state == PEER_CONNECTED
    assert tab.members_table.rowCount() == 3

    # Chart: one point per final round, measured on the merchant's own data.
    assert [entry.round_id for entry in overview.metrics] == [1]
    assert tab.metrics_plot.rounds == [1]
    assert 0.0 <= tab.metrics_plot.hr10[0] <= 1.0
    assert 0.0 <= tab.metrics_plot.ndcg10[0] <= tab.metrics_plot.hr10[0]
    assert tab.metrics_caption.text() == METRICS_CAPTION
    assert (profile.paths.folder / METRICS_FILE).exists()
    window.close()
