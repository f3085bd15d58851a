"""The Contribute tab with a real consortium: anvil, three Kubo nodes, a real
Secret Service, the window's merchant and two headless merchants."""

from __future__ import annotations

from pathlib import Path

from keyring.backends import SecretService
from pytestqt.qtbot import QtBot
from web3 import Web3

from merchant_app.errors import Cancelled
from merchant_app.federation.round_state import RoundStateStore, RoundStep, TxAction
from merchant_app.local_model import CUSTOMER_FILE, ITEM_FILE
from merchant_app.profile_rounds import load_metrics, metrics_path
from merchant_app.profiles import OpenProfile, open_profile
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.contribute_tab import STATE_CANCELLED, STATE_DONE, STATE_RUNNING
from merchant_app.ui.worker import TaskRunner
from tests.ui_round_support import WAIT_MS, RoundConsortium, open_window, round_setup

__all__ = ["round_setup"]  # the fixture, imported for pytest


def test_contribute_round_applies_new_model(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    round_setup: tuple[OpenProfile, RoundConsortium],
) -> None:
    profile, consortium = round_setup
    window = open_window(profile, ui_environment, qtbot)
    tab = window.contribute_tab
    preview = tab.preview
    assert preview is not None

    # What will leave the device is shown before anything is sent.
    assert preview.round_id == 1
    assert preview.rows_used == profile.store.counts().events
    assert preview.products > 0
    assert preview.update_bytes > 0
    assert preview.per_product_only
    assert "item_ids" in preview.tensor_names
    assert "no customer id" in tab.privacy_label.text()
    assert 0 <= preview.single_customer_products <= preview.products
    if preview.single_customer_products:
        assert f"{preview.single_customer_products:,} of the" in (
            tab.privacy_label.text()
        )
    assert "item_ids" in tab.privacy_label.toolTip()
    assert f"({preview.update_bytes:,} bytes)" in tab.size_value.text()
    assert tab.contribute_button.isEnabled()

    consortium.start_headless(rounds=1)
    task = tab.contribute()
    assert task is not None
    assert not tab.contribute_button.isEnabled()
    assert tab.cancel_button.isEnabled()
    with qtbot.waitSignal(tab.model_applied, timeout=WAIT_MS) as applied:
        pass
    qtbot.waitUntil(
        lambda: tab.round_task is None and tab.check_task is None, timeout=WAIT_MS
    )

    result = applied.args[0]
    assert result.outcome.round_id == 1
    assert all(state == STATE_DONE for state in tab.step_states.values())
    assert result.outcome.bytes_uploaded == preview.update_bytes
    assert tab.contribute_button.isEnabled()
    assert tab.preview is not None
    assert tab.preview.round_id == 2
    assert (profile.paths.model_folder / ITEM_FILE).exists()
    assert (profile.paths.model_folder / CUSTOMER_FILE).exists()
    assert result.outcome.final_cid in tab.result_label.toolTip()
    # The loss chart went from no customer fitted to all of them, falling.
    assert tab.plot.percent_done[0] == 0.0
    assert tab.plot.percent_done[-1] == 100.0
    assert len(tab.plot.losses) >= 2
    assert all(
        later <= earlier * (1 + 1e-9)
        for earlier, later in zip(tab.plot.losses, tab.plot.losses[1:], strict=False)
    )
    assert tab.plot.losses[-1] < tab.plot.losses[0]
    assert f"of {preview.customers:,} customers" in tab.loss_label.text()
    recorded = load_metrics(metrics_path(profile.paths.folder))
    assert [entry.round_id for entry in recorded] == [1]

    # Recommendations use the round's model once it is applied.
    recommendations = window.recommendations_tab
    qtbot.waitUntil(
        lambda: "Model trained on" in recommendations.model_label.text(),
        timeout=WAIT_MS,
    )
    recommendations.customer_edit.setText("98")
    lookup = recommendations.recommend()
    assert lookup is not None
    with qtbot.waitSignal(lookup.finished, timeout=WAIT_MS):
        pass
    assert recommendations.last_results
    window.close()


def test_contribute_preview_follows_imported_events(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    round_setup: tuple[OpenProfile, RoundConsortium],
    tmp_path: Path,
) -> None:
    profile, _consortium = round_setup
    window = open_window(profile, ui_environment, qtbot)
    tab = window.contribute_tab
    assert tab.preview is not None
    rows_before = tab.preview.rows_used
    extra = tmp_path / "extra.csv"
    extra.write_text(
        "user_id,product_id,category_code,brand,price,event_type\n"
        "98,7,kids.toys,acme,12.50,view\n"
        "98,7,kids.toys,acme,12.50,purchase\n",
        encoding="utf-8",
    )

    task = window.transactions_tab.import_file(extra)
    with qtbot.waitSignal(task.succeeded, timeout=WAIT_MS):
        pass

    # The preview is computed again, so it counts the new rows.
    qtbot.waitUntil(
        lambda: (
            tab.check_task is None
            and tab.preview is not None
            and tab.preview.rows_used == rows_before + 2
        ),
        timeout=WAIT_MS,
    )
    assert tab.rows_value.text() == f"{rows_before + 2:,}"
    window.close()


def test_contribute_cancel_then_resume_sends_once(
    qtbot: QtBot,
    ui_environment: AppEnvironment,
    round_setup: tuple[OpenProfile, RoundConsortium],
    secret_service_backend: SecretService.Keyring,
) -> None:
    profile, consortium = round_setup
    window = open_window(profile, ui_environment, qtbot)
    tab = window.contribute_tab

    # Cancel while the round waits for the other members' updates.
    task = tab.contribute()
    assert task is not None
    qtbot.waitUntil(
        lambda: tab.step_states[RoundStep.WAIT_CLOSED] == STATE_RUNNING,
        timeout=WAIT_MS,
    )
    with qtbot.waitSignal(task.cancelled, timeout=WAIT_MS):
        tab.cancel_button.click()
    assert tab.step_states[RoundStep.WAIT_CLOSED] == STATE_CANCELLED
    qtbot.waitUntil(lambda: tab.check_task is None, timeout=WAIT_MS)
    assert tab.contribute_button.text() == "Resume"
    assert "unfinished" in tab.status_label.text()
    assert tab.contribute_button.isEnabled()

    # Resume, then close the window in the middle of the round.
    task = tab.contribute()
    assert task is not None
    qtbot.waitUntil(
        lambda: tab.step_states[RoundStep.WAIT_CLOSED] == STATE_RUNNING,
        timeout=WAIT_MS,
    )
    window.close()
    assert task.future is not None
    assert isinstance(task.future.exception(), Cancelled)

    # The next launch offers to resume, and the round finishes.
    reopened = open_profile(
        profile.data_root, "shop", keyring_backend=secret_service_backend
    )
    runner = TaskRunner()
    environment = AppEnvironment(
        data_root=profile.data_root,
        runner=runner,
        funnel=ui_environment.funnel,
        keyring_backend=ui_environment.keyring_backend,
    )
    try:
        second = open_window(reopened, environment, qtbot)
        second_tab = second.contribute_tab
        assert "unfinished" in second_tab.status_label.text()
        assert second_tab.contribute_button.text() == "Resume"
        consortium.start_headless(rounds=1)
        with qtbot.waitSignal(second_tab.model_applied, timeout=WAIT_MS):
            second_tab.contribute_button.click()
        second.close()
    finally:
        runner.shutdown()
        runner.deleteLater()
        reopened.close()

    # Every round transaction of this member was sent once.
    contract = consortium.profile_contract
    address = profile.wallet.address
    submissions = [
        event
        for event in contract.updates_submitted(1)
        if event.member.lower() == address.lower()
    ]
    assert len(submissions) == 1
    with RoundStateStore.open(profile.paths.store) as state:
        sent = [tx for tx in state.transactions(contract.address, 1) if tx.tx_hash]
        assert state.unfinished(contract.address) is None
    assert TxAction.SUBMIT in {tx.action for tx in sent}
    nonce = contract.client.w3.eth.get_transaction_count(
        Web3.to_checksum_address(address)
    )
    # One transaction published the peer address before round 1.
    assert nonce == 1 + len(sent)
