"""The Federation tab: the consortium's rounds, its members and the model's scores.

Rounds come from the contract's events and this merchant's saved round
state. Members come from the contract, with the state of their IPFS peer as
the local Kubo node reports it. The chart shows the metrics the Contribute
tab records after each final round.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from merchant_app.errors import AppError
from merchant_app.federation_overview import (
    FederationOverview,
    RoundRow,
    read_federation_overview,
)
from merchant_app.profile_rounds import metrics_path
from merchant_app.profiles import OpenProfile
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.round_charts import MetricsPlot
from merchant_app.ui.text import short_id
from merchant_app.ui.worker import Task, TaskContext, TaskRunner

logger = logging.getLogger(__name__)

METRICS_CAPTION = (
    "After each final round the app sets one product aside from the history "
    "of each customer with at least two, and checks whether the new model "
    "brings it back. HR@10: the share of customers whose set-aside product is "
    "in their top 10. NDCG@10: the same, counting a higher place for more. "
    "Higher is better. The shared model learned from these events in the "
    "round, so the numbers read higher than for new visits: compare rounds "
    "with them, not shops."
)
ROUND_COLUMNS = [
    "Round / member",
    "Status",
    "Model or update file (IPFS address)",
    "Blockchain transaction",
]
MEMBER_COLUMNS = ["Name", "IPFS peer", "Member since round", "Address", "Peer address"]


def round_item(row: RoundRow) -> QTreeWidgetItem:
    """Return a tree item for a round with one child per submitted update."""
    status = f"{row.status}, {len(row.participants)} of {row.expected_updates} updates"
    if row.own_step is not None:
        status += f"; you: {row.own_step}"
    model = row.final_cid or f"base {row.base_cid}"
    item = QTreeWidgetItem(
        [f"Round {row.round_id}", status, model, row.final_tx or row.opened_tx]
    )
    item.setToolTip(2, model)
    for participant in row.participants:
        child = QTreeWidgetItem(
            [
                participant.name or participant.address,
                f"update, weight {participant.weight:,}",
                participant.update_cid,
                participant.tx_hash,
            ]
        )
        child.setToolTip(0, participant.address)
        child.setToolTip(2, participant.update_cid)
        child.setToolTip(3, participant.tx_hash)
        item.addChild(child)
    for transaction in row.own_transactions:
        if transaction.tx_hash is None:
            continue
        state = "confirmed" if transaction.mined else "pending"
        child = QTreeWidgetItem(
            [
                "your transaction",
                f"{transaction.action.value}, {state}",
                "",
                transaction.tx_hash,
            ]
        )
        item.addChild(child)
    return item


class FederationTab(QWidget):
    """Lists rounds and members and charts HR@10 and NDCG@10 per round."""

    def __init__(
        self, profile: OpenProfile, runner: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.profile = profile
        self.runner = runner
        self.task: Task | None = None
        self.overview: FederationOverview | None = None

        # Build widgets.
        self.status_label = QLabel("Reading the consortium…")
        self.status_label.setWordWrap(True)
        self.refresh_button = QPushButton("Refresh")
        self.rounds_tree = QTreeWidget()
        self.rounds_tree.setColumnCount(len(ROUND_COLUMNS))
        self.rounds_tree.setHeaderLabels(ROUND_COLUMNS)
        self.rounds_tree.setUniformRowHeights(True)
        tree_header = self.rounds_tree.header()
        tree_header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        tree_header.resizeSection(0, 170)
        tree_header.resizeSection(1, 260)
        tree_header.resizeSection(2, 300)
        self.members_table = QTableWidget(0, len(MEMBER_COLUMNS))
        self.members_table.setHorizontalHeaderLabels(MEMBER_COLUMNS)
        self.members_table.verticalHeader().setVisible(False)
        self.members_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        members_header = self.members_table.horizontalHeader()
        members_header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        members_header.setStretchLastSection(True)
        self.metrics_plot = MetricsPlot()
        self.metrics_caption = QLabel(METRICS_CAPTION)
        self.metrics_caption.setWordWrap(True)
        self.metrics_caption.setObjectName("muted")

        # Lay out.
        header = QHBoxLayout()
        header.addWidget(self.status_label, 1)
        header.addWidget(self.refresh_button)
        rounds_box = QGroupBox("Rounds")
        QVBoxLayout(rounds_box).addWidget(self.rounds_tree)
        members_box = QGroupBox("Members")
        QVBoxLayout(members_box).addWidget(self.members_table)
        metrics_box = QGroupBox("Recommendation quality per round")
        metrics_layout = QVBoxLayout(metrics_box)
        metrics_layout.addWidget(self.metrics_plot, 1)
        metrics_layout.addWidget(self.metrics_caption)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(members_box)
        bottom.addWidget(metrics_box)
        bottom.setStretchFactor(0, 1)
        bottom.setStretchFactor(1, 1)
        # Wide enough for a member's name, peer state and full address.
        bottom.setSizes([640, 520])
        vertical = QSplitter(Qt.Orientation.Vertical)
        vertical.addWidget(rounds_box)
        vertical.addWidget(bottom)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(vertical, 1)

        # Connect signals.
        self.refresh_button.clicked.connect(self.refresh)

    @Slot()
    def refresh(self) -> Task | None:
        """Read rounds, members, peers and metrics in the worker."""
        if self.task is not None:
            return None
        settings = self.profile.connection_settings()
        if not settings.has_contract:
            self.status_label.setText(
                "Not connected: no consortium contract is configured (Wallet tab)."
            )
            return None
        store_path = self.profile.paths.store
        address = self.profile.wallet.address
        metrics_file = metrics_path(self.profile.paths.folder)

        def work(context: TaskContext) -> FederationOverview | None:
            return read_federation_overview(settings, store_path, address, metrics_file)

        self.refresh_button.setEnabled(False)
        task = self.runner.start("federation overview", work)
        self.task = task
        task.succeeded.connect(self._show)
        task.failed.connect(self._failed)
        task.finished.connect(self._finished)
        return task

    @Slot(object)
    def _show(self, overview: FederationOverview | None) -> None:
        self.overview = overview
        if overview is None:
            return
        self.status_label.setText(
            f"Consortium {overview.contract}: {len(overview.members)} members, "
            f"{len(overview.rounds)} rounds opened."
        )
        self.rounds_tree.clear()
        for row in reversed(overview.rounds):
            item = round_item(row)
            self.rounds_tree.addTopLevelItem(item)
            item.setExpanded(True)
        self.members_table.setRowCount(len(overview.members))
        for index, member in enumerate(overview.members):
            values = [
                member.name,
                member.peer_state,
                str(member.since_round),
                member.address,
                member.peer_address or "",
            ]
            for column, value in enumerate(values):
                # Addresses are long: the cell shows their ends, the tooltip
                # the whole value.
                cell_text = short_id(value) if column >= 3 else value
                cell = QTableWidgetItem(cell_text)
                cell.setToolTip(value)
                self.members_table.setItem(index, column, cell)
        metrics = overview.metrics
        self.metrics_plot.show_metrics(
            [entry.round_id for entry in metrics],
            [entry.hr10 for entry in metrics],
            [entry.ndcg10 for entry in metrics],
        )
        if not metrics:
            self.metrics_caption.setText(
                "No scores yet: they are recorded after each final round you "
                "take part in. " + METRICS_CAPTION
            )
        else:
            self.metrics_caption.setText(METRICS_CAPTION)

    @Slot(object)
    def _failed(self, error: BaseException) -> None:
        # A chain that cannot be reached is a state to show, not a dialog.
        if isinstance(error, AppError):
            self.status_label.setText(f"Not connected: {error.user_message}")
        else:
            show_error(error, parent=self, context="reading the consortium")

    @Slot()
    def _finished(self) -> None:
        self.task = None
        self.refresh_button.setEnabled(True)
