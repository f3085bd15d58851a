"""The factor model, split into its shared and its private half.

A score is ``customer_factors[u] @ item_factors[i] + item_biases[i]``. The item
half (:class:`ItemFactors`) is what a merchant shares with the consortium; the
customer half (:class:`CustomerFactors`) never leaves the merchant's computer.
Both halves hold float32 tensors on the CPU, the dtype of the saved files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_DIMENSION = 32


@dataclass(frozen=True)
class ItemFactors:
    """The shared half: one factor row and one bias per product id.

    ``item_ids`` is sorted, unique int64; ``factors`` has shape
    ``(len(item_ids), dimension)`` and ``biases`` shape ``(len(item_ids),)``.
    """

    item_ids: np.ndarray
    factors: torch.Tensor
    biases: torch.Tensor

    @property
    def dimension(self) -> int:
        return int(self.factors.shape[1])

    def positions(self, product_ids: np.ndarray) -> np.ndarray:
        """Return the row of each product id, or -1 for an id the model lacks."""
        return _positions(self.item_ids, product_ids)


@dataclass(frozen=True)
class CustomerFactors:
    """The private half: one factor row per customer id of one merchant."""

    customer_ids: np.ndarray
    factors: torch.Tensor

    @property
    def dimension(self) -> int:
        return int(self.factors.shape[1])

    def positions(self, customer_ids: np.ndarray) -> np.ndarray:
        """Return the row of each customer id, or -1 for an unknown customer."""
        return _positions(self.customer_ids, customer_ids)


@dataclass(frozen=True)
class FactorModel:
    """A merchant's full model: its customers and the shared items."""

    items: ItemFactors
    customers: CustomerFactors

    @property
    def item_ids(self) -> np.ndarray:
        return self.items.item_ids

    def score(self, customer_ids: np.ndarray) -> np.ndarray:
        """Score every item of the model for each customer id.

        Returns a float32 array of shape ``(len(customer_ids), n_items)``. An
        unknown customer gets a zero factor row, so its scores are the item
        biases alone.
        """
        vectors = self.customer_vectors(np.asarray(customer_ids, dtype=np.int64))
        scores = vectors @ self.items.factors.T + self.items.biases
        return scores.numpy()

    def customer_vectors(self, customer_ids: np.ndarray) -> torch.Tensor:
        """Return the factor rows of ``customer_ids``, zero for unknown ones."""
        rows = self.customers.positions(customer_ids)
        vectors = torch.zeros(
            (len(rows), self.items.dimension), dtype=self.items.factors.dtype
        )
        known = rows >= 0
        if known.any():
            vectors[torch.from_numpy(known)] = self.customers.factors[
                torch.from_numpy(rows[known])
            ]
        return vectors


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    found = np.searchsorted(sorted_ids, ids)
    found = np.minimum(found, len(sorted_ids) - 1)
    return np.where(sorted_ids[found] == ids, found, -1).astype(np.int64)
