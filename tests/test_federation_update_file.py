"""Tests for the update file, the shared model file and the starter model."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from merchant_app.errors import ModelError
from merchant_app.federation.local_update import refit_local_customers
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.shared_model import shared_model_to_bytes
from merchant_app.federation.starter import (
    extend_items,
    initial_item_rows,
    starter_model,
)
from merchant_app.federation.update_file import (
    UPDATE_AXES,
    UPDATE_TENSORS,
    expected_shape,
    normalize_address,
    pack_symmetric,
    unpack_symmetric,
    update_to_bytes,
)
from merchant_app.federation.validation import (
    UpdateContext,
    validate_shared_model,
    validate_update,
)
from merchant_app.tensor_files import load_tensors
from tests.federation_support import (
    BASE_CID,
    PARAMETERS,
    ROUND,
    base_model,
    local_update,
    synthetic_events,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONTEXT = UpdateContext(round=ROUND, base_cid=BASE_CID, parameters=PARAMETERS)

_UPDATE_DIGEST_SCRIPT = """
import hashlib
from tests.federation_support import local_update
from merchant_app.federation.update_file import update_to_bytes
data = update_to_bytes(local_update(5).update)
print(hashlib.sha256(data).hexdigest())
"""

_STARTER_DIGEST_SCRIPT = """
import hashlib
from merchant_app.federation.local_update import refit_local_customers
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.shared_model import shared_model_to_bytes
from merchant_app.federation.starter import starter_model
model = starter_model(ConsortiumParameters(dimension=8), [9, 3, 2**62])
print(hashlib.sha256(shared_model_to_bytes(model)).hexdigest())
"""


def _digest_in_new_process(script: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    return completed.stdout.strip()


def _assert_matches_table(data: bytes) -> None:
    tensors, metadata = load_tensors(data)
    width = PARAMETERS.width
    items = len(tensors["item_ids"])

    assert set(tensors) == set(UPDATE_TENSORS)
    for name, spec in UPDATE_TENSORS.items():
        assert tensors[name].shape == expected_shape(spec, width, items), name
        if spec.dtype == "int64":
            assert tensors[name].dtype == np.int64, name
        else:
            assert tensors[name].dtype in (np.float32, np.float64), name


def test_update_file_round_trip():
    update = local_update(1).update

    parsed = validate_update(update_to_bytes(update, dtype="float64"), CONTEXT)

    assert parsed.header == update.header
    np.testing.assert_array_equal(parsed.item_ids, update.item_ids)
    np.testing.assert_array_equal(parsed.customer_counts, update.customer_counts)
    np.testing.assert_array_equal(parsed.weights, update.weights)
    np.testing.assert_array_equal(parsed.rhs, update.rhs)
    np.testing.assert_array_equal(parsed.lhs_packed, update.lhs_packed)
    np.testing.assert_array_equal(parsed.gram, update.gram)


def test_update_file_float32_rounds_once():
    update = local_update(1).update

    parsed = validate_update(update_to_bytes(update, dtype="float32"), CONTEXT)

    assert parsed.lhs_packed.dtype == np.float32
    np.testing.assert_array_equal(
        parsed.lhs_packed, update.lhs_packed.astype(np.float32)
    )
    np.testing.assert_allclose(parsed.gram, update.gram, rtol=1e-6)


def test_update_file_float32_saves_four_bytes_per_value():
    update = local_update(1).update

    narrow = len(update_to_bytes(update, dtype="float32"))
    wide = len(update_to_bytes(update, dtype="float64"))

    # Each statistic value takes 4 bytes less; the header may differ a little.
    width = PARAMETERS.width
    packed = width * (width + 1) // 2
    values = len(update.item_ids) * (1 + width + packed) + packed
    assert abs((wide - narrow) - 4 * values) < 64


def test_update_file_statistics_match_recommender():
    result = local_update(2)
    update = result.update

    statistics = update.statistics()

    np.testing.assert_allclose(
        pack_symmetric(statistics.lhs.numpy()), update.lhs_packed, rtol=0, atol=0
    )
    assert statistics.lhs.dtype == torch.float64
    assert torch.equal(statistics.lhs, statistics.lhs.transpose(1, 2))


def test_update_file_same_bytes_across_processes():
    digests = {_digest_in_new_process(_UPDATE_DIGEST_SCRIPT) for _ in range(3)}
    local = hashlib.sha256(update_to_bytes(local_update(5).update)).hexdigest()

    assert digests == {local}


def test_update_tensor_table_has_no_customer_axis():
    axes = {axis for spec in UPDATE_TENSORS.values() for axis in spec.axes}

    assert axes <= set(UPDATE_AXES)
    assert not any("customer" in axis for axis in axes)
    assert not any(name.startswith("customer") for name in UPDATE_TENSORS)


def test_update_file_written_tensors_match_table():
    for seed in range(4):
        for dtype in ("float32", "float64"):
            result = local_update(seed, min_customers=1 + seed % 2)
            data = update_to_bytes(result.update, dtype=dtype)

            _assert_matches_table(data)
            tensors, metadata = load_tensors(data)
            customers = len(result.customers.customer_ids)
            sizes = {size for array in tensors.values() for size in array.shape}
            # No axis has the customer count's length (the synthetic shops
            # have more customers than items or statistics values).
            assert customers not in sizes
            assert metadata["customer_count"] == customers


def test_update_min_customers_leaves_out_rare_items():
    events = synthetic_events(7)
    counts = (
        events.drop_duplicates(["user_id", "product_id"]).groupby("product_id").size()
    )

    everything = local_update(7, min_customers=1).update
    private = local_update(7, min_customers=3).update

    assert set(everything.item_ids) == set(counts.index)
    assert set(private.item_ids) == set(counts[counts >= 3].index)
    assert 107 not in set(private.item_ids)
    np.testing.assert_array_equal(private.gram, everything.gram)


def test_pack_unpack_symmetric_round_trip():
    rng = np.random.default_rng(0)
    halves = rng.normal(size=(3, 5, 5))
    matrices = halves + halves.transpose(0, 2, 1)

    unpacked = unpack_symmetric(pack_symmetric(matrices), 5)

    assert pack_symmetric(matrices).shape == (3, 15)
    np.testing.assert_array_equal(unpacked, matrices)


def test_starter_model_same_bytes_across_processes():
    local = starter_model(ConsortiumParameters(dimension=8), [9, 3, 2**62])
    digest = hashlib.sha256(shared_model_to_bytes(local)).hexdigest()

    assert _digest_in_new_process(_STARTER_DIGEST_SCRIPT) == digest


def test_starter_model_rows_independent_of_item_set():
    parameters = ConsortiumParameters(dimension=6)

    few = initial_item_rows(np.array([4, 10]), parameters)
    many = initial_item_rows(np.array([1, 4, 7, 10]), parameters)

    np.testing.assert_array_equal(few, many[[1, 3]])
    assert np.abs(many).max() <= parameters.init_scale
    assert len(np.unique(many)) == many.size


def test_starter_model_depends_on_seed():
    ids = np.arange(5)

    first = initial_item_rows(ids, ConsortiumParameters(init_seed=1))
    second = initial_item_rows(ids, ConsortiumParameters(init_seed=2))

    assert not np.array_equal(first, second)


def test_starter_model_empty_by_default():
    model = starter_model(PARAMETERS)

    assert len(model.items.item_ids) == 0
    assert model.round == 0
    assert model.parent_cid is None


def test_extend_items_keeps_base_rows():
    base = base_model(np.array([2, 5])).items
    changed = base.factors + 1.0
    base = type(base)(base.item_ids, changed, base.biases + 0.5)

    extended = extend_items(base, np.array([5, 1, 9]), PARAMETERS)

    np.testing.assert_array_equal(extended.item_ids, [1, 2, 5, 9])
    assert torch.equal(extended.factors[[1, 2]], changed)
    assert torch.equal(
        extended.factors[[0, 3]],
        torch.from_numpy(initial_item_rows(np.array([1, 9]), PARAMETERS)),
    )
    assert torch.equal(extended.biases, torch.tensor([0.0, 0.5, 0.5, 0.0]))


def test_shared_model_file_round_trip():
    model = base_model(np.array([3, 8, 11]))

    parsed = validate_shared_model(
        shared_model_to_bytes(model),
        parameters=PARAMETERS,
        expected_round=0,
        expected_parent_cid=None,
    )

    np.testing.assert_array_equal(parsed.items.item_ids, model.items.item_ids)
    assert torch.equal(parsed.items.factors, model.items.factors)
    assert torch.equal(parsed.items.biases, model.items.biases)
    assert parsed.parameters == PARAMETERS
    assert parsed.round == 0
    assert parsed.parent_cid is None


def test_normalize_address_lower_case():
    assert normalize_address("0x" + "AB" * 20) == "0x" + "ab" * 20


def test_normalize_address_rejects_short_address():
    with pytest.raises(ModelError, match="invalid merchant address"):
        normalize_address("0x123")


def _item_row(data: bytes, item: int) -> tuple[np.ndarray, np.ndarray]:
    update = validate_update(data, CONTEXT)
    row = int(np.searchsorted(update.item_ids, item))
    assert update.item_ids[row] == item
    lhs = unpack_symmetric(update.lhs_packed[row], PARAMETERS.width)
    return lhs, update.rhs[row]


def _customer_row(result, customer: int) -> np.ndarray:
    row = int(np.searchsorted(result.customers.customer_ids, customer))
    return result.customers.factors.numpy()[row].astype(np.float64)


def test_update_reveals_lone_customer_of_item():
    # What docs/privacy.md states: with min_customers=1, an item bought by one
    # customer gives that customer's factor and weight back exactly.
    events = synthetic_events(4)
    result = local_update(4, events=events)
    lone_customer = int(events["user_id"].iloc[-1])
    lhs, rhs = _item_row(update_to_bytes(result.update, dtype="float64"), 104)

    weight = lhs[-1, -1] / PARAMETERS.alpha
    factor = rhs[:-1] / rhs[-1]

    assert weight == pytest.approx(1.0)
    np.testing.assert_allclose(factor, _customer_row(result, lone_customer), atol=1e-9)


def test_update_reveals_both_customers_of_two_customer_item():
    # With item biases the statistics give the sum of the factors, their
    # weighted sum and weighted second moment; one integer weight is unknown.
    events = synthetic_events(6)
    extra = pd.DataFrame(
        {
            "user_id": [1, 2, 2],
            "product_id": [300, 300, 300],
            "event_type": ["view", "view", "cart"],
        }
    )
    events = pd.concat([events, extra], ignore_index=True)
    result = local_update(6, events=events)
    lhs, rhs = _item_row(update_to_bytes(result.update, dtype="float64"), 300)
    alpha = PARAMETERS.alpha
    total = lhs[-1, -1] / alpha
    weighted_sum = lhs[:-1, -1] / alpha
    factor_sum = rhs[:-1] - lhs[:-1, -1]
    second_moment = lhs[:-1, :-1] / alpha

    best = None
    for first_weight in np.arange(1.0, total):
        second_weight = total - first_weight
        if first_weight == second_weight:
            continue
        first = (weighted_sum - second_weight * factor_sum) / (
            first_weight - second_weight
        )
        second = factor_sum - first
        fitted = first_weight * np.outer(first, first) + second_weight * np.outer(
            second, second
        )
        error = np.abs(fitted - second_moment).max()
        if best is None or error < best[0]:
            best = (error, first_weight, first, second)

    assert best is not None
    _, first_weight, first, second = best
    assert first_weight == 1.0
    np.testing.assert_allclose(first, _customer_row(result, 1), atol=1e-8)
    np.testing.assert_allclose(second, _customer_row(result, 2), atol=1e-8)


def test_update_caps_burst_pair_weight():
    events = synthetic_events(8)
    burst = pd.DataFrame(
        {
            "user_id": [0] * 300,
            "product_id": [1] * 300,
            "event_type": ["purchase"] * 300,
        }
    )
    events = pd.concat([events, burst], ignore_index=True)

    update = local_update(8, events=events).update
    parsed = validate_update(update_to_bytes(update), CONTEXT)

    row = int(np.searchsorted(parsed.item_ids, 1))
    assert parsed.weights[row] <= 1000.0 * parsed.customer_counts[row]
    assert parsed.weights[row] >= 1000.0


def test_local_update_solves_left_out_items_privately():
    result = local_update(9, min_customers=3)
    everything = local_update(9, min_customers=1).update

    left_out = np.setdiff1d(everything.item_ids, result.update.item_ids)

    np.testing.assert_array_equal(result.private_items.item_ids, left_out)
    assert 109 in set(result.private_items.item_ids)
    assert torch.isfinite(result.private_items.factors).all()
    assert result.private_items.factors.abs().max() > 0


def test_refit_local_customers_adds_private_rows():
    result = local_update(9, min_customers=3)
    shared = base_model(result.update.item_ids)

    model = refit_local_customers(shared, synthetic_events(9), result.private_items)

    expected = np.union1d(result.update.item_ids, result.private_items.item_ids)
    np.testing.assert_array_equal(model.item_ids, expected)
    row = int(np.searchsorted(model.item_ids, 109))
    private_row = int(np.searchsorted(result.private_items.item_ids, 109))
    assert torch.equal(
        model.items.factors[row], result.private_items.factors[private_row]
    )
