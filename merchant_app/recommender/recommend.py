"""Recommendations from a trained model: top-K, regenerate, products to promote.

A customer's top-K excludes every product the customer already interacted
with (viewed, carted or bought), not only purchases: on the seed shops this
raised HR@10 (docs/model.md has the numbers). ``exclude_viewed=False`` keeps
viewed and carted products and excludes purchases only. A customer the model
does not know gets the merchant's most popular products.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from merchant_app.errors import ModelError
from merchant_app.recommender.dataset import interaction_weights
from merchant_app.recommender.model import FactorModel

logger = logging.getLogger(__name__)

REGENERATE_POOL = 50
REGENERATE_TEMPERATURE = 0.05


@dataclass(frozen=True)
class ProductInfo:
    """Product details shown with a recommendation: category, brand and price."""

    category_code: str | None = None
    brand: str | None = None
    price: float | None = None


@dataclass(frozen=True)
class Recommendation:
    """One recommended product with the reason for its rank.

    ``source`` is ``"model"`` (``score`` is the model score) or ``"popular"``
    (``score`` is the product's summed event weight at this merchant).
    """

    product_id: int
    score: float
    source: Literal["model", "popular"]
    category_code: str | None
    brand: str | None
    price: float | None


@dataclass(frozen=True)
class Promotion:
    """A product ranked by predicted demand among the merchant's customers.

    ``demand`` is the expected number of customers who will interact with it:
    the sum over customers who have not bought it of their score clipped to
    [0, 1] (a weighted least-squares score estimates the 0/1 preference).
    ``reach`` is the number of those customers whose top-10 contains it.
    """

    product_id: int
    demand: float
    reach: int
    category_code: str | None
    brand: str | None
    price: float | None


def product_info_from_events(events: pd.DataFrame) -> dict[int, ProductInfo]:
    """Take each product's last non-empty category, brand and price in ``events``."""
    info: dict[int, ProductInfo] = {}
    columns = ["product_id", "category_code", "brand", "price"]
    for product_id, group in events[columns].groupby("product_id", sort=True):
        category = _last_present(group["category_code"])
        brand = _last_present(group["brand"])
        price = _last_present(group["price"])
        info[int(product_id)] = ProductInfo(
            category_code=None if category is None else str(category),
            brand=None if brand is None else str(brand),
            price=None if price is None else float(price),
        )
    return info


_NO_INFO = ProductInfo()


class Recommender:
    """Serves one merchant's recommendations from its model and event table."""

    def __init__(
        self,
        model: FactorModel,
        events: pd.DataFrame,
        product_info: Mapping[int, ProductInfo],
    ) -> None:
        self._model = model
        self._info = product_info
        # Python ints of the model's item ids, so building results skips numpy.
        self._product_ids: list[int] = model.item_ids.tolist()
        self._item_factors = model.items.factors
        self._item_biases = model.items.biases

        pairs = interaction_weights(events)
        self._popularity = (
            pairs.groupby("product_id")["weight"]
            .sum()
            .sort_values(ascending=False, kind="stable")
        )
        self._bought = _products_by_customer(events, event_types=("purchase",))
        self._seen_columns = _Exclusions.build(events, model.item_ids, None)
        self._bought_columns = _Exclusions.build(events, model.item_ids, ("purchase",))

    def top_k(
        self, customer_id: int, k: int = 10, *, exclude_viewed: bool = True
    ) -> list[Recommendation]:
        """Return the ``k`` best products for ``customer_id``, best first."""
        _check_k(k)
        if not self._is_known(customer_id):
            return self.popular(k, customer_id=customer_id)

        scores = self._customer_scores(customer_id, exclude_viewed)
        count = min(k, int(np.isfinite(scores).sum()))
        top = torch.topk(torch.from_numpy(scores), count).indices.numpy()
        return [self._model_recommendation(int(column), scores) for column in top]

    def top_k_batch(
        self,
        customer_ids: np.ndarray,
        k: int = 10,
        *,
        exclude_viewed: bool = True,
        batch_size: int = 64,
    ) -> list[list[Recommendation]]:
        """Return :meth:`top_k` for many customers, scoring them in batches."""
        _check_k(k)
        customer_ids = np.asarray(customer_ids, dtype=np.int64)
        excluded = self._seen_columns if exclude_viewed else self._bought_columns
        known = self._model.customers.positions(customer_ids) >= 0
        results: list[list[Recommendation]] = []
        for start in range(0, len(customer_ids), batch_size):
            batch = customer_ids[start : start + batch_size]
            vectors = self._model.customer_vectors(batch)
            scores = torch.addmm(self._item_biases, vectors, self._item_factors.T)
            rows, columns = excluded.for_batch(batch)
            scores[torch.from_numpy(rows), torch.from_numpy(columns)] = -torch.inf
            count = min(k, scores.shape[1])
            top_scores, top = torch.topk(scores, count, dim=1)
            for row, customer_id in enumerate(batch):
                if not known[start + row]:
                    results.append(self.popular(k, customer_id=int(customer_id)))
                    continue
                results.append(
                    [
                        self._recommendation(int(column), float(score))
                        for column, score in zip(
                            top[row].tolist(), top_scores[row].tolist(), strict=True
                        )
                        if score != -np.inf
                    ]
                )
        return results

    def regenerate(
        self,
        customer_id: int,
        k: int = 10,
        *,
        seed: int,
        pool: int = REGENERATE_POOL,
        temperature: float = REGENERATE_TEMPERATURE,
        exclude_viewed: bool = True,
    ) -> list[Recommendation]:
        """Return a varied top-``k``: ``k`` products drawn from the best ``pool``.

        Draws without replacement with probability proportional to
        ``exp(score / temperature)``, so a lower temperature stays closer to
        :meth:`top_k`. ``seed`` makes one call reproducible, so pass a new
        seed for each new list. The drawn products are returned best score
        first. An unknown customer gets popular products drawn the same way,
        with ``log(1 + summed event weight)`` in place of the score.
        """
        _check_k(k)
        if temperature <= 0:
            raise ModelError(f"temperature must be positive, got {temperature}")
        if not self._is_known(customer_id):
            candidates = self.popular(max(pool, k), customer_id=customer_id)
            weights = np.log1p([item.score for item in candidates])
            chosen = _draw(np.asarray(weights), k, temperature, seed)
            return sorted((candidates[i] for i in chosen), key=lambda item: -item.score)

        scores = self._customer_scores(customer_id, exclude_viewed)
        count = min(max(pool, k), int(np.isfinite(scores).sum()))
        best = torch.topk(torch.from_numpy(scores), count).indices.numpy()
        chosen = _draw(scores[best], k, temperature, seed)
        picked = sorted(best[chosen], key=lambda column: -scores[column])
        return [self._model_recommendation(int(column), scores) for column in picked]

    def popular(
        self, k: int = 10, *, customer_id: int | None = None
    ) -> list[Recommendation]:
        """Return the merchant's ``k`` most popular products, ties by ascending id.

        With ``customer_id``, that customer's purchases are left out.
        """
        _check_k(k)
        bought = (
            self._bought.get(customer_id, set()) if customer_id is not None else set()
        )
        result = []
        for product_id, weight in self._popularity.items():
            if product_id in bought:
                continue
            info = self._info.get(int(product_id), ProductInfo())
            result.append(
                Recommendation(
                    int(product_id),
                    float(weight),
                    "popular",
                    info.category_code,
                    info.brand,
                    info.price,
                )
            )
            if len(result) == k:
                break
        return result

    def products_to_promote(
        self, k: int = 10, *, batch_size: int = 1024
    ) -> list[Promotion]:
        """Rank products by predicted demand across the merchant's customers.

        See :class:`Promotion` for how demand and reach are computed.
        """
        _check_k(k)
        customers = self._model.customers
        item_count = len(self._model.item_ids)
        demand = torch.zeros(item_count, dtype=torch.float64)
        reach = torch.zeros(item_count, dtype=torch.int64)
        for start in range(0, len(customers.customer_ids), batch_size):
            ids = customers.customer_ids[start : start + batch_size]
            scores = (
                customers.factors[start : start + batch_size] @ self._item_factors.T
            )
            scores = (scores + self._item_biases).to(torch.float64)
            rows, columns = self._bought_columns.for_batch(ids)
            scores[torch.from_numpy(rows), torch.from_numpy(columns)] = -torch.inf
            demand += scores.clamp(0.0, 1.0).sum(dim=0)
            top = torch.topk(scores, min(10, item_count), dim=1).indices
            reach += torch.bincount(top.flatten(), minlength=item_count)

        count = min(k, item_count)
        order = torch.topk(demand, count).indices.numpy()
        result = []
        for column in order:
            product_id = int(self._model.item_ids[column])
            info = self._info.get(product_id, ProductInfo())
            result.append(
                Promotion(
                    product_id,
                    float(demand[column]),
                    int(reach[column]),
                    info.category_code,
                    info.brand,
                    info.price,
                )
            )
        return result

    def _is_known(self, customer_id: int) -> bool:
        return bool(self._model.customers.positions(np.array([customer_id]))[0] >= 0)

    def _customer_scores(self, customer_id: int, exclude_viewed: bool) -> np.ndarray:
        customer = np.array([customer_id], dtype=np.int64)
        vector = self._model.customer_vectors(customer)[0]
        # addmv fuses the product and the bias (measured: about half the time of @, +).
        product = torch.addmv(self._item_biases, self._item_factors, vector)
        scores = product.numpy().astype(np.float64)
        excluded = self._seen_columns if exclude_viewed else self._bought_columns
        scores[excluded.for_customer(customer_id)] = -np.inf
        return scores

    def _model_recommendation(self, column: int, scores: np.ndarray) -> Recommendation:
        return self._recommendation(column, float(scores[column]))

    def _recommendation(self, column: int, score: float) -> Recommendation:
        product_id = self._product_ids[column]
        info = self._info.get(product_id, _NO_INFO)
        return Recommendation(
            product_id,
            score,
            "model",
            info.category_code,
            info.brand,
            info.price,
        )


@dataclass(frozen=True)
class _Exclusions:
    """Model item columns to exclude per customer, as pairs sorted by customer."""

    customer_ids: np.ndarray
    columns: np.ndarray

    @classmethod
    def build(
        cls,
        events: pd.DataFrame,
        item_ids: np.ndarray,
        event_types: tuple[str, ...] | None,
    ) -> _Exclusions:
        selected = events
        if event_types is not None:
            selected = events[events["event_type"].isin(event_types)]
        pairs = selected[["user_id", "product_id"]].drop_duplicates()
        customers = pairs["user_id"].to_numpy(np.int64)
        columns = _positions_in(item_ids, pairs["product_id"].to_numpy(np.int64))
        known = columns >= 0
        order = np.argsort(customers[known], kind="stable")
        return cls(customers[known][order], columns[known][order])

    def for_customer(self, customer_id: int) -> np.ndarray:
        """Return the columns to exclude for one customer."""
        first = np.searchsorted(self.customer_ids, customer_id, side="left")
        last = np.searchsorted(self.customer_ids, customer_id, side="right")
        return self.columns[first:last]

    def for_batch(self, customer_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (row in ``customer_ids``, column) pairs to exclude for a batch."""
        first = np.searchsorted(self.customer_ids, customer_ids, side="left")
        last = np.searchsorted(self.customer_ids, customer_ids, side="right")
        counts = last - first
        rows = np.repeat(np.arange(len(customer_ids)), counts)
        # Position of each pair inside its customer's run, added to its start.
        offsets = np.arange(counts.sum()) - np.repeat(
            np.cumsum(counts) - counts, counts
        )
        return rows, self.columns[np.repeat(first, counts) + offsets]


def _positions_in(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    found = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[found] == ids, found, -1).astype(np.int64)


def _products_by_customer(
    events: pd.DataFrame, *, event_types: tuple[str, ...] | None
) -> dict[int, set[int]]:
    selected = (
        events
        if event_types is None
        else events[events["event_type"].isin(event_types)]
    )
    groups = selected.groupby("user_id")["product_id"]
    return {int(customer): {int(p) for p in products} for customer, products in groups}


def _draw(scores: np.ndarray, k: int, temperature: float, seed: int) -> np.ndarray:
    """Draw ``min(k, len(scores))`` distinct positions, weights exp(score/T)."""
    logits = (scores - scores.max()) / temperature
    weights = np.exp(logits)
    rng = np.random.default_rng(seed)
    count = min(k, len(scores))
    return rng.choice(len(scores), size=count, replace=False, p=weights / weights.sum())


def _last_present(values: pd.Series) -> Any:
    present = values.dropna()
    return None if present.empty else present.iloc[-1]


def _check_k(k: int) -> None:
    if k < 1:
        raise ModelError(f"k must be at least 1, got {k}")
