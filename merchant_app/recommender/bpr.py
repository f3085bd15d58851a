"""Bayesian personalised ranking (BPR), kept to compare losses.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback"
(UAI 2009). The app trains with weighted least squares (:mod:`.als`), which
scored higher on the seed shops; docs/model.md has the comparison. This
trainer produces the same :class:`FactorModel`, so both go through the same
evaluation.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import torch

from merchant_app.errors import Cancelled, ModelError
from merchant_app.recommender.als import ProgressCallback, TrainingProgress
from merchant_app.recommender.dataset import Interactions
from merchant_app.recommender.model import (
    DEFAULT_DIMENSION,
    CustomerFactors,
    FactorModel,
    ItemFactors,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BprConfig:
    """Hyper-parameters of one BPR run (Adam on mini-batches of triples)."""

    dimension: int = DEFAULT_DIMENSION
    epochs: int = 40
    learning_rate: float = 0.01
    regularization: float = 1e-4
    batch_size: int = 1024
    seed: int = 0


def train_bpr(
    interactions: Interactions,
    config: BprConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> FactorModel:
    """Train with BPR on ``interactions``.

    Each epoch draws as many (customer, item) pairs as there are pairs, with
    probability proportional to their summed event weight, and one uniformly
    drawn negative item per pair. A local ``torch.Generator`` seeded with
    ``config.seed`` drives initialisation and sampling.

    Raises:
        Cancelled: when ``cancel`` is set; checked before each epoch.
    """
    config = config or BprConfig()
    if interactions.pair_count == 0:
        raise ModelError("no interactions to train on: the event table is empty")

    generator = torch.Generator().manual_seed(config.seed)
    customer_count, item_count = interactions.shape
    customers = _parameter((customer_count, config.dimension), generator)
    items = _parameter((item_count, config.dimension), generator)
    biases = torch.nn.Parameter(torch.zeros(item_count))
    optimizer = torch.optim.Adam([customers, items, biases], lr=config.learning_rate)

    rows = torch.from_numpy(interactions.rows)
    cols = torch.from_numpy(interactions.cols)
    draw_weights = torch.from_numpy(interactions.weights.copy())
    for epoch in range(1, config.epochs + 1):
        if cancel is not None and cancel.is_set():
            logger.info("BPR training cancelled at epoch %d", epoch)
            raise Cancelled(f"training cancelled at epoch {epoch}")

        picks = torch.multinomial(
            draw_weights, interactions.pair_count, replacement=True, generator=generator
        )
        negatives = torch.randint(
            item_count, (interactions.pair_count,), generator=generator
        )
        total = 0.0
        for start in range(0, interactions.pair_count, config.batch_size):
            batch = picks[start : start + config.batch_size]
            u, i = rows[batch], cols[batch]
            j = negatives[start : start + config.batch_size]
            x, yi, yj = customers[u], items[i], items[j]
            margin = (x * (yi - yj)).sum(dim=1) + biases[i] - biases[j]
            penalty = (x**2).sum() + (yi**2).sum() + (yj**2).sum()
            penalty = penalty + (biases[i] ** 2).sum() + (biases[j] ** 2).sum()
            loss = -torch.nn.functional.logsigmoid(margin).sum()
            loss = (loss + config.regularization * penalty) / len(batch)

            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)

        if progress is not None:
            mean_loss = total / interactions.pair_count
            progress(TrainingProgress(epoch, config.epochs, mean_loss))

    return FactorModel(
        items=ItemFactors(
            item_ids=interactions.item_ids.copy(),
            factors=items.detach().clone(),
            biases=biases.detach().clone(),
        ),
        customers=CustomerFactors(
            customer_ids=interactions.customer_ids.copy(),
            factors=customers.detach().clone(),
        ),
    )


def _parameter(
    shape: tuple[int, int], generator: torch.Generator
) -> torch.nn.Parameter:
    values = torch.randn(shape, generator=generator, dtype=torch.float32) * 0.1
    return torch.nn.Parameter(values)
