"""Weighted matrix factorisation for implicit feedback, trained by ALS.

The objective is the one of Hu, Koren and Volinsky, "Collaborative Filtering
for Implicit Feedback Datasets" (ICDM 2008), with an item bias:

    sum over all (u, i) of c_ui * (p_ui - x_u . y_i - b_i)^2
        + regularization * (|X|^2 + |Y|^2 + |b|^2)

where ``p_ui`` is 1 for a pair with events and 0 otherwise, and the
confidence is ``c_ui = 1 + alpha * w_ui`` with ``w_ui`` the summed event
weights (0 for pairs without events, so their confidence is 1).

The item half-step is split in two so that a federation can run it across
merchants: :func:`compute_item_statistics` reduces one merchant's customers
to per-item sufficient statistics, :func:`sum_item_statistics` adds those of
several merchants, and :func:`solve_items` turns any sum into item factors
and biases. A pooled solve over merchants whose customers are kept apart
therefore equals the solve from the summed statistics, up to float64
rounding.

All arithmetic runs in float64 on the CPU; the model keeps float32 copies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from merchant_app.errors import Cancelled, ModelError
from merchant_app.recommender.dataset import Interactions
from merchant_app.recommender.model import (
    DEFAULT_DIMENSION,
    CustomerFactors,
    FactorModel,
    ItemFactors,
)

logger = logging.getLogger(__name__)

# Defaults chosen by benchmarks/recommender_quality.py (the validation-split
# grid search of merchant_app.recommender.tuning) on the three seed shops,
# local-only mode. docs/model.md has the grid and the numbers.
DEFAULT_REGULARIZATION = 10.0
DEFAULT_ALPHA = 20.0
DEFAULT_ITERATIONS = 20

# Upper bound on the float64 values held by one batch of (k, k) matrices.
_BATCH_VALUES = 1 << 22
# Progress reports of a customer refit with a progress callback, at most.
REFIT_REPORTS = 50


@dataclass(frozen=True)
class AlsConfig:
    """Hyper-parameters of one ALS training run."""

    dimension: int = DEFAULT_DIMENSION
    regularization: float = DEFAULT_REGULARIZATION
    alpha: float = DEFAULT_ALPHA
    iterations: int = DEFAULT_ITERATIONS
    use_biases: bool = True
    seed: int = 0
    init_scale: float = 0.01

    def __post_init__(self) -> None:
        if self.dimension < 1:
            raise ModelError(f"dimension must be at least 1, got {self.dimension}")
        if self.regularization <= 0:
            raise ModelError(
                f"regularization must be positive, got {self.regularization}"
            )
        if self.alpha < 0:
            raise ModelError(f"alpha must not be negative, got {self.alpha}")
        if self.iterations < 1:
            raise ModelError(f"iterations must be at least 1, got {self.iterations}")


# Chosen the same way for a model trained on several merchants' events pooled.
CENTRAL_CONFIG = AlsConfig(regularization=3.0, alpha=20.0, iterations=20)


def config_for_mode(mode: str) -> AlsConfig:
    """Return the tuned configuration for ``"local"`` or ``"central"`` training."""
    if mode == "local":
        return AlsConfig()
    if mode == "central":
        return CENTRAL_CONFIG
    raise ModelError(f"unknown training mode {mode!r}; expected 'local' or 'central'")


@dataclass(frozen=True)
class TrainingProgress:
    """One progress report: ``iteration`` of ``total`` done, objective ``loss``.

    In :func:`train_als` the steps are iterations and ``loss`` the whole
    objective; in :func:`refit_customers` they are customers and ``loss`` the
    objective per customer.
    """

    iteration: int
    total: int
    loss: float


ProgressCallback = Callable[[TrainingProgress], None]
# Called with (start, stop, factors) after a batch of customers is solved.
BatchCallback = Callable[[int, int, torch.Tensor], None]


@dataclass(frozen=True)
class ItemStatistics:
    """Per-item sufficient statistics of one or more merchants' customers.

    With ``z_u`` the customer factor row, extended by a constant 1 when the
    model has item biases (so ``k`` is the dimension, plus 1 with biases):

    - ``gram`` (k, k): sum over all customers of ``z_u z_u^T``.
    - ``lhs`` (n, k, k): for each item, sum over its customers of
      ``(c_ui - 1) z_u z_u^T``.
    - ``rhs`` (n, k): for each item, sum over its customers of ``c_ui z_u``.
    - ``weights`` (n,): for each item, the summed event weights.

    ``item_ids`` (sorted unique int64) lists the items with at least one
    interaction. All tensors are float64.
    """

    item_ids: np.ndarray
    gram: torch.Tensor
    lhs: torch.Tensor
    rhs: torch.Tensor
    weights: torch.Tensor
    use_biases: bool


def confidence(weights: np.ndarray, alpha: float) -> np.ndarray:
    """Return the confidence ``1 + alpha * w`` of pairs with summed weight ``w``."""
    return 1.0 + alpha * np.asarray(weights, dtype=np.float64)


def compute_item_statistics(
    customer_factors: torch.Tensor,
    interactions: Interactions,
    *,
    alpha: float,
    use_biases: bool,
    item_columns: np.ndarray | None = None,
) -> ItemStatistics:
    """Reduce one merchant's customers to per-item statistics.

    ``customer_factors`` has one row per ``interactions.customer_ids``. With
    ``item_columns`` (indices into ``interactions.item_ids``) only those items
    are reduced, which bounds memory; the Gram matrix always covers every
    customer.
    """
    design = _design_matrix(customer_factors, use_biases)
    gram = design.T @ design

    # Keep the pairs of the requested items, grouped by item.
    order = np.argsort(interactions.cols, kind="stable")
    cols = interactions.cols[order]
    if item_columns is None:
        item_columns = np.unique(cols)
    item_columns = np.asarray(item_columns, dtype=np.int64)
    keep = np.isin(cols, item_columns)
    order, cols = order[keep], cols[keep]
    group = np.searchsorted(item_columns, cols)

    rows = torch.from_numpy(interactions.rows[order])
    conf = torch.from_numpy(confidence(interactions.weights[order], alpha))
    vectors = design[rows]
    size = len(item_columns)
    lhs = _scatter_outer(torch.from_numpy(group), vectors, conf - 1.0, size)
    rhs = torch.zeros((size, design.shape[1]), dtype=torch.float64)
    rhs.index_add_(0, torch.from_numpy(group), vectors * conf[:, None])
    weights = torch.zeros(size, dtype=torch.float64)
    weights.index_add_(
        0, torch.from_numpy(group), torch.from_numpy(interactions.weights[order])
    )
    return ItemStatistics(
        item_ids=interactions.item_ids[item_columns],
        gram=gram,
        lhs=lhs,
        rhs=rhs,
        weights=weights,
        use_biases=use_biases,
    )


def sum_item_statistics(parts: Sequence[ItemStatistics]) -> ItemStatistics:
    """Add the statistics of several merchants, in the order given.

    Items present in only some parts take their rows from those parts. The
    caller fixes the order (for example by merchant address) so that every
    merchant adds in the same order and gets the same bits.
    """
    if not parts:
        raise ModelError("no item statistics to sum")
    use_biases = parts[0].use_biases
    width = parts[0].gram.shape[0]
    for part in parts:
        if part.use_biases != use_biases or part.gram.shape[0] != width:
            raise ModelError(
                "item statistics disagree on dimension or item biases; "
                "all merchants must train with the same configuration"
            )

    item_ids = np.unique(np.concatenate([part.item_ids for part in parts]))
    gram = torch.zeros((width, width), dtype=torch.float64)
    lhs = torch.zeros((len(item_ids), width, width), dtype=torch.float64)
    rhs = torch.zeros((len(item_ids), width), dtype=torch.float64)
    weights = torch.zeros(len(item_ids), dtype=torch.float64)
    for part in parts:
        rows = torch.from_numpy(np.searchsorted(item_ids, part.item_ids))
        gram += part.gram
        lhs[rows] += part.lhs
        rhs[rows] += part.rhs
        weights[rows] += part.weights
    return ItemStatistics(item_ids, gram, lhs, rhs, weights, use_biases)


def solve_items(
    statistics: ItemStatistics, *, regularization: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve every item of ``statistics`` for its factors and bias.

    Solves ``(gram + lhs_i + regularization * I) w_i = rhs_i`` per item and
    returns float64 ``(factors, biases)``; biases are zero without
    ``use_biases``.
    """
    width = statistics.gram.shape[0]
    base = statistics.gram + regularization * torch.eye(width, dtype=torch.float64)
    solutions = torch.empty_like(statistics.rhs)
    for start, stop in _batches(len(statistics.item_ids), width):
        matrices = statistics.lhs[start:stop] + base
        solutions[start:stop] = _solve_spd(matrices, statistics.rhs[start:stop])

    if statistics.use_biases:
        return solutions[:, :-1].contiguous(), solutions[:, -1].contiguous()
    return solutions, torch.zeros(len(solutions), dtype=torch.float64)


def solve_customers(
    item_factors: torch.Tensor,
    item_biases: torch.Tensor,
    interactions: Interactions,
    *,
    alpha: float,
    regularization: float,
    batch_rows: int | None = None,
    on_batch: BatchCallback | None = None,
) -> torch.Tensor:
    """Solve every customer of ``interactions`` for its factors, items fixed.

    ``item_factors`` and ``item_biases`` (float64) have one row per
    ``interactions.item_ids``. With the bias moved to the target, customer
    ``u`` solves ``(Y^T Y + sum_i (c_ui - 1) y_i y_i^T + regularization * I)
    x_u = sum_i (c_ui (1 - b_i) + b_i) y_i - Y^T b`` over its items ``i``.

    Customers are solved in batches of at most ``batch_rows`` (default: as
    many as the memory bound allows); each customer's system is solved on its
    own, so the batch size does not change the result. ``on_batch(start,
    stop, factors)`` is called after each batch with its rows' solutions; it
    may raise to stop the solve.
    """
    dimension = item_factors.shape[1]
    base = item_factors.T @ item_factors
    base += regularization * torch.eye(dimension, dtype=torch.float64)
    shared_rhs = item_factors.T @ item_biases

    # interactions are sorted by customer row, so each batch is one slice.
    rows = interactions.rows
    cols = torch.from_numpy(interactions.cols)
    conf = torch.from_numpy(confidence(interactions.weights, alpha))
    customer_count = len(interactions.customer_ids)
    solutions = torch.empty((customer_count, dimension), dtype=torch.float64)
    for start, stop in _batches(customer_count, dimension, limit=batch_rows):
        first, last = np.searchsorted(rows, [start, stop])
        group = torch.from_numpy(rows[first:last] - start)
        vectors = item_factors[cols[first:last]]
        biases = item_biases[cols[first:last]]
        pair_conf = conf[first:last]

        matrices = _scatter_outer(group, vectors, pair_conf - 1.0, stop - start)
        matrices += base
        coefficients = pair_conf * (1.0 - biases) + biases
        targets = -shared_rhs.expand(stop - start, dimension).clone()
        targets.index_add_(0, group, vectors * coefficients[:, None])
        solutions[start:stop] = _solve_spd(matrices, targets)
        if on_batch is not None:
            on_batch(start, stop, solutions[start:stop])
    return solutions


@dataclass(frozen=True)
class _ItemTerms:
    """Item factors and biases, with the matrix products every customer's loss uses."""

    factors: torch.Tensor
    biases: torch.Tensor
    gram: torch.Tensor
    factors_times_biases: torch.Tensor
    biases_squared: torch.Tensor

    @classmethod
    def of(cls, factors: torch.Tensor, biases: torch.Tensor) -> _ItemTerms:
        return cls(
            factors, biases, factors.T @ factors, factors.T @ biases, biases @ biases
        )


def customer_losses(
    customer_factors: torch.Tensor,
    item_factors: torch.Tensor,
    item_biases: torch.Tensor,
    interactions: Interactions,
    *,
    start: int,
    alpha: float,
    regularization: float,
) -> torch.Tensor:
    """Return each customer's share of the training objective.

    ``customer_factors`` (float64) are the rows ``start`` to ``start + n`` of
    ``interactions``. A customer's share is the sum over all items of its
    cells plus its own penalty, so the shares of all customers plus
    ``regularization * (|Y|^2 + |b|^2)`` equal :func:`weighted_loss`.
    """
    terms = _ItemTerms.of(item_factors, item_biases)
    return _customer_shares(
        customer_factors,
        terms,
        interactions,
        start=start,
        alpha=alpha,
        regularization=regularization,
    )


def _customer_shares(
    customer_factors: torch.Tensor,
    terms: _ItemTerms,
    interactions: Interactions,
    *,
    start: int,
    alpha: float,
    regularization: float,
) -> torch.Tensor:
    x, y, b = customer_factors, terms.factors, terms.biases
    count = x.shape[0]
    # Sum over all items of (x . y_i + b_i)^2, from the Gram matrix, so the
    # dense score matrix is never built; the cells with events are corrected
    # below.
    shares = ((x @ terms.gram) * x).sum(dim=1)
    shares += 2.0 * (x @ terms.factors_times_biases) + terms.biases_squared

    first, last = np.searchsorted(interactions.rows, [start, start + count])
    group = torch.from_numpy(interactions.rows[first:last] - start)
    cols = torch.from_numpy(interactions.cols[first:last])
    scores = (x[group] * y[cols]).sum(dim=1) + b[cols]
    conf = torch.from_numpy(confidence(interactions.weights[first:last], alpha))
    shares.index_add_(0, group, conf * (1.0 - scores) ** 2 - scores**2)
    return shares + regularization * (x**2).sum(dim=1)


def weighted_loss(
    customer_factors: torch.Tensor,
    item_factors: torch.Tensor,
    item_biases: torch.Tensor,
    interactions: Interactions,
    *,
    alpha: float,
    regularization: float,
) -> float:
    """Return the full training objective over all customer-item cells.

    It is the sum of the customers' shares (:func:`customer_losses`) and the
    items' penalty.
    """
    shares = customer_losses(
        customer_factors,
        item_factors,
        item_biases,
        interactions,
        start=0,
        alpha=alpha,
        regularization=regularization,
    )
    items_penalty = (item_factors**2).sum() + (item_biases**2).sum()
    return float(shares.sum() + regularization * items_penalty)


def train_als(
    interactions: Interactions,
    config: AlsConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> FactorModel:
    """Train a model on one merchant's (or a pooled) interaction matrix.

    Each iteration solves the customers, then the items. The item factors
    start from ``numpy.random.default_rng(config.seed)``, so equal input and
    configuration give equal bytes.

    Raises:
        Cancelled: when ``cancel`` is set; checked before each half-step.
        ModelError: when there is nothing to train on.
    """
    config = config or AlsConfig()
    if interactions.pair_count == 0:
        raise ModelError("no interactions to train on: the event table is empty")

    rng = np.random.default_rng(config.seed)
    initial = rng.normal(
        scale=config.init_scale, size=(interactions.shape[1], config.dimension)
    )
    item_factors = torch.from_numpy(initial)
    item_biases = torch.zeros(interactions.shape[1], dtype=torch.float64)
    logger.info(
        "ALS training started: %d customers, %d items, %d pairs",
        *interactions.shape,
        interactions.pair_count,
    )

    customer_factors = item_factors.new_zeros((0, config.dimension))
    for iteration in range(1, config.iterations + 1):
        _check_cancel(cancel, iteration)
        customer_factors = solve_customers(
            item_factors,
            item_biases,
            interactions,
            alpha=config.alpha,
            regularization=config.regularization,
        )

        _check_cancel(cancel, iteration)
        item_factors, item_biases = solve_items_in_batches(
            customer_factors, interactions, config
        )

        if progress is not None:
            loss = weighted_loss(
                customer_factors,
                item_factors,
                item_biases,
                interactions,
                alpha=config.alpha,
                regularization=config.regularization,
            )
            progress(TrainingProgress(iteration, config.iterations, loss))

    return FactorModel(
        items=ItemFactors(
            item_ids=interactions.item_ids.copy(),
            factors=item_factors.to(torch.float32),
            biases=item_biases.to(torch.float32),
        ),
        customers=CustomerFactors(
            customer_ids=interactions.customer_ids.copy(),
            factors=customer_factors.to(torch.float32),
        ),
    )


def solve_items_in_batches(
    customer_factors: torch.Tensor, interactions: Interactions, config: AlsConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the item half-step for one matrix, computing statistics per batch.

    Equal to :func:`solve_items` of :func:`compute_item_statistics` over all
    items, but keeps no more than one batch of per-item matrices.
    """
    width = config.dimension + (1 if config.use_biases else 0)
    item_count = interactions.shape[1]
    factors = torch.zeros((item_count, config.dimension), dtype=torch.float64)
    biases = torch.zeros(item_count, dtype=torch.float64)
    for start, stop in _batches(item_count, width):
        statistics = compute_item_statistics(
            customer_factors,
            interactions,
            alpha=config.alpha,
            use_biases=config.use_biases,
            item_columns=np.arange(start, stop),
        )
        factors[start:stop], biases[start:stop] = solve_items(
            statistics, regularization=config.regularization
        )
    return factors, biases


def refit_customers(
    items: ItemFactors,
    interactions: Interactions,
    *,
    alpha: float = DEFAULT_ALPHA,
    regularization: float = DEFAULT_REGULARIZATION,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> CustomerFactors:
    """Solve a merchant's customer factors against fixed (shared) item factors.

    Used in a federated round and after it replaced the item factors.
    ``interactions`` must have been built with ``item_ids=items.item_ids`` so
    its columns are the model's rows.

    With ``progress``, the customers are solved in up to ``REFIT_REPORTS``
    batches and each report carries the customers solved so far and the
    training objective per customer, with the customers not yet solved at
    zero factors and without the terms no customer factor changes (see
    ``_RefitTracker``): the first report is the loss with no customer
    fitted, the last the loss of the solution. The factors do not depend on
    it.

    Raises:
        Cancelled: when ``cancel`` is set; checked after each batch.
    """
    if not np.array_equal(interactions.item_ids, items.item_ids):
        raise ModelError(
            "interactions and item factors list different items; build the "
            "interactions with item_ids=items.item_ids"
        )
    item_factors = items.factors.to(torch.float64)
    item_biases = items.biases.to(torch.float64)
    tracker = _RefitTracker(
        item_factors,
        item_biases,
        interactions,
        alpha=alpha,
        regularization=regularization,
        progress=progress,
        cancel=cancel,
    )
    customer_count = len(interactions.customer_ids)
    factors = solve_customers(
        item_factors,
        item_biases,
        interactions,
        alpha=alpha,
        regularization=regularization,
        batch_rows=-(-customer_count // REFIT_REPORTS) if progress else None,
        on_batch=tracker.batch_done,
    )
    return CustomerFactors(
        customer_ids=interactions.customer_ids.copy(),
        factors=factors.to(torch.float32),
    )


class _RefitTracker:
    """Checks ``cancel`` and reports the objective of a refit batch by batch.

    The objective is kept as a running sum of per-customer shares
    (:func:`customer_losses`): each solved batch replaces its customers'
    shares at zero factors by their shares at the solution. The reported
    value leaves out the terms no customer factor changes (the item penalty
    and, in every share, the sum of the squared item biases), which on a
    large catalog would hide the change in a chart.
    """

    def __init__(
        self,
        item_factors: torch.Tensor,
        item_biases: torch.Tensor,
        interactions: Interactions,
        *,
        alpha: float,
        regularization: float,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        # The item terms are the same for every batch, so they are computed once.
        self.item_terms = _ItemTerms.of(item_factors, item_biases)
        self.interactions = interactions
        self.alpha = alpha
        self.regularization = regularization
        self.progress = progress
        self.cancel = cancel
        self.count = len(interactions.customer_ids)
        if progress is None or self.count == 0:
            return
        zeros = item_factors.new_zeros((self.count, item_factors.shape[1]))
        self.start_shares = self._shares(zeros, 0)
        constant_share = float(self.item_terms.biases_squared)
        self.total = float(self.start_shares.sum()) - self.count * constant_share
        progress(TrainingProgress(0, self.count, self.total / self.count))

    def batch_done(self, start: int, stop: int, factors: torch.Tensor) -> None:
        if self.cancel is not None and self.cancel.is_set():
            logger.info("customer refit cancelled after %d customers", start)
            raise Cancelled(f"training cancelled after {start} customers")
        if self.progress is None:
            return
        solved = self._shares(factors, start).sum()
        self.total += float(solved - self.start_shares[start:stop].sum())
        self.progress(TrainingProgress(stop, self.count, self.total / self.count))

    def _shares(self, factors: torch.Tensor, start: int) -> torch.Tensor:
        return _customer_shares(
            factors,
            self.item_terms,
            self.interactions,
            start=start,
            alpha=self.alpha,
            regularization=self.regularization,
        )


def _design_matrix(customer_factors: torch.Tensor, use_biases: bool) -> torch.Tensor:
    design = customer_factors.to(torch.float64)
    if use_biases:
        ones = torch.ones((design.shape[0], 1), dtype=torch.float64)
        design = torch.cat([design, ones], dim=1)
    return design


def _scatter_outer(
    group: torch.Tensor, vectors: torch.Tensor, scale: torch.Tensor, size: int
) -> torch.Tensor:
    """Sum ``scale * v v^T`` of each pair into its group's (k, k) matrix."""
    width = vectors.shape[1]
    result = torch.zeros((size, width, width), dtype=torch.float64)
    step = max(1, _BATCH_VALUES // (width * width))
    for start in range(0, len(group), step):
        chunk = vectors[start : start + step]
        scaled = chunk * scale[start : start + step, None]
        result.index_add_(
            0, group[start : start + step], scaled[:, :, None] * chunk[:, None, :]
        )
    return result


def _solve_spd(matrices: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    factor, info = torch.linalg.cholesky_ex(matrices)
    if bool((info != 0).any()):
        raise ModelError(
            "a normal-equation matrix is not positive definite; "
            "increase the regularization"
        )
    # Two triangular solves: faster than torch.cholesky_solve on small batches.
    lower = torch.linalg.solve_triangular(factor, targets[:, :, None], upper=False)
    upper = factor.transpose(1, 2)
    return torch.linalg.solve_triangular(upper, lower, upper=True)[:, :, 0]


def _batches(
    count: int, width: int, *, limit: int | None = None
) -> list[tuple[int, int]]:
    step = max(1, _BATCH_VALUES // (width * width))
    if limit is not None:
        step = max(1, min(step, limit))
    return [(start, min(start + step, count)) for start in range(0, count, step)]


def _check_cancel(cancel: threading.Event | None, iteration: int) -> None:
    if cancel is not None and cancel.is_set():
        logger.info("ALS training cancelled at iteration %d", iteration)
        raise Cancelled(f"training cancelled at iteration {iteration}")
