"""Tests of top-K, regenerate, popular fallback and products to promote."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from merchant_app.errors import ModelError
from merchant_app.recommender.als import AlsConfig, train_als
from merchant_app.recommender.dataset import build_interactions
from merchant_app.recommender.recommend import (
    ProductInfo,
    Recommender,
    product_info_from_events,
)
from tests.recommender_support import clustered_events

UNKNOWN_CUSTOMER = 10**12


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return clustered_events(seed=7, customers=80, products=60)


@pytest.fixture(scope="module")
def recommender(events: pd.DataFrame) -> Recommender:
    model = train_als(
        build_interactions(events),
        AlsConfig(dimension=8, regularization=1.0, alpha=10.0, iterations=5),
    )
    return Recommender(model, events, product_info_from_events(events))


def _products(events: pd.DataFrame, customer: int, types: tuple[str, ...]) -> set[int]:
    rows = events[(events["user_id"] == customer) & events["event_type"].isin(types)]
    return set(rows["product_id"].tolist())


def test_top_k_excludes_purchases_when_views_allowed(
    events: pd.DataFrame, recommender: Recommender
) -> None:
    buyers = events.loc[events["event_type"] == "purchase", "user_id"].unique()
    assert len(buyers) > 10

    for customer in buyers:
        bought = _products(events, int(customer), ("purchase",))
        result = recommender.top_k(int(customer), 10, exclude_viewed=False)
        assert not bought & {item.product_id for item in result}


def test_top_k_allows_viewed_when_asked(
    events: pd.DataFrame, recommender: Recommender
) -> None:
    # With views allowed, customers' own viewed products reappear somewhere.
    reappeared = 0
    for customer in range(40):
        viewed = _products(events, customer, ("view",))
        bought = _products(events, customer, ("purchase",))
        result = recommender.top_k(customer, 10, exclude_viewed=False)
        reappeared += len((viewed - bought) & {item.product_id for item in result})

    assert reappeared > 0


def test_top_k_default_excludes_every_interaction(
    events: pd.DataFrame, recommender: Recommender
) -> None:
    for customer in range(40):
        seen = _products(events, customer, ("view", "cart", "purchase"))
        result = recommender.top_k(customer, 10)
        assert len(result) == 10
        assert not seen & {item.product_id for item in result}
        assert all(item.source == "model" for item in result)
        scores = [item.score for item in result]
        assert scores == sorted(scores, reverse=True)


def test_top_k_explains_with_product_info(recommender: Recommender) -> None:
    result = recommender.top_k(0, 3)

    for item in result:
        assert item.category_code == f"group.{item.product_id % 4}"
        assert item.brand == f"brand{item.product_id % 7}"
        assert item.price == pytest.approx(10 + item.product_id)


def test_top_k_favours_customer_group(recommender: Recommender) -> None:
    # Customer 2 belongs to group 2, whose products are those with id % 4 == 2.
    result = recommender.top_k(2, 5)

    in_group = sum(item.product_id % 4 == 2 for item in result)
    assert in_group >= 4


def test_unknown_customer_gets_popular_products(
    events: pd.DataFrame, recommender: Recommender
) -> None:
    result = recommender.top_k(UNKNOWN_CUSTOMER, 5)

    weights = events["event_type"].map({"view": 1.0, "cart": 2.0, "purchase": 4.0})
    totals = weights.groupby(events["product_id"]).sum()
    totals = totals.sort_values(ascending=False, kind="stable")
    assert [item.source for item in result] == ["popular"] * 5
    assert [item.score for item in result] == totals.iloc[:5].tolist()
    assert [item.product_id for item in result] == [int(p) for p in totals.index[:5]]


def test_regenerate_differs_but_stays_in_pool(recommender: Recommender) -> None:
    best = recommender.top_k(5, 50)
    pool = {item.product_id for item in best}

    first = recommender.regenerate(5, 10, seed=1)
    second = recommender.regenerate(5, 10, seed=2)
    repeat = recommender.regenerate(5, 10, seed=1)

    first_ids = [item.product_id for item in first]
    second_ids = [item.product_id for item in second]
    assert len(set(first_ids)) == 10
    assert set(first_ids) <= pool
    assert set(second_ids) <= pool
    assert first_ids != second_ids
    assert first_ids == [item.product_id for item in repeat]
    # Relevance: most drawn products still come from the customer's group.
    assert sum(product % 4 == 5 % 4 for product in first_ids) >= 7


def test_regenerate_unknown_customer_draws_popular(recommender: Recommender) -> None:
    popular = {item.product_id for item in recommender.popular(50)}

    result = recommender.regenerate(UNKNOWN_CUSTOMER, 5, seed=3)

    assert len(result) == 5
    assert {item.product_id for item in result} <= popular


def test_regenerate_rejects_bad_temperature(recommender: Recommender) -> None:
    with pytest.raises(ModelError, match="temperature"):
        recommender.regenerate(5, 10, seed=1, temperature=0.0)


def test_products_to_promote_ranks_by_demand(
    events: pd.DataFrame, recommender: Recommender
) -> None:
    promoted = recommender.products_to_promote(10)

    demands = [item.demand for item in promoted]
    assert demands == sorted(demands, reverse=True)
    assert all(item.demand > 0 for item in promoted)
    assert sum(item.reach for item in promoted) > 0
    # Every group of customers has the same size, so demand spreads over groups.
    assert len({item.product_id % 4 for item in promoted}) >= 2


def test_top_k_rejects_bad_k(recommender: Recommender) -> None:
    with pytest.raises(ModelError, match="k must be"):
        recommender.top_k(0, 0)


def test_product_info_takes_last_present_values() -> None:
    events = pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "product_id": [9, 9, 9],
            "event_type": ["view"] * 3,
            "category_code": ["a.b", None, None],
            "brand": [None, "acme", None],
            "price": [1.0, 2.0, np.nan],
        }
    )

    info = product_info_from_events(events)

    assert info == {9: ProductInfo(category_code="a.b", brand="acme", price=2.0)}


def test_top_k_batch_matches_single_calls(recommender: Recommender) -> None:
    customers = np.array([3, UNKNOWN_CUSTOMER, 0, 11])

    batch = recommender.top_k_batch(customers, 5, batch_size=2)

    single = [recommender.top_k(int(customer), 5) for customer in customers]
    assert [[i.product_id for i in r] for r in batch] == [
        [i.product_id for i in r] for r in single
    ]
