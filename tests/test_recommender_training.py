"""Tests of ALS training: determinism, progress, cancellation, federated statistics."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import torch

from merchant_app.errors import Cancelled, ModelError
from merchant_app.recommender.als import (
    AlsConfig,
    TrainingProgress,
    compute_item_statistics,
    customer_losses,
    refit_customers,
    solve_customers,
    solve_items,
    sum_item_statistics,
    train_als,
    weighted_loss,
)
from merchant_app.recommender.bpr import BprConfig, train_bpr
from merchant_app.recommender.dataset import build_interactions, interaction_weights
from merchant_app.recommender.io import customer_factors_to_bytes, item_factors_to_bytes
from tests.recommender_support import clustered_events

CONFIG = AlsConfig(dimension=8, regularization=1.0, alpha=10.0, iterations=4)


def test_interaction_weights_skip_remove_from_cart() -> None:
    events = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2],
            "product_id": [5, 5, 5, 6, 5],
            "event_type": ["view", "cart", "purchase", "remove_from_cart", "view"],
        }
    )

    pairs = interaction_weights(events)

    assert pairs.to_dict("list") == {
        "user_id": [1, 2],
        "product_id": [5, 5],
        "weight": [7.0, 1.0],
    }


def test_train_als_same_seed_gives_same_bytes() -> None:
    interactions = build_interactions(clustered_events(seed=3))

    first = train_als(interactions, CONFIG)
    second = train_als(interactions, CONFIG)

    assert item_factors_to_bytes(first.items) == item_factors_to_bytes(second.items)
    assert customer_factors_to_bytes(first.customers) == customer_factors_to_bytes(
        second.customers
    )


def test_train_als_other_seed_gives_other_factors() -> None:
    interactions = build_interactions(clustered_events(seed=3))

    first = train_als(interactions, CONFIG)
    other = train_als(interactions, AlsConfig(**{**CONFIG.__dict__, "seed": 1}))

    assert not torch.equal(first.items.factors, other.items.factors)


def test_train_als_reports_progress_with_falling_loss() -> None:
    interactions = build_interactions(clustered_events(seed=3))
    reports: list[TrainingProgress] = []

    train_als(interactions, CONFIG, progress=reports.append)

    assert [report.iteration for report in reports] == [1, 2, 3, 4]
    assert all(report.total == 4 for report in reports)
    assert reports[-1].loss < reports[0].loss


def test_train_als_cancel_before_start_raises() -> None:
    interactions = build_interactions(clustered_events(seed=3))
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(Cancelled):
        train_als(interactions, CONFIG, cancel=cancel)


def test_train_als_cancel_from_progress_stops_early() -> None:
    interactions = build_interactions(clustered_events(seed=3))
    cancel = threading.Event()
    reports: list[TrainingProgress] = []

    def on_progress(report: TrainingProgress) -> None:
        reports.append(report)
        if report.iteration == 2:
            cancel.set()

    with pytest.raises(Cancelled, match="iteration 3"):
        train_als(interactions, CONFIG, progress=on_progress, cancel=cancel)
    assert len(reports) == 2


def test_train_als_empty_events_raises_model_error() -> None:
    events = pd.DataFrame(
        {"user_id": [1], "product_id": [2], "event_type": ["remove_from_cart"]}
    )

    with pytest.raises(ModelError, match="no interactions"):
        train_als(build_interactions(events), CONFIG)


def test_model_scores_group_products_higher() -> None:
    model = train_als(build_interactions(clustered_events(seed=3)), CONFIG)

    scores = model.score(np.array([0, 1]))

    # Customer 0 is in group 0 (products 0, 4, 8, ...), customer 1 in group 1.
    item_groups = model.item_ids % 4
    assert scores[0, item_groups == 0].mean() > scores[0, item_groups != 0].mean()
    assert scores[1, item_groups == 1].mean() > scores[1, item_groups != 1].mean()


def test_summed_statistics_equal_pooled_item_solve() -> None:
    # Two merchants with disjoint customers and overlapping products.
    shop_a = clustered_events(seed=4, customers=30)
    shop_b = clustered_events(seed=5, customers=30, first_customer=100)
    pooled = build_interactions(pd.concat([shop_a, shop_b]))
    part_a = build_interactions(shop_a, item_ids=pooled.item_ids)
    part_b = build_interactions(shop_b, item_ids=pooled.item_ids)
    generator = torch.Generator().manual_seed(0)
    item_factors = torch.randn(
        (len(pooled.item_ids), 6), generator=generator, dtype=torch.float64
    )
    item_biases = torch.randn(
        len(pooled.item_ids), generator=generator, dtype=torch.float64
    )
    options = {"alpha": 5.0, "regularization": 2.0}

    pooled_customers = solve_customers(item_factors, item_biases, pooled, **options)
    customers_a = solve_customers(item_factors, item_biases, part_a, **options)
    customers_b = solve_customers(item_factors, item_biases, part_b, **options)
    pooled_stats = compute_item_statistics(
        pooled_customers, pooled, alpha=5.0, use_biases=True
    )
    summed = sum_item_statistics(
        [
            compute_item_statistics(customers_a, part_a, alpha=5.0, use_biases=True),
            compute_item_statistics(customers_b, part_b, alpha=5.0, use_biases=True),
        ]
    )

    assert np.array_equal(summed.item_ids, pooled_stats.item_ids)
    torch.testing.assert_close(summed.gram, pooled_stats.gram)
    torch.testing.assert_close(summed.lhs, pooled_stats.lhs)
    factors, biases = solve_items(summed, regularization=2.0)
    expected_factors, expected_biases = solve_items(pooled_stats, regularization=2.0)
    torch.testing.assert_close(factors, expected_factors)
    torch.testing.assert_close(biases, expected_biases)


def test_item_solve_matches_dense_least_squares() -> None:
    interactions = build_interactions(
        clustered_events(seed=6, customers=12, products=8)
    )
    customers = torch.randn(
        (interactions.shape[0], 3),
        generator=torch.Generator().manual_seed(1),
        dtype=torch.float64,
    )
    statistics = compute_item_statistics(
        customers, interactions, alpha=2.0, use_biases=True
    )

    factors, biases = solve_items(statistics, regularization=0.5)

    # Dense weighted ridge regression of each item column on [x_u, 1].
    design = torch.cat(
        [customers, torch.ones((len(customers), 1), dtype=torch.float64)], 1
    )
    confidence = torch.ones(interactions.shape, dtype=torch.float64)
    preference = torch.zeros(interactions.shape, dtype=torch.float64)
    rows, cols = (
        torch.from_numpy(interactions.rows),
        torch.from_numpy(interactions.cols),
    )
    confidence[rows, cols] = torch.from_numpy(1 + 2.0 * interactions.weights)
    preference[rows, cols] = 1.0
    for item in range(interactions.shape[1]):
        weighted = design * confidence[:, item, None]
        matrix = design.T @ weighted + 0.5 * torch.eye(4, dtype=torch.float64)
        solution = torch.linalg.solve(matrix, weighted.T @ preference[:, item])
        torch.testing.assert_close(factors[item], solution[:3])
        torch.testing.assert_close(biases[item], solution[3])


def test_refit_customers_minimises_loss_for_fixed_items() -> None:
    events = clustered_events(seed=3)
    model = train_als(build_interactions(events), CONFIG)
    interactions = build_interactions(events, item_ids=model.items.item_ids)
    options = {"alpha": CONFIG.alpha, "regularization": CONFIG.regularization}
    items = model.items.factors.double(), model.items.biases.double()

    refitted = refit_customers(model.items, interactions, **options)

    assert np.array_equal(refitted.customer_ids, model.customers.customer_ids)
    # The refit is the exact minimiser for fixed items, so no other customer
    # factors (the trained ones, a perturbed copy) give a lower loss.
    refit_loss = weighted_loss(
        refitted.factors.double(), *items, interactions, **options
    )
    trained_loss = weighted_loss(
        model.customers.factors.double(), *items, interactions, **options
    )
    perturbed = refitted.factors.double() + 0.01
    perturbed_loss = weighted_loss(perturbed, *items, interactions, **options)
    assert refit_loss <= trained_loss + 1e-3
    assert refit_loss < perturbed_loss


def test_customer_losses_sum_to_dense_objective() -> None:
    events = clustered_events(seed=5)
    model = train_als(build_interactions(events), CONFIG)
    interactions = build_interactions(events, item_ids=model.items.item_ids)
    options = {"alpha": CONFIG.alpha, "regularization": CONFIG.regularization}
    y, b = model.items.factors.double(), model.items.biases.double()
    x = model.customers.factors.double()
    middle = len(x) // 2

    shares = torch.cat(
        [
            customer_losses(x[:middle], y, b, interactions, start=0, **options),
            customer_losses(x[middle:], y, b, interactions, start=middle, **options),
        ]
    )

    # The objective computed cell by cell on the dense matrices.
    preference = torch.zeros((len(x), len(y)), dtype=torch.float64)
    weight = torch.zeros_like(preference)
    rows = torch.from_numpy(interactions.rows)
    cols = torch.from_numpy(interactions.cols)
    preference[rows, cols] = 1.0
    weight[rows, cols] = torch.tensor(interactions.weights, dtype=torch.float64)
    scores = x @ y.T + b
    dense = (1.0 + CONFIG.alpha * weight) * (preference - scores) ** 2
    penalty = CONFIG.regularization * ((x**2).sum() + (y**2).sum() + (b**2).sum())
    expected = float(dense.sum() + penalty)

    items_penalty = CONFIG.regularization * ((y**2).sum() + (b**2).sum())
    assert float(shares.sum() + items_penalty) == pytest.approx(expected, rel=1e-9)
    assert weighted_loss(x, y, b, interactions, **options) == pytest.approx(
        expected, rel=1e-9
    )


def test_refit_progress_loss_falls() -> None:
    events = clustered_events(seed=3)
    model = train_als(build_interactions(events), CONFIG)
    interactions = build_interactions(events, item_ids=model.items.item_ids)
    options = {"alpha": CONFIG.alpha, "regularization": CONFIG.regularization}
    reports: list[TrainingProgress] = []

    plain = refit_customers(model.items, interactions, **options)
    tracked = refit_customers(
        model.items, interactions, progress=reports.append, **options
    )

    # Smaller batches for the reports do not change a single bit.
    assert customer_factors_to_bytes(plain) == customer_factors_to_bytes(tracked)
    customers = len(interactions.customer_ids)
    assert reports[0].iteration == 0
    assert reports[-1].iteration == customers
    assert all(report.total == customers for report in reports)
    assert len(reports) > 2
    losses = [report.loss for report in reports]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:], strict=False))
    # The last report is the objective of the solution per customer, less
    # the terms that no customer factor changes.
    y, b = model.items.factors.double(), model.items.biases.double()
    final = weighted_loss(tracked.factors.double(), y, b, interactions, **options)
    constant = CONFIG.regularization * ((y**2).sum() + (b**2).sum())
    constant += customers * (b @ b)
    expected = (final - float(constant)) / customers
    assert losses[-1] == pytest.approx(expected, rel=1e-5)


def test_refit_stops_when_cancelled() -> None:
    events = clustered_events(seed=3)
    model = train_als(build_interactions(events), CONFIG)
    interactions = build_interactions(events, item_ids=model.items.item_ids)
    cancel = threading.Event()

    def cancel_after_first(report: TrainingProgress) -> None:
        if report.iteration > 0:
            cancel.set()

    with pytest.raises(Cancelled, match="cancelled after"):
        refit_customers(
            model.items,
            interactions,
            alpha=CONFIG.alpha,
            regularization=CONFIG.regularization,
            progress=cancel_after_first,
            cancel=cancel,
        )


def test_refit_customers_rejects_other_items() -> None:
    events = clustered_events(seed=3)
    model = train_als(build_interactions(events), CONFIG)

    with pytest.raises(ModelError, match="different items"):
        refit_customers(model.items, build_interactions(events.iloc[:20]))


def test_train_bpr_deterministic_and_cancellable() -> None:
    interactions = build_interactions(clustered_events(seed=3))
    config = BprConfig(dimension=8, epochs=2)
    cancel = threading.Event()
    cancel.set()

    first = train_bpr(interactions, config)
    second = train_bpr(interactions, config)

    assert item_factors_to_bytes(first.items) == item_factors_to_bytes(second.items)
    with pytest.raises(Cancelled):
        train_bpr(interactions, config, cancel=cancel)
