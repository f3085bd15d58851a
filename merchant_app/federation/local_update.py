"""A merchant's side of a round: solve its customers, reduce them to an update.

Each round a merchant takes the round's base model, adds rows for its own
items the base lacks, solves its customers' factors against those items
(they stay on the device), and reduces the customers to per-item statistics.
After the round's aggregate is final it solves its customers again against
the new shared items (:func:`refit_local_customers`) to serve
recommendations.

Items the ``min_customers`` rule leaves out of the update are not lost to
the merchant. They are solved from its own statistics alone into private
rows, which stay on the device next to the shared rows and start the same
items in the next round. Once another merchant sends such an item, its
shared row replaces the private one.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from merchant_app.errors import ModelError
from merchant_app.federation.shared_model import SharedModel
from merchant_app.federation.starter import extend_items
from merchant_app.federation.update_file import (
    ModelUpdate,
    UpdateHeader,
    build_update,
    normalize_address,
)
from merchant_app.federation.validation import ValidationLimits
from merchant_app.recommender.als import (
    ItemStatistics,
    ProgressCallback,
    compute_item_statistics,
    refit_customers,
    solve_items,
)
from merchant_app.recommender.dataset import (
    Interactions,
    build_interactions,
    interaction_weights,
)
from merchant_app.recommender.model import CustomerFactors, FactorModel, ItemFactors

logger = logging.getLogger(__name__)

DEFAULT_MIN_CUSTOMERS = 1


@dataclass(frozen=True)
class LocalRoundResult:
    """The update to publish and what stays on the device.

    ``customers`` are the customer factors the update was computed from;
    ``private_items`` contains the rows of the items left out of the update,
    solved from this merchant's statistics alone.
    """

    update: ModelUpdate
    customers: CustomerFactors
    private_items: ItemFactors


def compute_local_update(
    base: SharedModel,
    events: pd.DataFrame,
    *,
    round_id: int,
    base_cid: str,
    merchant: str,
    min_customers: int = DEFAULT_MIN_CUSTOMERS,
    private_items: ItemFactors | None = None,
    max_pair_weight: float = ValidationLimits.max_pair_weight,
    max_factor_norm: float = ValidationLimits.max_factor_norm,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> LocalRoundResult:
    """Compute this merchant's update for ``round_id`` from its ``events``.

    ``events`` has the columns ``user_id``, ``product_id`` and ``event_type``.
    ``private_items`` are the private rows of the previous round; they give
    the starting rows of items the base model still lacks. Pair weights above
    ``max_pair_weight`` and customer factors longer than ``max_factor_norm``
    (the validation bounds) are scaled down to them before the statistics are
    computed, so one customer's burst of events cannot make the whole update
    invalid. Neither happens on the seed shops.

    ``progress`` receives the training objective while the customers are
    solved (see :func:`refit_customers`), for a live loss chart.

    Raises:
        Cancelled: when ``cancel`` is set during the customer solve.
        ModelError: when the merchant has no weighted events.
    """
    parameters = base.parameters
    local_items = interaction_weights(events)["product_id"].to_numpy(np.int64)
    if len(local_items) == 0:
        raise ModelError(
            "no weighted events to compute an update from; import events first"
        )

    # Solve the customers against the base, extended by this shop's items.
    items = overlay_items(base.items, private_items)
    items = extend_items(items, local_items, parameters)
    interactions = build_interactions(events, item_ids=items.item_ids)
    interactions = _with_capped_weights(interactions, max_pair_weight)
    customers = refit_customers(
        items,
        interactions,
        alpha=parameters.alpha,
        regularization=parameters.regularization,
        progress=progress,
        cancel=cancel,
    )

    # Reduce them to statistics of the items they interacted with.
    customers = _with_capped_norms(customers, max_factor_norm)
    counts = np.bincount(interactions.cols, minlength=len(items.item_ids))
    columns = np.flatnonzero(counts > 0)
    statistics = compute_item_statistics(
        customers.factors,
        interactions,
        alpha=parameters.alpha,
        use_biases=parameters.use_biases,
        item_columns=columns,
    )
    header = UpdateHeader(
        round=round_id,
        base_cid=base_cid,
        merchant=normalize_address(merchant),
        parameters=parameters,
        customer_count=len(customers.customer_ids),
        min_customers=min_customers,
    )
    update = build_update(statistics, counts[columns], header)
    withheld = counts[columns] < min_customers
    private = _solve_private_items(statistics, withheld, parameters.regularization)
    return LocalRoundResult(update=update, customers=customers, private_items=private)


def refit_local_customers(
    model: SharedModel,
    events: pd.DataFrame,
    private_items: ItemFactors | None = None,
) -> FactorModel:
    """Solve this merchant's customers against a shared model's items.

    With ``private_items``, their rows are added for items the shared model
    lacks. Products in neither are ignored.
    """
    items = overlay_items(model.items, private_items)
    interactions = build_interactions(events, item_ids=items.item_ids)
    customers = refit_customers(
        items,
        interactions,
        alpha=model.parameters.alpha,
        regularization=model.parameters.regularization,
    )
    return FactorModel(items=items, customers=customers)


def overlay_items(shared: ItemFactors, private: ItemFactors | None) -> ItemFactors:
    """Return ``shared`` plus the rows of ``private`` for items it lacks."""
    if private is None or len(private.item_ids) == 0:
        return shared
    extra = np.isin(private.item_ids, shared.item_ids, invert=True)
    if not extra.any():
        return shared
    all_ids = np.union1d(shared.item_ids, private.item_ids[extra])
    factors = torch.empty((len(all_ids), shared.dimension), dtype=torch.float32)
    biases = torch.empty(len(all_ids), dtype=torch.float32)
    for part, mask in ((shared, None), (private, extra)):
        ids = part.item_ids if mask is None else part.item_ids[mask]
        rows = torch.from_numpy(np.searchsorted(all_ids, ids))
        selected = slice(None) if mask is None else torch.from_numpy(mask)
        factors[rows] = part.factors[selected].to(torch.float32)
        biases[rows] = part.biases[selected].to(torch.float32)
    return ItemFactors(item_ids=all_ids, factors=factors, biases=biases)


def _with_capped_weights(
    interactions: Interactions, max_pair_weight: float
) -> Interactions:
    capped = interactions.weights > max_pair_weight
    if not capped.any():
        return interactions
    logger.warning(
        "%d customer-item weights capped at %g for the update",
        int(capped.sum()),
        max_pair_weight,
    )
    weights = np.minimum(interactions.weights, max_pair_weight)
    return dataclasses.replace(interactions, weights=weights)


def _with_capped_norms(
    customers: CustomerFactors, max_factor_norm: float
) -> CustomerFactors:
    norms = torch.linalg.vector_norm(customers.factors.to(torch.float64), dim=1)
    capped = norms > max_factor_norm
    if not bool(capped.any()):
        return customers
    logger.warning(
        "%d customer factors scaled down to norm %g for the update",
        int(capped.sum()),
        max_factor_norm,
    )
    scale = torch.where(capped, max_factor_norm / norms, torch.ones_like(norms))
    factors = (customers.factors.to(torch.float64) * scale[:, None]).to(torch.float32)
    return CustomerFactors(customer_ids=customers.customer_ids, factors=factors)


def _solve_private_items(
    statistics: ItemStatistics, withheld: np.ndarray, regularization: float
) -> ItemFactors:
    rows = torch.from_numpy(np.flatnonzero(withheld))
    private = ItemStatistics(
        item_ids=statistics.item_ids[withheld],
        gram=statistics.gram,
        lhs=statistics.lhs[rows],
        rhs=statistics.rhs[rows],
        weights=statistics.weights[rows],
        use_biases=statistics.use_biases,
    )
    factors, biases = solve_items(private, regularization=regularization)
    return ItemFactors(
        item_ids=private.item_ids,
        factors=factors.to(torch.float32),
        biases=biases.to(torch.float32),
    )
