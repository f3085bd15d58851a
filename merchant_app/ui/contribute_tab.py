"""The Contribute tab: what leaves the device, then one round with live progress.

Before anything is sent the tab computes this merchant's update locally and
shows what it contains. Contribute then runs the round driver in the worker
pool: each step is listed with its state, a chart draws the training loss
while the update is trained, Cancel sets the driver's cancel event, and the
final model is applied to the profile. A round left unfinished (Cancel, a
closed window, a crash) is found on the next launch and offered as Resume.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from merchant_app.errors import AppError
from merchant_app.federation.driver import DriverSettings
from merchant_app.federation.round_state import RoundRecord, RoundStep, TxAction
from merchant_app.federation.update_file import UPDATE_TENSORS
from merchant_app.profile_rounds import (
    ContributionPreview,
    ContributionResult,
    ProfileConsortium,
    RoundSnapshot,
    preview_contribution,
    readiness_problem,
    run_contribution,
    unfinished_round,
)
from merchant_app.profiles import OpenProfile
from merchant_app.recommender.als import TrainingProgress
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.round_charts import ROUND_STEPS, TrainingLossPlot
from merchant_app.ui.text import describe_size, short_id
from merchant_app.ui.worker import Task, TaskContext, TaskRunner

logger = logging.getLogger(__name__)

STATE_PENDING = "pending"
STATE_RUNNING = "running"
STATE_DONE = "done"
STATE_FAILED = "failed"
STATE_CANCELLED = "cancelled"

STEP_LABELS: dict[RoundStep, str] = {
    RoundStep.FETCH_BASE: "Fetch the round's base model",
    RoundStep.TRAIN: "Train on your events",
    RoundStep.UPLOAD: "Upload the update to IPFS",
    RoundStep.SUBMIT: "Record the update on the blockchain",
    RoundStep.WAIT_CLOSED: "Wait for the other members' updates",
    RoundStep.FETCH_UPDATES: "Fetch every member's update",
    RoundStep.VALIDATE: "Validate the updates",
    RoundStep.AGGREGATE: "Aggregate them",
    RoundStep.PROPOSE: "Propose the aggregate on chain",
    RoundStep.APPROVE: "Approve the aggregate you computed",
    RoundStep.WAIT_FINAL: "Wait until the round is final",
    RoundStep.LOAD_FINAL: "Load the new shared model",
}
_STATE_COLORS = {
    STATE_RUNNING: "#1d4ed8",
    STATE_DONE: "#0b6e4f",
    STATE_FAILED: "#b42318",
    STATE_CANCELLED: "#b54708",
}
_TX_STEPS = {
    RoundStep.SUBMIT: TxAction.SUBMIT,
    RoundStep.WAIT_CLOSED: TxAction.CLOSE,
    RoundStep.PROPOSE: TxAction.PROPOSE,
    RoundStep.APPROVE: TxAction.APPROVE,
}
LOSS_CAPTION = (
    "Training loss: how far the model's scores are from what your customers "
    "did. It falls while the app fits each customer to the shared model; "
    "lower is better."
)


def privacy_statement(preview: ContributionPreview) -> str:
    """Return what the update contains, in plain words, from its tensor names."""
    if not preview.per_product_only:
        return (
            f"Warning: the update contains tensors the update format does not "
            f"allow: {', '.join(preview.unexpected_tensors)}. It will not be sent."
        )
    text = (
        "Only numbers about products leave this computer: for each product, a "
        "summary of how the customers who saw or bought it reacted, plus the "
        "round, your member address and how many customers you have. The "
        "file has no customer id and no list of anyone's events."
    )
    lone = preview.single_customer_products
    if lone:
        text += (
            f" Note: {lone:,} of the {preview.products:,} products were seen by "
            "only one of your customers. For those, that customer's taste "
            "profile (numbers, not who they are) can be read back from the "
            "file."
        )
    return text


def technical_statement(preview: ContributionPreview) -> str:
    """Return the update's tensor names, axes and metadata keys, for engineers."""
    axes = sorted({axis for name in preview.tensor_names for axis in _axes(name)})
    return (
        f"Tensors: {', '.join(preview.tensor_names)}; axes: {', '.join(axes)} "
        f"(none counts customers). Metadata: {', '.join(preview.metadata_keys)}. "
        "Items with fewer customers than DriverSettings.min_customers are left "
        "out; docs/privacy.md has what the rows reveal."
    )


def _axes(name: str) -> tuple[str, ...]:
    spec = UPDATE_TENSORS.get(name)
    return () if spec is None else spec.axes


def step_details(
    record: RoundRecord | None, transactions: dict[str, str]
) -> dict[RoundStep, str]:
    """Return the detail text per step from the saved round and transactions."""
    details: dict[RoundStep, str] = {}
    if record is not None:
        details[RoundStep.FETCH_BASE] = f"shared model {record.base_cid}"
        if record.update_cid is not None:
            details[RoundStep.UPLOAD] = (
                f"{record.update_size or 0:,} bytes, file {record.update_cid}"
            )
        if record.aggregate_cid is not None:
            details[RoundStep.AGGREGATE] = f"combined model {record.aggregate_cid}"
        if record.final_cid is not None:
            details[RoundStep.WAIT_FINAL] = f"final model {record.final_cid}"
        if record.excluded:
            details[RoundStep.VALIDATE] = f"{len(record.excluded)} update(s) excluded"
        if _past(record.step, RoundStep.PROPOSE):
            details[RoundStep.PROPOSE] = "already proposed by another member"
    for step, action in _TX_STEPS.items():
        if action.value in transactions:
            details[step] = f"transaction {transactions[action.value]}"
    return details


def _shorten_ids(text: str) -> str:
    """Shorten each CID or hash in a detail text; other words stay."""
    return " ".join(
        short_id(word) if len(word) > 40 and word.isalnum() else word
        for word in text.split(" ")
    )


def _past(current: RoundStep, step: RoundStep) -> bool:
    """Return whether the round at ``current`` has finished ``step``."""
    if current == RoundStep.DONE:
        return True
    return ROUND_STEPS.index(current) > ROUND_STEPS.index(step)


class ContributeTab(QWidget):
    """Shows the update before it is sent and runs the round in the worker.

    ``driver_settings`` None uses the driver's defaults; tests pass short
    poll intervals.
    """

    model_applied = Signal(object)
    round_changed = Signal()

    def __init__(
        self,
        profile: OpenProfile,
        runner: TaskRunner,
        *,
        driver_settings: DriverSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.profile = profile
        self.runner = runner
        self.driver_settings = driver_settings or DriverSettings()
        self.preview: ContributionPreview | None = None
        self.unfinished: RoundRecord | None = None
        self.round_task: Task | None = None
        self.check_task: Task | None = None
        self.step_states: dict[RoundStep, str] = {}
        self.last_result: ContributionResult | None = None
        self._current_step: RoundStep | None = None
        self._preview_stale = False

        # Build widgets.
        self.status_label = QLabel("Checking the consortium…")
        self.status_label.setWordWrap(True)
        self.status_label.setObjectName("roundLabel")
        self.round_value = QLabel("–")
        self.rows_value = QLabel("–")
        self.products_value = QLabel("–")
        self.customers_value = QLabel("–")
        self.size_value = QLabel("–")
        self.privacy_label = QLabel("The update is computed on this computer first.")
        self.privacy_label.setWordWrap(True)
        self.check_button = QPushButton("Check again")
        self.contribute_button = QPushButton("Contribute")
        self.contribute_button.setObjectName("primaryButton")
        self.cancel_button = QPushButton("Cancel")
        self.steps_table = QTableWidget(len(ROUND_STEPS), 3)
        self.steps_table.setHorizontalHeaderLabels(["Step", "State", "Details"])
        self.steps_table.verticalHeader().setVisible(False)
        self.steps_table.verticalHeader().setDefaultSectionSize(24)
        self.steps_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.steps_table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        header = self.steps_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.plot = TrainingLossPlot()
        self.loss_label = QLabel(LOSS_CAPTION)
        self.loss_label.setWordWrap(True)
        self.loss_label.setObjectName("muted")
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)

        # Lay out.
        preview_box = QGroupBox("What will leave this computer")
        form = QFormLayout()
        form.addRow("Round", self.round_value)
        form.addRow("Rows used (included events)", self.rows_value)
        form.addRow("Products covered", self.products_value)
        form.addRow("Customers (their data stays here)", self.customers_value)
        form.addRow("Update size", self.size_value)
        preview_layout = QVBoxLayout(preview_box)
        preview_layout.addLayout(form)
        preview_layout.addWidget(self.privacy_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.check_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.contribute_button)
        self.progress_box = QGroupBox("Round progress")
        progress_box = self.progress_box
        progress_layout = QVBoxLayout(progress_box)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.steps_table)
        loss_panel = QWidget()
        loss_layout = QVBoxLayout(loss_panel)
        loss_layout.setContentsMargins(0, 0, 0, 0)
        loss_layout.addWidget(self.plot, 1)
        loss_layout.addWidget(self.loss_label)
        splitter.addWidget(loss_panel)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        progress_layout.addWidget(splitter)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status_label)
        layout.addWidget(preview_box)
        layout.addLayout(buttons)
        layout.addWidget(progress_box, 1)
        layout.addWidget(self.result_label)

        # Connect signals.
        self.check_button.clicked.connect(self.load)
        self.contribute_button.clicked.connect(self.contribute)
        self.cancel_button.clicked.connect(self.cancel)
        self._reset_steps()
        self._set_running(False)
        self.contribute_button.setEnabled(False)

    # -- public ----------------------------------------------------------

    @Slot()
    def load(self) -> None:
        """Look for an unfinished round and compute the preview in the worker."""
        if self.round_task is not None or self.check_task is not None:
            return
        settings = self.profile.connection_settings()
        problem = readiness_problem(settings)
        if problem is not None:
            self.status_label.setText(f"Not ready to contribute: {problem}")
            self.contribute_button.setEnabled(False)
            self.check_button.setEnabled(True)
            return
        wallet = self.profile.wallet
        store_path = self.profile.paths.store
        driver_settings = self.driver_settings

        def work(context: TaskContext) -> tuple[RoundRecord | None, object]:
            unfinished = unfinished_round(settings, store_path)
            try:
                with ProfileConsortium(
                    settings, wallet, store_path, driver_settings=driver_settings
                ) as consortium:
                    preview = preview_contribution(consortium, context.cancel)
            except AppError as exc:
                # Shown in place: the chain or IPFS may simply be offline.
                logger.info("contribution preview failed: %s", exc)
                return unfinished, exc
            return unfinished, preview

        self.status_label.setText("Computing your update on this computer…")
        self.contribute_button.setEnabled(False)
        self.check_button.setEnabled(False)
        self.check_task = self.runner.start("contribution preview", work)
        self.check_task.succeeded.connect(self._show_check)
        self.check_task.failed.connect(self._failed)
        self.check_task.finished.connect(self._check_finished)

    @Slot()
    def events_changed(self) -> None:
        """Compute the preview again, because the events it counts changed.

        A preview being computed is redone when it ends; a running round
        keeps the events it trained on.
        """
        if self.round_task is not None:
            return
        if self.check_task is not None:
            self._preview_stale = True
            return
        self.load()

    @Slot()
    def contribute(self) -> Task | None:
        """Run (or resume) the round in the worker; returns the task.

        Returns None while a round or a preview is running.
        """
        if self.round_task is not None or self.check_task is not None:
            return None
        settings = self.profile.connection_settings()
        peer_address = self.profile.local_peer_address()
        wallet = self.profile.wallet
        store_path = self.profile.paths.store
        model_folder = self.profile.paths.model_folder
        driver_settings = self.driver_settings

        def work(context: TaskContext) -> ContributionResult:
            with ProfileConsortium(
                settings,
                wallet,
                store_path,
                driver_settings=driver_settings,
                peer_address=peer_address,
            ) as consortium:
                return run_contribution(
                    consortium,
                    model_folder,
                    report=context.report,
                    cancel=context.cancel,
                )

        self._reset_steps()
        if self.unfinished is not None:
            self._mark_done_before(self.unfinished.step)
        self.plot.clear()
        self.loss_label.setText(LOSS_CAPTION)
        self.result_label.setText("")
        self._set_running(True)
        task = self.runner.start("contribute round", work)
        self.round_task = task
        task.progress.connect(self._progress)
        task.succeeded.connect(self._succeeded)
        task.failed.connect(self._round_failed)
        task.cancelled.connect(self._cancelled)
        task.finished.connect(self._round_finished)
        return task

    @Slot()
    def cancel(self) -> None:
        """Set the driver's cancel event; the round stops at its next check."""
        if self.round_task is not None:
            self.round_task.cancel()
            self.cancel_button.setEnabled(False)
            self.status_label.setText("Cancelling… the round stops at its next check.")

    # -- slots -----------------------------------------------------------

    @Slot(object)
    def _show_check(self, result: tuple[RoundRecord | None, object]) -> None:
        unfinished, preview = result
        self.unfinished = unfinished
        if isinstance(preview, AppError):
            self.preview = None
            self.status_label.setText(
                f"Cannot prepare a contribution: {preview.user_message}"
            )
            return
        assert isinstance(preview, ContributionPreview)
        self.preview = preview
        self._show_preview(preview)
        if unfinished is not None:
            self.status_label.setText(
                f"A round is unfinished (round {unfinished.round_id}, stopped before "
                f"step {unfinished.step.value}). Resume finishes it; no transaction "
                "is sent twice."
            )
            self.contribute_button.setText("Resume")
            self._mark_done_before(unfinished.step)
        else:
            self.status_label.setText(
                f"Round {preview.round_id} is open. Check what will be sent, then "
                "press Contribute."
            )
            self.contribute_button.setText("Contribute")

    def _show_preview(self, preview: ContributionPreview) -> None:
        self.round_value.setText(
            f"{preview.round_id}, starting from the shared model "
            f"{short_id(preview.base_cid)}"
        )
        self.round_value.setToolTip(f"Shared model file on IPFS: {preview.base_cid}")
        self.rows_value.setText(f"{preview.rows_used:,}")
        self.products_value.setText(f"{preview.products:,}")
        self.customers_value.setText(f"{preview.customers:,}")
        self.size_value.setText(describe_size(preview.update_bytes))
        self.privacy_label.setText(privacy_statement(preview))
        # The exact file contents, for engineers checking the claim above.
        self.privacy_label.setToolTip(technical_statement(preview))

    @Slot()
    def _check_finished(self) -> None:
        self.check_task = None
        if self._preview_stale:
            self._preview_stale = False
            self.load()
            return
        self.check_button.setEnabled(self.round_task is None)
        ready = self.preview is not None and self.preview.per_product_only
        self.contribute_button.setEnabled(ready and self.round_task is None)

    @Slot(object)
    def _progress(self, snapshot: object) -> None:
        if isinstance(snapshot, TrainingProgress):
            self._show_training(snapshot)
            return
        if not isinstance(snapshot, RoundSnapshot):
            return
        step = snapshot.progress.step
        self._current_step = step
        self.progress_box.setTitle(f"Round {snapshot.progress.round_id}: progress")
        self._mark_done_before(step)
        self._set_step_state(step, STATE_RUNNING)
        transactions = {
            tx.action.value: tx.tx_hash
            for tx in snapshot.transactions
            if tx.tx_hash is not None
        }
        self._show_details(step_details(snapshot.record, transactions))
        self.status_label.setText(
            f"Round {snapshot.progress.round_id}: {STEP_LABELS[step].lower()}…"
        )

    def _show_training(self, report: TrainingProgress) -> None:
        # In a round's training, the steps of a report are customers fitted.
        self.plot.add_point(report.iteration, report.total, report.loss)
        done = (
            f"Fitted {report.iteration:,} of {report.total:,} customers; "
            f"loss {report.loss:,.2f}."
        )
        self.loss_label.setText(f"{LOSS_CAPTION} {done}")
        self._show_details({RoundStep.TRAIN: done})

    @Slot(object)
    def _succeeded(self, result: ContributionResult) -> None:
        self.last_result = result
        for step in ROUND_STEPS:
            self._set_step_state(step, STATE_DONE)
        transactions = {
            tx.action.value: tx.tx_hash
            for tx in result.transactions
            if tx.tx_hash is not None
        }
        self._show_details(step_details(result.record, transactions))
        outcome = result.outcome
        text = (
            f"Round {outcome.round_id} is final. The new shared model is applied: "
            f"Recommendations use it now. Uploaded "
            f"{describe_size(outcome.bytes_uploaded, exact=False)}; the "
            f"blockchain transactions used {outcome.gas_used:,} gas."
        )
        if result.metrics is not None:
            text += (
                " Quality check: a product set aside from each customer's "
                f"history came back in their top 10 for {result.metrics.hr10:.0%} "
                f"of customers (HR@10 {result.metrics.hr10:.3f}, NDCG@10 "
                f"{result.metrics.ndcg10:.3f})."
            )
        self.result_label.setText(text)
        self.result_label.setToolTip(f"Final model file on IPFS: {outcome.final_cid}")
        self.status_label.setText(
            f"Round {outcome.round_id} finished. Contribute again when the next "
            "round is open."
        )
        self.unfinished = None
        self.contribute_button.setText("Contribute")
        self.model_applied.emit(result)

    @Slot(object)
    def _round_failed(self, error: BaseException) -> None:
        if self._current_step is not None:
            self._set_step_state(self._current_step, STATE_FAILED)
        self.status_label.setText(
            "The round stopped with an error. Resume continues it where it stopped."
        )
        self.contribute_button.setText("Resume")
        show_error(error, parent=self, context="contributing to the round")

    @Slot()
    def _cancelled(self) -> None:
        if self._current_step is not None:
            self._set_step_state(self._current_step, STATE_CANCELLED)
        self.status_label.setText(
            "The round was cancelled. It is saved: Resume continues it without "
            "sending any transaction twice."
        )
        self.contribute_button.setText("Resume")

    @Slot()
    def _round_finished(self) -> None:
        self.round_task = None
        self._current_step = None
        self._set_running(False)
        self.round_changed.emit()
        # Show the next round's update, or the saved state of a stopped round.
        self.load()

    @Slot(object)
    def _failed(self, error: BaseException) -> None:
        show_error(error, parent=self, context="checking the contribution")

    # -- helpers ---------------------------------------------------------

    def _reset_steps(self) -> None:
        for row, step in enumerate(ROUND_STEPS):
            self.steps_table.setItem(row, 0, QTableWidgetItem(STEP_LABELS[step]))
            self.steps_table.setItem(row, 2, QTableWidgetItem(""))
            self._set_step_state(step, STATE_PENDING)

    def _mark_done_before(self, step: RoundStep) -> None:
        for earlier in ROUND_STEPS:
            if earlier == step:
                return
            self._set_step_state(earlier, STATE_DONE)

    def _set_step_state(self, step: RoundStep, state: str) -> None:
        self.step_states[step] = state
        item = QTableWidgetItem(state)
        color = _STATE_COLORS.get(state)
        if color is not None:
            item.setForeground(QColor(color))
        self.steps_table.setItem(ROUND_STEPS.index(step), 1, item)

    def _show_details(self, details: dict[RoundStep, str]) -> None:
        for step, text in details.items():
            row = ROUND_STEPS.index(step)
            item = QTableWidgetItem(_shorten_ids(text))
            item.setToolTip(text)
            self.steps_table.setItem(row, 2, item)

    def _set_running(self, running: bool) -> None:
        self.contribute_button.setEnabled(not running and self.preview is not None)
        self.check_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
