"""Tests of saving and loading the two model halves as safetensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from merchant_app.errors import ModelError
from merchant_app.recommender.als import AlsConfig, train_als
from merchant_app.recommender.dataset import build_interactions
from merchant_app.recommender.io import (
    customer_factors_from_bytes,
    item_factors_from_bytes,
    load_customer_factors,
    load_item_factors,
    save_customer_factors,
    save_item_factors,
)
from merchant_app.recommender.model import FactorModel, ItemFactors
from merchant_app.tensor_files import dump_tensors
from tests.recommender_support import clustered_events


@pytest.fixture(scope="module")
def model() -> FactorModel:
    events = clustered_events(seed=3)
    return train_als(build_interactions(events), AlsConfig(dimension=8, iterations=2))


def test_save_load_round_trip_keeps_both_halves(
    tmp_path: Path, model: FactorModel
) -> None:
    items_path = tmp_path / "items.safetensors"
    customers_path = tmp_path / "customers.safetensors"

    save_item_factors(items_path, model.items, {"round": 3})
    save_customer_factors(customers_path, model.customers)
    items, item_metadata = load_item_factors(items_path)
    customers, customer_metadata = load_customer_factors(customers_path)

    assert np.array_equal(items.item_ids, model.items.item_ids)
    assert torch.equal(items.factors, model.items.factors)
    assert torch.equal(items.biases, model.items.biases)
    assert np.array_equal(customers.customer_ids, model.customers.customer_ids)
    assert torch.equal(customers.factors, model.customers.factors)
    assert item_metadata["dimension"] == 8
    assert item_metadata["round"] == 3
    assert customer_metadata["format"] == "merchant-app/customer-factors"


def test_item_file_holds_no_customer_data(tmp_path: Path, model: FactorModel) -> None:
    items_path = tmp_path / "items.safetensors"

    save_item_factors(items_path, model.items)

    data = items_path.read_bytes()
    assert b"customer" not in data


def test_load_rejects_customer_file_as_items(
    tmp_path: Path, model: FactorModel
) -> None:
    path = tmp_path / "customers.safetensors"
    save_customer_factors(path, model.customers)

    with pytest.raises(ModelError, match="format"):
        load_item_factors(path)


def _item_file(**overrides: np.ndarray) -> bytes:
    tensors = {
        "item_ids": np.array([1, 5, 9], dtype=np.int64),
        "item_factors": np.zeros((3, 2), dtype=np.float32),
        "item_biases": np.zeros(3, dtype=np.float32),
    }
    tensors.update(overrides)
    metadata = {
        "format": "merchant-app/item-factors",
        "format_version": 1,
        "dimension": 2,
    }
    return dump_tensors(tensors, metadata)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"item_ids": np.array([5, 1, 9], dtype=np.int64)}, "sorted and unique"),
        ({"item_ids": np.array([1, 1, 9], dtype=np.int64)}, "sorted and unique"),
        ({"item_ids": np.array([-1, 1, 9], dtype=np.int64)}, "negative id"),
        ({"item_ids": np.array([1, 5, 9], dtype=np.int32)}, "int64"),
        ({"item_factors": np.zeros((3, 2), dtype=np.float64)}, "float32"),
        ({"item_factors": np.zeros((3, 3), dtype=np.float32)}, "shape"),
        ({"item_biases": np.array([0, np.nan, 0], dtype=np.float32)}, "NaN"),
        ({"extra": np.zeros(1, dtype=np.float32)}, "expected"),
    ],
)
def test_item_factors_from_bytes_rejects_invalid(
    overrides: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        item_factors_from_bytes(_item_file(**overrides))


def test_item_factors_from_bytes_accepts_valid_file() -> None:
    items, _ = item_factors_from_bytes(_item_file())

    assert isinstance(items, ItemFactors)
    assert items.item_ids.tolist() == [1, 5, 9]


def test_load_rejects_newer_format_version() -> None:
    data = dump_tensors(
        {
            "customer_ids": np.zeros(0, dtype=np.int64),
            "customer_factors": np.zeros((0, 2), np.float32),
        },
        {
            "format": "merchant-app/customer-factors",
            "format_version": 2,
            "dimension": 2,
        },
    )

    with pytest.raises(ModelError, match="format version 2"):
        customer_factors_from_bytes(data)


def test_load_rejects_garbage_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        item_factors_from_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="not found"):
        load_item_factors(tmp_path / "missing.safetensors")
