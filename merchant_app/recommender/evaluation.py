"""The evaluation protocol every quality number of the project uses.

Hold-one-out, per merchant: for each customer with at least 2 distinct
products (any event type, ``remove_from_cart`` included), one of them is held
out. Reading of the rule: one ``numpy.random.default_rng(seed)`` is created
fresh for each merchant (seed 42 for the test split) and shared across that
merchant's whole walk. The walk visits the customers in ascending id order.
For each, ``rng.integers(n)`` picks one of the customer's n distinct products
in ascending id order, which draws the same numbers as ``rng.choice`` over
that list.

Each held-out (customer, product) pair is removed from EVERY merchant's
training events, because customer ids are shared across the seed shops and a
pooled model would otherwise train on the held-out pair. For each test customer, every
product of the catalog (the union of all merchants' products, held-out ones
included) is ranked except the customer's training products at that
merchant. HR@10 and NDCG@10 are reported per merchant and as their plain
mean.

Ranking: items are ordered by score, ties by ascending product id. A product
the model cannot score (unknown to a local model) ranks below every product it
can score and is never a hit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

TEST_SEED = 42
CUTOFF = 10


class RankingModel(Protocol):
    """The model interface the protocol uses: item ids and a score matrix."""

    @property
    def item_ids(self) -> np.ndarray: ...

    def score(self, customer_ids: np.ndarray) -> np.ndarray:
        """Return scores of shape ``(len(customer_ids), len(item_ids))``."""
        ...


# Trains a model on an event table (columns user_id, product_id, event_type).
Trainer = Callable[[pd.DataFrame], RankingModel]


@dataclass(frozen=True)
class HoldOutSplit:
    """Training events and held-out pairs of several merchants.

    ``train`` maps merchant name to its events minus every held-out pair.
    ``test`` maps merchant name to its held-out pairs (``user_id``,
    ``product_id``), one row per test customer in ascending ``user_id``.
    ``catalog`` is the sorted union of all merchants' product ids.
    """

    train: dict[str, pd.DataFrame]
    test: dict[str, pd.DataFrame]
    catalog: np.ndarray


@dataclass(frozen=True)
class MerchantScore:
    """HR@10 and NDCG@10 of one merchant over ``test_customers`` customers."""

    name: str
    hr10: float
    ndcg10: float
    test_customers: int


@dataclass(frozen=True)
class EvaluationResult:
    """Per-merchant scores and their plain (unweighted) mean."""

    merchants: list[MerchantScore]

    @property
    def average_hr10(self) -> float:
        return float(np.mean([merchant.hr10 for merchant in self.merchants]))

    @property
    def average_ndcg10(self) -> float:
        return float(np.mean([merchant.ndcg10 for merchant in self.merchants]))

    def to_json(self) -> dict[str, object]:
        """Return the JSON shape the ``evaluate`` command writes."""
        return {
            "merchants": [
                {"name": m.name, "hr10": m.hr10, "ndcg10": m.ndcg10}
                for m in self.merchants
            ],
            "average": {"hr10": self.average_hr10, "ndcg10": self.average_ndcg10},
        }


def hold_out_pairs(events: pd.DataFrame, *, seed: int = TEST_SEED) -> pd.DataFrame:
    """Pick one held-out product per eligible customer of one merchant.

    Returns columns ``user_id`` and ``product_id`` (int64), ascending
    ``user_id``. See the module docstring for the exact rule.
    """
    pairs = events[["user_id", "product_id"]].drop_duplicates()
    pairs = pairs.sort_values(["user_id", "product_id"], kind="stable")
    customers = pairs["user_id"].to_numpy(np.int64)
    products = pairs["product_id"].to_numpy(np.int64)
    starts = np.flatnonzero(np.r_[True, customers[1:] != customers[:-1]])
    stops = np.r_[starts[1:], len(customers)]

    # One generator for the whole walk over this merchant's customers.
    rng = np.random.default_rng(seed)
    held_users: list[int] = []
    held_products: list[int] = []
    for start, stop in zip(starts, stops, strict=True):
        if stop - start < 2:
            continue
        choice = int(rng.integers(stop - start))
        held_users.append(int(customers[start]))
        held_products.append(int(products[start + choice]))
    return pd.DataFrame(
        {
            "user_id": np.array(held_users, dtype=np.int64),
            "product_id": np.array(held_products, dtype=np.int64),
        }
    )


def split_hold_one_out(
    merchants: Mapping[str, pd.DataFrame], *, seed: int = TEST_SEED
) -> HoldOutSplit:
    """Apply the protocol to several merchants' event tables."""
    test = {
        name: hold_out_pairs(events, seed=seed) for name, events in merchants.items()
    }
    removed = pd.concat(list(test.values()), ignore_index=True).drop_duplicates()
    train = {
        name: _without_pairs(events, removed) for name, events in merchants.items()
    }
    catalog = np.unique(
        np.concatenate(
            [events["product_id"].to_numpy(np.int64) for events in merchants.values()]
        )
    )
    for name in merchants:
        logger.debug(
            "hold-one-out split %s: %d test customers, %d of %d events kept",
            name,
            len(test[name]),
            len(train[name]),
            len(merchants[name]),
        )
    return HoldOutSplit(train=train, test=test, catalog=catalog)


def evaluate_local(
    split: HoldOutSplit,
    trainer: Trainer,
    *,
    excluded_event_types: Collection[str] | None = None,
) -> EvaluationResult:
    """Train one model per merchant on its own events and score each.

    ``excluded_event_types`` narrows which training products are excluded
    from ranking; ``None`` (the protocol) excludes products of every type.
    """
    scores = []
    for name, events in split.train.items():
        model = trainer(events)
        scores.append(
            score_merchant(
                name, model, split, excluded_event_types=excluded_event_types
            )
        )
    return EvaluationResult(scores)


def evaluate_central(
    split: HoldOutSplit,
    trainer: Trainer,
    *,
    excluded_event_types: Collection[str] | None = None,
) -> EvaluationResult:
    """Train one model on all merchants' training events pooled, score each."""
    pooled = pd.concat(list(split.train.values()), ignore_index=True)
    model = trainer(pooled)
    return EvaluationResult(
        [
            score_merchant(
                name, model, split, excluded_event_types=excluded_event_types
            )
            for name in split.train
        ]
    )


def score_merchant(
    name: str,
    model: RankingModel,
    split: HoldOutSplit,
    *,
    excluded_event_types: Collection[str] | None = None,
) -> MerchantScore:
    """Compute HR@10 and NDCG@10 of ``model`` on merchant ``name``'s test pairs."""
    test = split.test[name]
    if len(test) == 0:
        logger.warning("merchant %s has no test customers; scores are 0", name)
        return MerchantScore(name, 0.0, 0.0, 0)

    training = split.train[name]
    if excluded_event_types is not None:
        training = training[training["event_type"].isin(list(excluded_event_types))]

    ranks = rank_held_out(
        model,
        customers=test["user_id"].to_numpy(np.int64),
        targets=test["product_id"].to_numpy(np.int64),
        training=training,
        catalog=split.catalog,
    )
    hits = ranks < CUTOFF
    gains = np.where(hits, 1.0 / np.log2(np.minimum(ranks, CUTOFF) + 2.0), 0.0)
    return MerchantScore(name, float(hits.mean()), float(gains.mean()), len(test))


def rank_held_out(
    model: RankingModel,
    *,
    customers: np.ndarray,
    targets: np.ndarray,
    training: pd.DataFrame,
    catalog: np.ndarray,
    batch_size: int = 512,
) -> np.ndarray:
    """Return the 0-based rank of each target among its customer's candidates.

    Candidates are ``catalog`` minus the customer's products in ``training``.
    A target the model cannot score gets rank ``len(catalog)`` (a miss).
    """
    model_items = np.asarray(model.item_ids, dtype=np.int64)
    model_columns = np.searchsorted(catalog, model_items)
    if not np.array_equal(
        catalog[np.minimum(model_columns, len(catalog) - 1)], model_items
    ):
        # Items outside the catalog cannot be ranked in it; drop them.
        inside = np.isin(model_items, catalog)
        model_columns = np.where(inside, model_columns, -1)
    else:
        inside = np.ones(len(model_items), dtype=bool)

    target_columns = np.searchsorted(catalog, targets)
    seen = training[training["user_id"].isin(customers)][["user_id", "product_id"]]
    seen = seen.drop_duplicates()

    ranks = np.empty(len(customers), dtype=np.int64)
    for start in range(0, len(customers), batch_size):
        stop = min(start + batch_size, len(customers))
        batch_customers = customers[start:stop]

        # Scores over the catalog; -inf where the model has no item.
        model_scores = np.asarray(model.score(batch_customers), dtype=np.float64)
        scores = np.full((stop - start, len(catalog)), -np.inf)
        scores[:, model_columns[inside]] = model_scores[:, inside]

        # Exclude each customer's training products at this merchant.
        # (customers need not be sorted or unique, so join on the id).
        batch_rows = pd.DataFrame(
            {"row": np.arange(stop - start), "user_id": batch_customers}
        )
        batch_seen = batch_rows.merge(seen, on="user_id")
        seen_cols = np.searchsorted(catalog, batch_seen["product_id"].to_numpy())
        scores[batch_seen["row"].to_numpy(), seen_cols] = np.nan

        ranks[start:stop] = _ranks_of_targets(
            scores, target_columns[start:stop], len(catalog)
        )
    return ranks


def _ranks_of_targets(
    scores: np.ndarray, target_columns: np.ndarray, catalog_size: int
) -> np.ndarray:
    rows = np.arange(len(target_columns))
    target_scores = scores[rows, target_columns]
    candidate = ~np.isnan(scores)
    higher = (scores > target_scores[:, None]) & candidate
    columns = np.arange(scores.shape[1])
    tied_before = (
        (scores == target_scores[:, None])
        & candidate
        & (columns[None, :] < target_columns[:, None])
    )
    ranks = higher.sum(axis=1) + tied_before.sum(axis=1)
    unscorable = ~np.isfinite(target_scores)
    return np.where(unscorable, catalog_size, ranks)


def _without_pairs(events: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    keys = pd.MultiIndex.from_frame(events[["user_id", "product_id"]])
    removed = pd.MultiIndex.from_frame(pairs[["user_id", "product_id"]])
    return events[~keys.isin(removed)].reset_index(drop=True)
