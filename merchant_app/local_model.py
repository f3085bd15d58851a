"""The merchant's own model: trained from the event store, kept in the profile.

The model's two halves are saved with :mod:`merchant_app.recommender.io` in
the profile's model folder: ``items.safetensors`` (the shared half) and
``customers.safetensors`` (the private half). Events are read through a
separate read-only SQLite connection, so training does not hold the store's
lock and the window can page through the table meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from merchant_app.errors import InputDataError, ModelError
from merchant_app.recommender.als import (
    AlsConfig,
    TrainingProgress,
    train_als,
)
from merchant_app.recommender.als import ProgressCallback as TrainingCallback
from merchant_app.recommender.dataset import build_interactions, interaction_weights
from merchant_app.recommender.io import (
    load_customer_factors,
    load_item_factors,
    save_customer_factors,
    save_item_factors,
)
from merchant_app.recommender.model import FactorModel
from merchant_app.recommender.recommend import (
    ProductInfo,
    Recommendation,
    Recommender,
)

logger = logging.getLogger(__name__)

ITEM_FILE = "items.safetensors"
CUSTOMER_FILE = "customers.safetensors"

_EVENTS_QUERY = (
    "SELECT user_id, product_id, event_type, category_code, brand, price "
    "FROM events WHERE included = 1 ORDER BY id"
)
_PRODUCTS_QUERY = "SELECT product_id, category_code, brand, price FROM products"

__all__ = [
    "CUSTOMER_FILE",
    "ITEM_FILE",
    "ModelSummary",
    "TrainingProgress",
    "load_recommender",
    "model_summary",
    "popular_products",
    "read_events",
    "train_local_model",
]


@dataclass(frozen=True)
class ModelSummary:
    """What the home screen shows about the local model."""

    customers: int
    products: int
    dimension: int


def read_events(store_path: Path) -> pd.DataFrame:
    """Read the events that take part in training (``included`` rows).

    Returns the columns the recommender reads: ``user_id``, ``product_id``
    (int64), ``event_type``, ``category_code``, ``brand`` and ``price``.
    """
    with closing(_read_only(store_path)) as connection:
        events = pd.read_sql_query(_EVENTS_QUERY, connection)
    return events.astype({"user_id": "int64", "product_id": "int64"})


def read_product_info(store_path: Path) -> dict[int, ProductInfo]:
    """Return the stored category, brand and price of every product."""
    with closing(_read_only(store_path)) as connection:
        rows = connection.execute(_PRODUCTS_QUERY).fetchall()
    return {
        int(product_id): ProductInfo(category_code=category, brand=brand, price=price)
        for product_id, category, brand, price in rows
    }


def train_local_model(
    store_path: Path,
    model_folder: Path,
    *,
    config: AlsConfig | None = None,
    progress: TrainingCallback | None = None,
    cancel: threading.Event | None = None,
) -> ModelSummary:
    """Train ALS on the store's included events and save both halves.

    Raises:
        ModelError: when no event counts as an interaction.
        Cancelled: when ``cancel`` is set during training; no file changes.
    """
    events = read_events(store_path)
    interactions = build_interactions(events)
    if interactions.pair_count == 0:
        raise ModelError(
            f"no interactions to train on in {store_path}",
            user_message=(
                "There are no events to train on. Import a CSV file or include "
                "rows first."
            ),
        )
    model = train_als(interactions, config, progress=progress, cancel=cancel)

    model_folder.mkdir(parents=True, exist_ok=True)
    save_item_factors(model_folder / ITEM_FILE, model.items)
    save_customer_factors(model_folder / CUSTOMER_FILE, model.customers)
    summary = _summary(model)
    logger.info(
        "local model saved: %d customers, %d products in %s",
        summary.customers,
        summary.products,
        model_folder,
    )
    return summary


def load_model(model_folder: Path) -> FactorModel | None:
    """Load the saved model, or return None when none was trained yet."""
    item_path = model_folder / ITEM_FILE
    customer_path = model_folder / CUSTOMER_FILE
    if not item_path.exists() or not customer_path.exists():
        return None
    items, _ = load_item_factors(item_path)
    customers, _ = load_customer_factors(customer_path)
    if items.dimension != customers.dimension:
        raise ModelError(
            f"model files in {model_folder} have dimensions {items.dimension} "
            f"and {customers.dimension}; train the model again",
            user_message="The saved model is damaged. Train it again.",
        )
    return FactorModel(items=items, customers=customers)


def model_summary(model_folder: Path) -> ModelSummary | None:
    """Describe the saved model, or return None when none was trained yet."""
    model = load_model(model_folder)
    return None if model is None else _summary(model)


def load_recommender(store_path: Path, model_folder: Path) -> Recommender | None:
    """Build a recommender from the saved model and the store's events."""
    model = load_model(model_folder)
    if model is None:
        return None
    events = read_events(store_path)
    return Recommender(model, events, read_product_info(store_path))


def popular_products(store_path: Path, k: int = 10) -> list[Recommendation]:
    """Return the ``k`` products with the largest summed event weight.

    This needs no model, so the home screen shows it before the first training.
    """
    pairs = interaction_weights(read_events(store_path))
    totals = (
        pairs.groupby("product_id")["weight"]
        .sum()
        .sort_values(ascending=False, kind="stable")
        .head(k)
    )
    info = read_product_info(store_path)
    result = []
    for product_id, weight in totals.items():
        product = info.get(int(product_id), ProductInfo())
        result.append(
            Recommendation(
                int(product_id),
                float(weight),
                "popular",
                product.category_code,
                product.brand,
                product.price,
            )
        )
    return result


def _summary(model: FactorModel) -> ModelSummary:
    return ModelSummary(
        customers=len(model.customers.customer_ids),
        products=len(model.item_ids),
        dimension=model.items.dimension,
    )


def _read_only(store_path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputDataError(
            f"cannot open the event store {store_path} for reading: {exc}",
            user_message="The merchant's data file cannot be opened.",
        ) from exc
