"""The Recommendations tab: train the local model, recommend, products to promote."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from PySide6.QtCore import QRegularExpression, Signal, Slot
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from merchant_app.errors import ModelError
from merchant_app.local_model import (
    ModelSummary,
    TrainingProgress,
    load_recommender,
    model_summary,
    train_local_model,
)
from merchant_app.profiles import OpenProfile
from merchant_app.recommender.als import AlsConfig
from merchant_app.recommender.recommend import (
    REGENERATE_POOL,
    Promotion,
    Recommendation,
    Recommender,
)
from merchant_app.store.rows import MAX_ID
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.products_table import ProductsTable
from merchant_app.ui.progress import ProgressPanel
from merchant_app.ui.worker import Task, TaskContext, TaskRunner

logger = logging.getLogger(__name__)

TOP_K = 10
# The formula of the "Weight" column of popular products (interaction_weights).
POPULAR_WEIGHT_TEXT = (
    "weight = views + 2 x carts + 4 x purchases; removals from the cart count 0"
)


def _training_progress(value: object) -> tuple[float, str]:
    assert isinstance(value, TrainingProgress)
    return (
        value.iteration / value.total,
        f"Training… iteration {value.iteration} of {value.total}",
    )


def describe_model(summary: ModelSummary | None) -> str:
    """Return the model status line."""
    if summary is None:
        return "No model yet. Train one on your events to get recommendations."
    return (
        f"Model trained on {summary.customers:,} of your customers and "
        f"{summary.products:,} products (after a round, the other shops' "
        "products too)."
    )


class RecommendationsTab(QWidget):
    """Trains the model and shows a customer's top 10 and products to promote.

    ``training_config`` None trains with the tuned defaults; tests pass a
    short run.
    """

    model_trained = Signal()

    def __init__(
        self,
        profile: OpenProfile,
        runner: TaskRunner,
        *,
        training_config: AlsConfig | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.profile = profile
        self.runner = runner
        self.training_config = training_config
        self.recommender: Recommender | None = None
        self.task: Task | None = None
        self.last_results: list[Recommendation] = []

        # Build widgets.
        self.model_label = QLabel("Checking the model…")
        self.model_label.setWordWrap(True)
        self.train_button = QPushButton("Train model")
        self.train_button.setObjectName("primaryButton")
        self.progress = ProgressPanel()
        self.customer_edit = QLineEdit()
        self.customer_edit.setPlaceholderText("Customer id (digits)")
        # Customer ids are integers from 0 to 2**63 - 1: up to 19 digits.
        self.customer_edit.setValidator(
            QRegularExpressionValidator(QRegularExpression(r"[0-9]{1,19}"), self)
        )
        self.customer_edit.setMaximumWidth(220)
        self.recommend_button = QPushButton("Recommend")
        self.recommend_button.setObjectName("primaryButton")
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Draw a varied list from the best products")
        self.promote_button = QPushButton("Products to promote")
        self.result_label = QLabel("Enter a customer id and press Recommend.")
        self.result_label.setObjectName("muted")
        self.result_label.setWordWrap(True)
        self.table = ProductsTable()

        # Lay out.
        model_box = QGroupBox("Model")
        model_layout = QHBoxLayout(model_box)
        model_layout.addWidget(self.model_label, 1)
        model_layout.addWidget(self.train_button)
        search = QHBoxLayout()
        search.addWidget(QLabel("Customer"))
        search.addWidget(self.customer_edit)
        search.addWidget(self.recommend_button)
        search.addWidget(self.regenerate_button)
        search.addStretch(1)
        search.addWidget(self.promote_button)
        layout = QVBoxLayout(self)
        layout.addWidget(model_box)
        layout.addWidget(self.progress)
        layout.addLayout(search)
        layout.addWidget(self.result_label)
        layout.addWidget(self.table, 1)

        # Connect signals.
        self.train_button.clicked.connect(self.train)
        self.recommend_button.clicked.connect(lambda: self.recommend())
        self.customer_edit.returnPressed.connect(lambda: self.recommend())
        self.regenerate_button.clicked.connect(lambda: self.recommend(vary=True))
        self.promote_button.clicked.connect(self.show_promotions)
        self._set_busy(False)

    def load(self) -> None:
        """Read the saved model's summary in the worker."""
        folder = self.profile.paths.model_folder
        task = self._start("read model summary", lambda _c: model_summary(folder))
        task.succeeded.connect(self._show_summary)

    def invalidate(self) -> None:
        """Forget the loaded recommender after the events changed."""
        self.recommender = None

    def train(self) -> Task:
        """Train the model on the included events, with progress and Cancel."""
        store_path = self.profile.paths.store
        folder = self.profile.paths.model_folder
        config = self.training_config

        def work(context: TaskContext) -> ModelSummary:
            return train_local_model(
                store_path,
                folder,
                config=config,
                progress=context.report,
                cancel=context.cancel,
            )

        task = self._start("train model", work)
        self.progress.follow(task, "Training…", _training_progress)
        task.succeeded.connect(self._trained)
        return task

    def recommend(self, *, vary: bool = False) -> Task | None:
        """Show the top 10 for the customer in the search field."""
        text = self.customer_edit.text().strip()
        if not text:
            self.result_label.setText("Enter a customer id first.")
            return None
        customer_id = int(text)
        if customer_id > MAX_ID:
            self.result_label.setText(
                f"Customer ids go up to {MAX_ID}; {customer_id} is too large."
            )
            return None
        seed = random.randrange(2**32) if vary else None

        def compute(recommender: Recommender) -> list[Recommendation]:
            if seed is None:
                return recommender.top_k(customer_id, TOP_K)
            return recommender.regenerate(customer_id, TOP_K, seed=seed)

        button = self.regenerate_button if vary else self.recommend_button
        task = self._with_recommender("recommend", compute, button)
        task.succeeded.connect(
            lambda items: self._show_items(customer_id, items, varied=vary)
        )
        return task

    def show_promotions(self) -> Task:
        """Show the products with the highest predicted demand."""
        task = self._with_recommender(
            "products to promote",
            lambda recommender: recommender.products_to_promote(TOP_K),
            self.promote_button,
        )
        task.succeeded.connect(self._show_promotions)
        return task

    # -- helpers ---------------------------------------------------------

    def _with_recommender(
        self,
        name: str,
        compute: Callable[[Recommender], object],
        button: QPushButton,
    ) -> Task:
        recommender = self.recommender
        store_path = self.profile.paths.store
        folder = self.profile.paths.model_folder

        def work(context: TaskContext) -> tuple[Recommender, object]:
            loaded = recommender or load_recommender(store_path, folder)
            if loaded is None:
                raise ModelError(
                    f"no model in {folder}",
                    user_message="There is no model yet. Press Train model first.",
                )
            context.check_cancelled()
            return loaded, compute(loaded)

        task = self._start(name, work)
        task.succeeded.connect(self._keep_recommender)
        return task

    def _start(self, name: str, work: Callable[[TaskContext], object]) -> Task:
        self._set_busy(True)
        task = self.runner.start(name, work)
        self.task = task
        task.failed.connect(self._failed)
        task.finished.connect(self._finished)
        return task

    @Slot(object)
    def _keep_recommender(self, result: tuple[Recommender, object]) -> None:
        self.recommender = result[0]

    def _show_items(
        self,
        customer_id: int,
        result: tuple[Recommender, list[Recommendation]],
        *,
        varied: bool = False,
    ) -> None:
        items = result[1]
        self.last_results = items
        self.table.show_recommendations(items)
        if items and items[0].source == "popular" and varied:
            self.result_label.setText(
                f"The model does not know customer {customer_id}, so these are "
                f"drawn at random from up to {REGENERATE_POOL} of your most popular "
                f"products ({POPULAR_WEIGHT_TEXT})."
            )
        elif items and items[0].source == "popular":
            self.result_label.setText(
                f"The model does not know customer {customer_id}: these are your "
                f"most popular products ({POPULAR_WEIGHT_TEXT})."
            )
        elif varied:
            # Recommender.regenerate draws k of the best REGENERATE_POOL scores,
            # weighted towards higher scores, and sorts them best first.
            self.result_label.setText(
                f"A varied list of {len(items)} for customer {customer_id}, drawn "
                f"at random from up to {REGENERATE_POOL} of the customer's "
                "best-scored products, with higher scores more likely. Products "
                "the customer already viewed or bought are left out."
            )
        else:
            self.result_label.setText(
                f"Top {len(items)} for customer {customer_id}, from the model. "
                "Products the customer already viewed or bought are left out."
            )

    @Slot(object)
    def _show_promotions(self, result: tuple[Recommender, list[Promotion]]) -> None:
        self.table.show_promotions(result[1])
        self.result_label.setText(
            "Products with the highest predicted demand among your customers. "
            "Demand is the expected number of customers; reach counts the "
            "customers whose top 10 holds the product."
        )

    @Slot(object)
    def _trained(self, summary: ModelSummary) -> None:
        self.recommender = None
        self._show_summary(summary)
        self.model_trained.emit()

    @Slot(object)
    def _show_summary(self, summary: ModelSummary | None) -> None:
        self.model_label.setText(describe_model(summary))
        self.model_label.setToolTip(
            ""
            if summary is None
            else f"Each customer and product is described by {summary.dimension} "
            "numbers (the model's dimension)."
        )

    @Slot(object)
    def _failed(self, error: BaseException) -> None:
        show_error(error, parent=self, context="recommendations")

    @Slot()
    def _finished(self) -> None:
        self.task = None
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        for button in (
            self.train_button,
            self.recommend_button,
            self.regenerate_button,
            self.promote_button,
        ):
            button.setEnabled(not busy)
