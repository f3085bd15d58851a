"""Tests for aggregating update files into the next shared model."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from merchant_app.errors import ModelError
from merchant_app.federation.aggregation import RobustOptions, aggregate_updates
from merchant_app.federation.local_update import compute_local_update
from merchant_app.federation.shared_model import SharedModel
from merchant_app.federation.starter import starter_model
from merchant_app.federation.update_file import (
    ModelUpdate,
    StatisticsDtype,
    pack_symmetric,
    update_to_bytes,
)
from merchant_app.federation.validation import ValidationLimits
from merchant_app.recommender.dataset import EVENT_WEIGHTS
from tests.federation_support import (
    ADDRESSES,
    BASE_CID,
    PARAMETERS,
    ROUND,
    base_model,
    local_update,
    synthetic_events,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SEEDS = (21, 22, 23)

_AGGREGATE_DIGEST_SCRIPT = """
import hashlib
from tests.test_federation_aggregation import aggregate_three
print(hashlib.sha256(aggregate_three().model_bytes).hexdigest())
"""


def three_updates(
    dtype: StatisticsDtype = "float32", base: SharedModel | None = None
) -> list[tuple[str, bytes]]:
    return [
        (
            ADDRESSES[index],
            update_to_bytes(
                local_update(seed, address_index=index, base=base).update,
                dtype=dtype,
            ),
        )
        for index, seed in enumerate(SEEDS)
    ]


def aggregate_three(**kwargs):
    base = kwargs.pop("base", None) or base_model()
    return aggregate_updates(
        base, three_updates(base=base), round_id=ROUND, base_cid=BASE_CID, **kwargs
    )


def pooled_item_solve(base) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve every item from the merchants' events and customer factors.

    Written from the ALS normal equations directly, without the recommender's
    statistics code: for item i, ``(sum of z z^T over every customer of every
    shop + sum over i's customers of alpha w z z^T + lambda I) [y_i, b_i] =
    sum over i's customers of (1 + alpha w) z`` with ``z = [x_u, 1]``.
    """
    alpha, regularization = PARAMETERS.alpha, PARAMETERS.regularization
    width = PARAMETERS.width
    gram = np.zeros((width, width))
    lhs: dict[int, np.ndarray] = {}
    rhs: dict[int, np.ndarray] = {}
    for index, seed in enumerate(SEEDS):
        customers = local_update(seed, address_index=index, base=base).customers
        vectors = {
            int(customer): np.append(row.astype(np.float64), 1.0)
            for customer, row in zip(
                customers.customer_ids, customers.factors.numpy(), strict=True
            )
        }
        for vector in vectors.values():
            gram += np.outer(vector, vector)

        pair_weights: dict[tuple[int, int], float] = {}
        for user, product, event in synthetic_events(seed).itertuples(index=False):
            key = (int(user), int(product))
            pair_weights[key] = pair_weights.get(key, 0.0) + EVENT_WEIGHTS[event]
        for (user, product), weight in pair_weights.items():
            z = vectors[user]
            lhs.setdefault(product, np.zeros((width, width)))
            rhs.setdefault(product, np.zeros(width))
            lhs[product] += alpha * weight * np.outer(z, z)
            rhs[product] += (1.0 + alpha * weight) * z

    item_ids = np.array(sorted(lhs))
    solutions = np.array(
        [
            np.linalg.solve(
                gram + lhs[item] + regularization * np.eye(width), rhs[item]
            )
            for item in item_ids
        ]
    )
    return item_ids, solutions[:, :-1], solutions[:, -1]


def test_aggregate_equals_pooled_item_solve():
    base = base_model()
    item_ids, factors, biases = pooled_item_solve(base)

    result = aggregate_updates(
        base, three_updates("float64", base), round_id=ROUND, base_cid=BASE_CID
    )

    np.testing.assert_array_equal(result.model.items.item_ids, item_ids)
    np.testing.assert_allclose(
        result.model.items.factors.numpy(), factors, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        result.model.items.biases.numpy(), biases, rtol=1e-5, atol=1e-7
    )
    assert result.model.items.factors.dtype == torch.float32


def test_aggregate_float32_statistics_close_to_pooled_solve():
    base = base_model()
    _, factors, biases = pooled_item_solve(base)

    result = aggregate_updates(
        base, three_updates("float32", base), round_id=ROUND, base_cid=BASE_CID
    )

    np.testing.assert_allclose(result.model.items.factors.numpy(), factors, atol=1e-5)
    np.testing.assert_allclose(result.model.items.biases.numpy(), biases, atol=1e-5)


def test_aggregate_keeps_untouched_base_rows():
    base = base_model(np.array([3, 500, 501]))

    result = aggregate_three(base=base)

    rows = result.model.items.positions(np.array([500, 501]))
    assert torch.equal(result.model.items.factors[rows], base.items.factors[1:])
    assert torch.equal(result.model.items.biases[rows], base.items.biases[1:])
    assert result.untouched_items == 2
    changed = result.model.items.factors[result.model.items.positions(np.array([3]))]
    assert not torch.equal(changed, base.items.factors[:1])


def test_aggregate_adds_new_items_sorted():
    base = base_model(np.array([3, 500]))
    sent = set()
    for index, seed in enumerate(SEEDS):
        sent |= set(local_update(seed, address_index=index, base=base).update.item_ids)

    result = aggregate_three(base=base)

    ids = result.model.items.item_ids
    assert set(ids) == sent | {500}
    assert np.all(np.diff(ids) > 0)
    assert result.new_items == len(sent - {3})


def test_aggregate_metadata_names_round_and_parent():
    result = aggregate_three()

    assert result.model.round == ROUND
    assert result.model.parent_cid == BASE_CID
    assert result.model.parameters == PARAMETERS
    assert result.included == sorted(ADDRESSES)


def test_aggregate_independent_of_input_order():
    base = base_model()
    updates = three_updates(base=base)
    shuffled = [
        (address.upper().replace("0X", "0x"), data)
        for address, data in reversed(updates)
    ]

    first = aggregate_updates(base, updates, round_id=ROUND, base_cid=BASE_CID)
    second = aggregate_updates(base, shuffled, round_id=ROUND, base_cid=BASE_CID)

    assert first.model_bytes == second.model_bytes


def test_aggregate_same_bytes_across_processes():
    local = hashlib.sha256(aggregate_three().model_bytes).hexdigest()

    digests = {
        subprocess.run(
            [sys.executable, "-c", _AGGREGATE_DIGEST_SCRIPT],
            check=True,
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
        ).stdout.strip()
        for _ in range(2)
    }

    assert digests == {local}


def test_aggregate_accepts_parsed_updates():
    base = base_model()
    parsed = [
        (ADDRESSES[index], local_update(seed, address_index=index).update)
        for index, seed in enumerate(SEEDS)
    ]

    from_objects = aggregate_updates(base, parsed, round_id=ROUND, base_cid=BASE_CID)
    from_bytes = aggregate_updates(
        base, three_updates("float64"), round_id=ROUND, base_cid=BASE_CID
    )

    assert from_objects.model_bytes == from_bytes.model_bytes


def test_aggregate_excludes_invalid_update():
    base = base_model()
    updates = three_updates(base=base)
    broken = [*updates[:2], (updates[2][0], b"not a safetensors file")]

    result = aggregate_updates(base, broken, round_id=ROUND, base_cid=BASE_CID)
    reference = aggregate_updates(base, updates[:2], round_id=ROUND, base_cid=BASE_CID)

    assert [excluded.merchant for excluded in result.excluded] == [updates[2][0]]
    assert result.excluded[0].reason == "format"
    assert result.model_bytes == reference.model_bytes


def test_aggregate_excludes_update_of_other_merchant():
    updates = three_updates()
    relabelled = [updates[0], (updates[1][0], updates[2][1])]

    result = aggregate_updates(
        base_model(), relabelled, round_id=ROUND, base_cid=BASE_CID
    )

    assert [(e.merchant, e.reason) for e in result.excluded] == [
        (updates[1][0], "merchant")
    ]


def test_aggregate_raises_without_valid_update():
    updates = three_updates()

    with pytest.raises(ModelError, match="no valid update for round 2"):
        aggregate_updates(base_model(), updates, round_id=ROUND + 1, base_cid=BASE_CID)


def test_aggregate_rejects_duplicate_address():
    updates = three_updates()

    with pytest.raises(ModelError, match="two updates"):
        aggregate_updates(
            base_model(),
            [updates[0], (updates[0][0].upper().replace("0X", "0x"), updates[1][1])],
            round_id=ROUND,
            base_cid=BASE_CID,
        )


def _poisoned(
    update: ModelUpdate, item: int, direction: np.ndarray, share: float = 0.9
) -> ModelUpdate:
    """Replace ``item``'s row by one fake customer near the validation limits.

    The fake customer has 0.9 times the largest factor norm and ``share``
    times the largest pair weight validation accepts, so the file passes
    every rule.
    """
    limits = ValidationLimits()
    weight = share * limits.max_pair_weight
    vector = np.append(0.9 * limits.max_factor_norm * direction, 1.0)
    row = int(np.searchsorted(update.item_ids, item))
    assert update.item_ids[row] == item

    counts = update.customer_counts.copy()
    weights = update.weights.copy()
    rhs = update.rhs.copy()
    lhs = update.lhs_packed.copy()
    counts[row] = 1
    weights[row] = weight
    rhs[row] = (1.0 + PARAMETERS.alpha * weight) * vector
    lhs[row] = pack_symmetric(PARAMETERS.alpha * weight * np.outer(vector, vector))
    return dataclasses.replace(
        update, customer_counts=counts, weights=weights, rhs=rhs, lhs_packed=lhs
    )


def _without_item(update: ModelUpdate, item: int) -> ModelUpdate:
    keep = update.item_ids != item
    return dataclasses.replace(
        update,
        item_ids=update.item_ids[keep],
        customer_counts=update.customer_counts[keep],
        weights=update.weights[keep],
        rhs=update.rhs[keep],
        lhs_packed=update.lhs_packed[keep],
    )


def _row(result, item: int) -> np.ndarray:
    row = result.model.items.positions(np.array([item]))
    return result.model.items.factors[row].numpy()[0]


def _files(updates: list[ModelUpdate]) -> list[tuple[str, bytes]]:
    return [
        (ADDRESSES[index], update_to_bytes(update, dtype="float64"))
        for index, update in enumerate(updates)
    ]


def test_robust_option_bounds_poisoned_update():
    base = base_model()
    honest = [
        local_update(seed, address_index=index).update
        for index, seed in enumerate(SEEDS)
    ]
    direction = np.eye(PARAMETERS.dimension)[0]
    poisoned = _files([*honest[:2], _poisoned(honest[2], 3, direction)])
    without = _files([*honest[:2], _without_item(honest[2], 3)])

    def aggregate(files, robust=None):
        return aggregate_updates(
            base, files, round_id=ROUND, base_cid=BASE_CID, robust=robust
        )

    plain = aggregate(poisoned)
    robust = aggregate(poisoned, RobustOptions())
    reference = aggregate(without)
    honest_row = _row(aggregate(_files(honest)), 3)

    # The poison passes validation and, without the option, drags the item.
    assert plain.excluded == []
    plain_shift = np.linalg.norm(_row(plain, 3) - honest_row)
    assert plain_shift > 0.5
    # With it, the outlying contribution is left out of that item only, so
    # the item is what the other two shops' statistics give.
    assert robust.trimmed_contributions == 1
    np.testing.assert_array_equal(_row(robust, 3), _row(reference, 3))
    assert np.linalg.norm(_row(robust, 3) - honest_row) < plain_shift


def test_robust_option_effect_independent_of_poison_size():
    base = base_model()
    honest = [
        local_update(seed, address_index=index).update
        for index, seed in enumerate(SEEDS)
    ]
    direction = np.eye(PARAMETERS.dimension)[1]
    rows = {}
    plain_rows = {}
    for share in (0.3, 0.9):
        files = _files([*honest[:2], _poisoned(honest[2], 3, direction, share)])
        rows[share] = _row(
            aggregate_updates(
                base,
                files,
                round_id=ROUND,
                base_cid=BASE_CID,
                robust=RobustOptions(),
            ),
            3,
        )
        plain_rows[share] = _row(
            aggregate_updates(base, files, round_id=ROUND, base_cid=BASE_CID), 3
        )

    np.testing.assert_array_equal(rows[0.3], rows[0.9])
    assert not np.array_equal(plain_rows[0.3], plain_rows[0.9])


def test_robust_option_keeps_honest_updates():
    plain = aggregate_three()
    robust = aggregate_three(robust=RobustOptions())

    assert robust.trimmed_contributions == 0
    assert robust.model_bytes == plain.model_bytes


def test_robust_option_excludes_oversized_customer_count():
    base = base_model()
    honest = [
        local_update(seed, address_index=index).update
        for index, seed in enumerate(SEEDS)
    ]
    header = dataclasses.replace(honest[2].header, customer_count=10_000)
    gram = honest[2].gram.copy()
    gram[-1, -1] = 10_000.0
    inflated = dataclasses.replace(honest[2], header=header, gram=gram)
    files = [
        (ADDRESSES[i], update_to_bytes(u, dtype="float64"))
        for i, u in enumerate([*honest[:2], inflated])
    ]

    result = aggregate_updates(
        base, files, round_id=ROUND, base_cid=BASE_CID, robust=RobustOptions()
    )

    assert [(e.merchant, e.reason) for e in result.excluded] == [
        (ADDRESSES[2], "outlier")
    ]


def test_robust_options_reject_ratio_below_one():
    with pytest.raises(ModelError, match="max_weight_ratio"):
        RobustOptions(max_weight_ratio=0.5)


def test_aggregate_without_item_biases():
    parameters = dataclasses.replace(PARAMETERS, use_biases=False)
    base = starter_model(parameters)
    files = []
    for index, seed in enumerate(SEEDS):
        result = compute_local_update(
            base,
            synthetic_events(seed),
            round_id=ROUND,
            base_cid=BASE_CID,
            merchant=ADDRESSES[index],
        )
        assert result.update.rhs.shape[1] == parameters.dimension
        files.append((ADDRESSES[index], update_to_bytes(result.update)))

    result = aggregate_updates(base, files, round_id=ROUND, base_cid=BASE_CID)

    assert result.excluded == []
    assert torch.count_nonzero(result.model.items.biases) == 0
    assert torch.isfinite(result.model.items.factors).all()
