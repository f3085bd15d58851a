"""The Home tab: counts of the store, the consortium round and featured products."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from merchant_app.connectivity import RoundSummary, read_round
from merchant_app.errors import AppError
from merchant_app.local_model import (
    load_recommender,
    model_summary,
    popular_products,
)
from merchant_app.profiles import OpenProfile
from merchant_app.recommender.recommend import Promotion, Recommendation
from merchant_app.store import StoreCounts
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.products_table import ProductsTable
from merchant_app.ui.recommendations_tab import describe_model
from merchant_app.ui.text import short_id
from merchant_app.ui.worker import Task, TaskContext, TaskRunner

logger = logging.getLogger(__name__)

FEATURED_COUNT = 10


@dataclass(frozen=True)
class LocalOverview:
    """The Home tab's figures from this computer's data."""

    counts: StoreCounts
    model_text: str
    popular: list[Recommendation]
    promote: list[Promotion]


def read_local_overview(profile: OpenProfile) -> LocalOverview:
    """Read the counts, the model status and the featured products (blocking)."""
    counts = profile.store.counts()
    folder = profile.paths.model_folder
    summary = model_summary(folder)
    popular = (
        popular_products(profile.paths.store, FEATURED_COUNT) if counts.events else []
    )
    promote: list[Promotion] = []
    if summary is not None:
        recommender = load_recommender(profile.paths.store, folder)
        if recommender is not None:
            promote = recommender.products_to_promote(FEATURED_COUNT)
    return LocalOverview(counts, describe_model(summary), popular, promote)


def describe_round(summary: RoundSummary) -> str:
    """Return the consortium line for a running round."""
    text = (
        f"Round {summary.round_id}: {summary.phase}, "
        f"{summary.submitted_updates} of {summary.expected_updates} updates."
    )
    if summary.base_cid:
        text += f"\nShared model in use: file {short_id(summary.base_cid)} on IPFS"
    return text


class CountCard(QFrame):
    """A big number with a caption."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.value_label = QLabel("–")
        self.value_label.setObjectName("cardValue")
        caption_label = QLabel(caption)
        caption_label.setObjectName("cardCaption")
        layout = QVBoxLayout(self)
        layout.addWidget(self.value_label)
        layout.addWidget(caption_label)

    def set_value(self, value: int) -> None:
        self.value_label.setText(f"{value:,}")


class HomeTab(QWidget):
    """Shows the state of the profile at a glance."""

    def __init__(
        self, profile: OpenProfile, runner: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.profile = profile
        self.runner = runner
        self.local_task: Task | None = None
        self.chain_task: Task | None = None

        # Build widgets.
        self.events_card = CountCard("events")
        self.customers_card = CountCard("customers")
        self.products_card = CountCard("products")
        self.round_label = QLabel("Checking…")
        self.round_label.setWordWrap(True)
        self.round_label.setObjectName("roundLabel")
        self.model_label = QLabel("Checking…")
        self.model_label.setWordWrap(True)
        self.refresh_button = QPushButton("Refresh")
        self.popular_table = ProductsTable()
        self.promote_table = ProductsTable()
        self.promote_hint = QLabel("Train a model to see the products worth promoting.")
        self.promote_hint.setObjectName("muted")

        # Lay out.
        cards = QHBoxLayout()
        for card in (self.events_card, self.customers_card, self.products_card):
            cards.addWidget(card)
        status_box = QGroupBox("Consortium and model")
        status_layout = QVBoxLayout(status_box)
        status_layout.addWidget(self.round_label)
        status_layout.addWidget(self.model_label)
        popular_box = QGroupBox("Popular products")
        QVBoxLayout(popular_box).addWidget(self.popular_table)
        promote_box = QGroupBox("Worth promoting")
        promote_layout = QVBoxLayout(promote_box)
        promote_layout.addWidget(self.promote_hint)
        promote_layout.addWidget(self.promote_table)
        featured = QGridLayout()
        featured.addWidget(popular_box, 0, 0)
        featured.addWidget(promote_box, 0, 1)
        header = QHBoxLayout()
        title = QLabel(f"Shop {profile.settings.name}")
        title.setObjectName("title")
        header.addWidget(title, 1)
        header.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addLayout(cards)
        layout.addWidget(status_box)
        layout.addLayout(featured, 1)

        # Connect signals.
        self.refresh_button.clicked.connect(self.refresh)

    @Slot()
    def refresh(self) -> None:
        """Read the local overview and the round in the worker."""
        if self.local_task is None:
            profile = self.profile
            self.local_task = self.runner.start(
                "home overview", lambda _c: read_local_overview(profile)
            )
            self.local_task.succeeded.connect(self._show_local)
            self.local_task.failed.connect(self._local_failed)
            self.local_task.finished.connect(self._local_finished)
        if self.chain_task is None:
            self._refresh_round()
        self.refresh_button.setEnabled(False)

    def _refresh_round(self) -> None:
        settings = self.profile.settings
        if not settings.has_contract:
            self.round_label.setText(
                "Not connected: no consortium contract is configured (Wallet tab)."
            )
            return

        def work(context: TaskContext) -> RoundSummary | None:
            return read_round(settings)

        self.chain_task = self.runner.start("read round", work)
        self.chain_task.succeeded.connect(self._show_round)
        self.chain_task.failed.connect(self._round_failed)
        self.chain_task.finished.connect(self._chain_finished)

    @Slot(object)
    def _show_local(self, overview: LocalOverview) -> None:
        self.events_card.set_value(overview.counts.events)
        self.customers_card.set_value(overview.counts.customers)
        self.products_card.set_value(overview.counts.products)
        self.model_label.setText(overview.model_text)
        self.popular_table.show_recommendations(overview.popular)
        self.promote_table.show_promotions(overview.promote)
        self.promote_hint.setVisible(not overview.promote)

    @Slot(object)
    def _show_round(self, summary: RoundSummary | None) -> None:
        if summary is not None:
            self.round_label.setText(describe_round(summary))
            self.round_label.setToolTip(
                f"Shared model file on IPFS: {summary.base_cid}"
                if summary.base_cid
                else ""
            )

    @Slot(object)
    def _round_failed(self, error: BaseException) -> None:
        # A chain that cannot be reached is a state to show, not a dialog.
        if isinstance(error, AppError):
            self.round_label.setText(f"Not connected: {error.user_message}")
        else:
            show_error(error, parent=self, context="reading the round")

    @Slot(object)
    def _local_failed(self, error: BaseException) -> None:
        show_error(error, parent=self, context="home overview")

    @Slot()
    def _local_finished(self) -> None:
        self.local_task = None
        self.refresh_button.setEnabled(True)

    @Slot()
    def _chain_finished(self) -> None:
        self.chain_task = None
