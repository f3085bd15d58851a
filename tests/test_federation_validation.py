"""Tests that validation rejects every kind of bad update and model file."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from merchant_app.errors import InvalidModelFileError, InvalidUpdateError
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.shared_model import SharedModel, shared_model_to_bytes
from merchant_app.federation.update_file import packed_size, update_to_bytes
from merchant_app.federation.validation import (
    UpdateContext,
    ValidationLimits,
    validate_shared_model,
    validate_update,
)
from merchant_app.recommender.io import item_factors_to_bytes
from merchant_app.recommender.model import ItemFactors
from merchant_app.tensor_files import dump_tensors, load_tensors
from tests.federation_support import (
    BASE_CID,
    PARAMETERS,
    ROUND,
    base_model,
    local_update,
)

CONTEXT = UpdateContext(round=ROUND, base_cid=BASE_CID, parameters=PARAMETERS)
Tensors = dict[str, np.ndarray]
Metadata = dict[str, Any]


@pytest.fixture(scope="module")
def valid_bytes() -> bytes:
    return update_to_bytes(local_update(11).update)


def _crafted(valid: bytes, change: Callable[[Tensors, Metadata], None]) -> bytes:
    tensors, metadata = load_tensors(valid)
    tensors = {name: array.copy() for name, array in tensors.items()}
    change(tensors, metadata)
    return dump_tensors(tensors, metadata)


def _reason(data: bytes, limits: ValidationLimits | None = None) -> str:
    with pytest.raises(InvalidUpdateError) as caught:
        validate_update(data, CONTEXT, limits)
    return caught.value.reason


def _set(name: str, row: int, column: int | None, value: float):
    def change(tensors: Tensors, metadata: Metadata) -> None:
        if column is None:
            tensors[name][row] = value
        else:
            tensors[name][row, column] = value

    return change


def _scale(name: str, factor: float):
    def change(tensors: Tensors, metadata: Metadata) -> None:
        tensors[name] = tensors[name] * np.asarray(factor, tensors[name].dtype)

    return change


def _meta(key: str, value: Any):
    def change(tensors: Tensors, metadata: Metadata) -> None:
        metadata[key] = value

    return change


def _off_diagonal_spike(name: str):
    """Make the first matrix indefinite without changing its trace."""

    def change(tensors: Tensors, metadata: Metadata) -> None:
        array = tensors[name]
        first = array[0] if array.ndim == 2 else array
        diagonal = np.cumsum([0, *range(PARAMETERS.width, 1, -1)])
        trace = first[diagonal].sum()
        first[1] = 10 * trace  # entry (0, 1) of the packed upper triangle

    return change


def _cast(name: str, dtype: type[np.generic]):
    def change(tensors: Tensors, metadata: Metadata) -> None:
        tensors[name] = tensors[name].astype(dtype)

    return change


def _swap_first_items(tensors: Tensors, metadata: Metadata) -> None:
    order = [1, 0, *range(2, len(tensors["item_ids"]))]
    for name in list(tensors):
        if name != "gram_packed":
            tensors[name] = tensors[name][order]


def _duplicate_first_id(tensors: Tensors, metadata: Metadata) -> None:
    tensors["item_ids"][1] = tensors["item_ids"][0]


def _negative_id(tensors: Tensors, metadata: Metadata) -> None:
    tensors["item_ids"][0] = -1


def _drop_column(tensors: Tensors, metadata: Metadata) -> None:
    tensors["item_rhs"] = np.ascontiguousarray(tensors["item_rhs"][:, :-1])


def _add_customer_tensor(tensors: Tensors, metadata: Metadata) -> None:
    tensors["customer_factors"] = np.zeros((3, PARAMETERS.dimension), np.float32)


def _remove_gram(tensors: Tensors, metadata: Metadata) -> None:
    del tensors["gram_packed"]


def _dimension_everywhere(tensors: Tensors, metadata: Metadata) -> None:
    metadata["dimension"] = PARAMETERS.dimension + 1


def _inflate_weights(tensors: Tensors, metadata: Metadata) -> None:
    tensors["item_weights"] = tensors["item_weights"] * np.float32(1.5)


BAD_UPDATES: dict[str, tuple[Callable[[Tensors, Metadata], None], str]] = {
    "nan_rhs": (_set("item_rhs", 0, 1, np.nan), "non_finite"),
    "inf_lhs": (_set("item_lhs_packed", 1, 2, np.inf), "non_finite"),
    "nan_gram": (_set("gram_packed", 3, None, np.nan), "non_finite"),
    "inf_weight": (_set("item_weights", 0, None, np.inf), "non_finite"),
    "huge_rhs_norm": (_scale("item_rhs", 1e6), "rhs"),
    "huge_lhs_trace": (_scale("item_lhs_packed", 1e6), "trace"),
    "huge_gram_trace": (_scale("gram_packed", 1e6), "gram"),
    "indefinite_lhs": (_off_diagonal_spike("item_lhs_packed"), "not_psd"),
    "indefinite_gram": (_off_diagonal_spike("gram_packed"), "not_psd"),
    "inconsistent_weights": (_inflate_weights, "consistency"),
    "wrong_shape": (_drop_column, "shape"),
    "float16_statistics": (_cast("item_weights", np.float16), "dtype"),
    "mixed_float_dtypes": (_cast("item_rhs", np.float64), "dtype"),
    "int32_ids": (_cast("item_ids", np.int32), "dtype"),
    "float_counts": (_cast("item_customer_counts", np.float64), "dtype"),
    "unsorted_ids": (_swap_first_items, "item_ids"),
    "duplicate_ids": (_duplicate_first_id, "item_ids"),
    "negative_id": (_negative_id, "item_ids"),
    "extra_tensor": (_add_customer_tensor, "tensor_names"),
    "missing_tensor": (_remove_gram, "tensor_names"),
    "wrong_round": (_meta("round", ROUND + 1), "round"),
    "round_as_text": (_meta("round", str(ROUND)), "metadata"),
    "wrong_base_cid": (_meta("base_cid", "bafkreiother"), "base_cid"),
    "wrong_dimension": (_dimension_everywhere, "dimension"),
    "wrong_alpha": (_meta("alpha", PARAMETERS.alpha * 2), "parameters"),
    "wrong_method": (_meta("method", "fedavg"), "metadata"),
    "wrong_format": (_meta("format", "merchant-app/item-factors"), "format"),
    "timestamp_entry": (_meta("created_at", "2026-01-01T00:00:00Z"), "metadata"),
    "bad_merchant": (_meta("merchant", "0x12"), "metadata"),
    "zero_customers": (_meta("customer_count", 0), "metadata"),
    "counts_over_customers": (_meta("customer_count", 1), "counts"),
    "zero_count": (_set("item_customer_counts", 0, None, 0), "counts"),
    "negative_weight": (_set("item_weights", 0, None, -1.0), "weights"),
    "weight_over_pair_bound": (_set("item_weights", 0, None, 1e7), "weights"),
}


def test_validate_update_accepts_valid_file(valid_bytes):
    update = validate_update(valid_bytes, CONTEXT)

    assert update.header.round == ROUND
    assert len(update.item_ids) >= 8


@pytest.mark.parametrize("case", sorted(BAD_UPDATES))
def test_validate_update_rejects_crafted_file(valid_bytes, case):
    change, reason = BAD_UPDATES[case]

    assert _reason(_crafted(valid_bytes, change)) == reason


def test_validate_update_rejects_oversized_file(valid_bytes):
    limits = ValidationLimits(max_file_bytes=len(valid_bytes) - 1)

    assert _reason(valid_bytes, limits) == "size"


def test_validate_update_rejects_pickle_bytes():
    data = pickle.dumps({"item_ids": [1, 2, 3], "item_rhs": [[0.5]]})

    assert _reason(data) == "format"


def test_validate_update_rejects_truncated_file(valid_bytes):
    assert _reason(valid_bytes[:-9]) == "format"


def test_validate_update_rejects_truncated_header(valid_bytes):
    assert _reason(valid_bytes[:20]) == "format"


@pytest.mark.parametrize(
    "data", [b"", b"\x00" * 7, b"garbage bytes that are not a file", bytes(range(256))]
)
def test_validate_update_rejects_garbage(data):
    assert _reason(data) == "format"


def test_validate_update_rejects_below_privacy_floor(valid_bytes):
    limits = ValidationLimits(required_min_customers=2)

    assert _reason(valid_bytes, limits) == "privacy"


def test_validate_update_rejects_factor_norm_over_limit(valid_bytes):
    limits = ValidationLimits(max_factor_norm=1e-3)

    assert _reason(valid_bytes, limits) in {"gram", "rhs"}


def test_validate_update_same_verdict_on_same_bytes(valid_bytes):
    bad = _crafted(valid_bytes, _off_diagonal_spike("item_lhs_packed"))

    verdicts = {_reason(bytes(bad)) for _ in range(3)}

    assert verdicts == {"not_psd"}


def test_validate_update_packed_size_matches_width():
    assert packed_size(PARAMETERS.width) == 15


def _model_bytes(model: SharedModel) -> bytes:
    return shared_model_to_bytes(model)


def _shifted(model: SharedModel, shift: float, **changes: Any) -> SharedModel:
    items = ItemFactors(
        model.items.item_ids, model.items.factors + shift, model.items.biases
    )
    return dataclasses.replace(model, items=items, **changes)


def _model_reason(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(InvalidModelFileError) as caught:
        validate_shared_model(data, **kwargs)
    return caught.value.reason


def test_validate_shared_model_checks_round_and_parent():
    model = dataclasses.replace(base_model(np.arange(4)), round=3, parent_cid="bafyp")
    data = _model_bytes(model)

    assert _model_reason(data, expected_round=4, expected_parent_cid="bafyp") == "round"
    assert (
        _model_reason(data, expected_round=3, expected_parent_cid="bafyq")
        == "parent_cid"
    )
    parsed = validate_shared_model(data, expected_round=3, expected_parent_cid="bafyp")
    assert parsed.round == 3


def test_validate_shared_model_checks_parameters():
    data = _model_bytes(base_model(np.arange(4)))
    other_alpha = dataclasses.replace(PARAMETERS, alpha=1.0)
    other_dimension = ConsortiumParameters(dimension=PARAMETERS.dimension + 1)

    assert _model_reason(data, parameters=other_alpha) == "parameters"
    assert _model_reason(data, parameters=other_dimension) == "dimension"


def test_validate_shared_model_rejects_huge_norm():
    data = _model_bytes(_shifted(base_model(np.arange(4)), 1e4))

    assert _model_reason(data) == "norm"


def test_validate_shared_model_rejects_far_move():
    base = base_model(np.arange(4))
    data = _model_bytes(_shifted(base, 3.0))
    limits = ValidationLimits(max_distance=1.0)

    assert _model_reason(data, base=base.items, limits=limits) == "distance"
    assert validate_shared_model(data, base=base.items).round == 0


def test_validate_shared_model_rejects_dropped_base_item():
    base = base_model(np.arange(4))
    smaller = base_model(np.arange(3))

    assert _model_reason(_model_bytes(smaller), base=base.items) == "item_ids"


def test_validate_shared_model_rejects_nan_factor():
    model = base_model(np.arange(4))
    factors = model.items.factors.clone()
    factors[1, 2] = torch.nan
    items = ItemFactors(model.items.item_ids, factors, model.items.biases)
    data = item_factors_to_bytes(items, {"kind": "merchant-app/shared-model"})

    assert _model_reason(data) == "format"


def test_validate_shared_model_rejects_plain_item_file():
    items = base_model(np.arange(4)).items

    assert _model_reason(item_factors_to_bytes(items)) == "format"


def test_validate_shared_model_rejects_oversized_file():
    data = _model_bytes(base_model(np.arange(4)))
    limits = ValidationLimits(max_file_bytes=100)

    assert _model_reason(data, limits=limits) == "size"


def test_validate_shared_model_rejects_update_file(valid_bytes):
    assert _model_reason(valid_bytes) == "format"
