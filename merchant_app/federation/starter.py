"""The deterministic starter model and the first rows of new items.

Round 1 of a consortium opens on a starter model whose bytes, and so whose
CID, depend only on its parameters and item ids. Its item rows, and the row
any merchant gives an item the base model lacks, come from
:func:`initial_item_rows`: a counter-based hash of (seed, item id, column),
so every merchant gets the same starting row for the same product without
coordination, whatever order or subset of items it has.

The rows are uniform in ``[-init_scale, init_scale]``. They are built from
64-bit integer hashing and exactly rounded float operations only (no
``log``, ``cos`` or library random generator), so they are bit-identical on
every platform. A normal distribution is not needed: ALS replaces every item
row it has data for in the first round.

The default starter holds no items at all: merchants add their own items
with initial rows, and the first aggregate contains every item any merchant
sent. A consortium that agrees on a catalog beforehand can list it; the rows
are the same either way.
"""

from __future__ import annotations

import numpy as np
import torch

from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.shared_model import SharedModel
from merchant_app.recommender.model import ItemFactors

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def initial_item_rows(
    item_ids: np.ndarray, parameters: ConsortiumParameters
) -> np.ndarray:
    """Return the float32 starting factor rows of ``item_ids``, one row each."""
    ids = np.asarray(item_ids, dtype=np.int64).astype(np.uint64)
    columns = np.arange(parameters.dimension, dtype=np.uint64)
    seed = np.uint64(parameters.init_seed)

    # splitmix64 of the seed and item id, then of each column.
    item_keys = _splitmix64(_splitmix64(ids ^ seed) ^ _splitmix64(seed))
    hashes = _splitmix64(item_keys[:, None] + columns[None, :])

    # The top 53 bits give a uniform double in [0, 1), exactly.
    uniform = (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53
    rows = (2.0 * uniform - 1.0) * parameters.init_scale
    return rows.astype(np.float32)


def starter_model(
    parameters: ConsortiumParameters, item_ids: np.ndarray | None = None
) -> SharedModel:
    """Return the round-0 model that opens a consortium's round 1.

    ``item_ids`` (default: none) are sorted and deduplicated; item biases
    start at zero.
    """
    ids = np.unique(np.asarray([] if item_ids is None else item_ids, dtype=np.int64))
    items = ItemFactors(
        item_ids=ids,
        factors=torch.from_numpy(initial_item_rows(ids, parameters)),
        biases=torch.zeros(len(ids), dtype=torch.float32),
    )
    return SharedModel(items=items, round=0, parent_cid=None, parameters=parameters)


def extend_items(
    items: ItemFactors, item_ids: np.ndarray, parameters: ConsortiumParameters
) -> ItemFactors:
    """Return ``items`` plus initial rows for the ids of ``item_ids`` it lacks.

    Rows of ``items`` are kept as they are; the result's ids are sorted.
    """
    requested = np.unique(np.asarray(item_ids, dtype=np.int64))
    new_ids = np.setdiff1d(requested, items.item_ids, assume_unique=True)
    if len(new_ids) == 0:
        return items

    all_ids = np.union1d(items.item_ids, new_ids)
    factors = torch.empty((len(all_ids), parameters.dimension), dtype=torch.float32)
    biases = torch.zeros(len(all_ids), dtype=torch.float32)
    old_rows = torch.from_numpy(np.searchsorted(all_ids, items.item_ids))
    new_rows = torch.from_numpy(np.searchsorted(all_ids, new_ids))
    factors[old_rows] = items.factors.to(torch.float32)
    biases[old_rows] = items.biases.to(torch.float32)
    factors[new_rows] = torch.from_numpy(initial_item_rows(new_ids, parameters))
    return ItemFactors(item_ids=all_ids, factors=factors, biases=biases)


def _splitmix64(values: np.ndarray | np.uint64) -> np.ndarray:
    # uint64 arithmetic wraps modulo 2^64, which splitmix64 relies on.
    with np.errstate(over="ignore"):
        z = np.asarray(values, dtype=np.uint64) + _GOLDEN_GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        return z ^ (z >> np.uint64(31))
