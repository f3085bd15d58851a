"""Validation of every update and model file fetched from IPFS, before use.

Another merchant's file is untrusted input. A file that fails any rule raises
:class:`~merchant_app.errors.InvalidUpdateError` (updates) or
:class:`~merchant_app.errors.InvalidModelFileError` (shared models), whose
``reason`` names the rule, and the caller leaves the file out. The rules only
read the file's bytes and the round's context, so every merchant reaches the
same verdict on the same bytes.

NOTE: the positive semi-definiteness rule compares an eigenvalue computed by
LAPACK with a threshold. On different CPUs the eigenvalue may differ in its
last bits, so a file crafted to sit exactly on the threshold could get a
different verdict on two machines. Honest files are far from it.

Nothing here unpickles: safetensors files are parsed by the ``safetensors``
library and the JSON metadata by :mod:`json`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from merchant_app.errors import (
    InvalidModelFileError,
    InvalidUpdateError,
    ModelError,
)
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.shared_model import (
    SHARED_MODEL_KIND,
    SHARED_MODEL_VERSION,
    SharedModel,
)
from merchant_app.federation.update_file import (
    UPDATE_FORMAT,
    UPDATE_FORMAT_VERSION,
    UPDATE_TENSORS,
    ModelUpdate,
    UpdateHeader,
    expected_shape,
    normalize_address,
    unpack_symmetric,
)
from merchant_app.recommender.io import item_factors_from_bytes
from merchant_app.recommender.model import ItemFactors
from merchant_app.tensor_files import load_tensors

logger = logging.getLogger(__name__)

_UPDATE_METADATA_KEYS = frozenset(
    {
        "format",
        "format_version",
        "round",
        "base_cid",
        "merchant",
        "customer_count",
        "min_customers",
        *ConsortiumParameters().to_metadata(),
    }
)
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Items whose matrices are checked together; bounds the memory of one
# eigenvalue batch to about 4 * 2**20 float64 values.
_CHECK_BATCH_VALUES = 1 << 22


@dataclass(frozen=True)
class ValidationLimits:
    """Bounds a consortium applies to every file; defaults in docs/federation.md.

    - ``max_file_bytes``: larger files are rejected before parsing.
    - ``max_factor_norm``: bound on a customer factor's Euclidean norm; with
      the event weights it bounds each statistic's trace and norm.
    - ``max_pair_weight``: bound on the summed event weight of one
      (customer, item) pair, so an item's weight is at most this times its
      customer count.
    - ``psd_tolerance``: a symmetric matrix passes as positive semi-definite
      when its smallest eigenvalue is at least ``-psd_tolerance * trace``.
    - ``consistency_tolerance``: relative tolerance for values that the bias
      coordinate makes equal (for example ``lhs[k, k] == alpha * weight``).
    - ``required_min_customers``: the consortium's privacy floor; updates
      declaring a smaller ``min_customers`` are rejected.
    - ``max_item_norm``: bound on a shared model's item factor row norms and
      absolute biases.
    - ``max_distance``: bound on how far a shared model's item row may move
      from the base model's row for the same item.
    """

    max_file_bytes: int = 256 * 1024 * 1024
    max_factor_norm: float = 20.0
    max_pair_weight: float = 1000.0
    psd_tolerance: float = 1e-5
    consistency_tolerance: float = 1e-4
    required_min_customers: int = 1
    max_item_norm: float = 50.0
    max_distance: float = 20.0


@dataclass(frozen=True)
class UpdateContext:
    """The round being aggregated: the values every update must declare."""

    round: int
    base_cid: str
    parameters: ConsortiumParameters


def validate_update(
    data: bytes,
    context: UpdateContext,
    limits: ValidationLimits | None = None,
) -> ModelUpdate:
    """Parse an update file and check every rule; return the parsed update.

    Raises:
        InvalidUpdateError: with ``reason`` naming the first failed rule.
    """
    limits = limits or ValidationLimits()
    _check_size(data, limits, InvalidUpdateError)
    try:
        tensors, metadata = load_tensors(data)
    except ModelError as exc:
        raise InvalidUpdateError(str(exc), reason="format") from exc

    header = _checked_update_header(metadata, context, limits)
    _check_tensor_layout(tensors, header.parameters.width)
    update = ModelUpdate(
        header=header,
        item_ids=tensors["item_ids"].copy(),
        customer_counts=tensors["item_customer_counts"].copy(),
        weights=tensors["item_weights"].copy(),
        rhs=tensors["item_rhs"].copy(),
        lhs_packed=tensors["item_lhs_packed"].copy(),
        gram=unpack_symmetric(tensors["gram_packed"], header.parameters.width),
    )
    _check_ids(update.item_ids, InvalidUpdateError)
    _check_counts_and_weights(update, limits)
    _check_gram(update, limits)
    _check_item_statistics(update, limits)
    return update


def validate_shared_model(
    data: bytes,
    *,
    parameters: ConsortiumParameters | None = None,
    expected_round: int | None = None,
    expected_parent_cid: str | None = None,
    base: ItemFactors | None = None,
    limits: ValidationLimits | None = None,
) -> SharedModel:
    """Parse a shared model file and check it; return the model.

    ``parameters``, ``expected_round`` and ``expected_parent_cid`` are checked
    when given. With ``base`` (the model the round started from) every base
    item must still be present and no row may move further than
    ``limits.max_distance``.

    Raises:
        InvalidModelFileError: with ``reason`` naming the first failed rule.
    """
    limits = limits or ValidationLimits()
    _check_size(data, limits, InvalidModelFileError)
    try:
        items, metadata = item_factors_from_bytes(data)
    except ModelError as exc:
        raise InvalidModelFileError(str(exc), reason="format") from exc

    if (
        metadata.get("kind") != SHARED_MODEL_KIND
        or metadata.get("kind_version") != SHARED_MODEL_VERSION
    ):
        raise InvalidModelFileError(
            f"model file kind {metadata.get('kind')!r} version "
            f"{metadata.get('kind_version')!r}, expected {SHARED_MODEL_KIND!r} "
            f"version {SHARED_MODEL_VERSION}",
            reason="format",
        )
    file_parameters = _parameters_of(metadata, InvalidModelFileError)
    if parameters is not None:
        _check_parameters(file_parameters, parameters, InvalidModelFileError)
    model_round = _metadata_int(metadata, "round", InvalidModelFileError, minimum=0)
    if expected_round is not None and model_round != expected_round:
        raise InvalidModelFileError(
            f"model file is from round {model_round}, expected {expected_round}",
            reason="round",
        )
    parent_cid = metadata.get("parent_cid")
    if parent_cid is not None and not isinstance(parent_cid, str):
        raise InvalidModelFileError(
            f"parent_cid must be a string or null, got {parent_cid!r}",
            reason="metadata",
        )
    if expected_round is not None and parent_cid != expected_parent_cid:
        raise InvalidModelFileError(
            f"model file's parent CID is {parent_cid!r}, expected "
            f"{expected_parent_cid!r}",
            reason="parent_cid",
        )
    _check_item_rows(items, limits)
    if base is not None:
        _check_distance(items, base, limits)
    return SharedModel(
        items=items,
        round=model_round,
        parent_cid=parent_cid,
        parameters=file_parameters,
    )


def _check_size(
    data: bytes, limits: ValidationLimits, error: type[InvalidModelFileError]
) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise error(f"expected file bytes, got {type(data).__name__}", reason="format")
    if len(data) > limits.max_file_bytes:
        raise error(
            f"file is {len(data)} bytes, over the {limits.max_file_bytes} byte limit",
            reason="size",
        )


def _checked_update_header(
    metadata: Mapping[str, Any], context: UpdateContext, limits: ValidationLimits
) -> UpdateHeader:
    error = InvalidUpdateError
    if (
        metadata.get("format") != UPDATE_FORMAT
        or metadata.get("format_version") != UPDATE_FORMAT_VERSION
    ):
        raise error(
            f"file format {metadata.get('format')!r} version "
            f"{metadata.get('format_version')!r}, expected {UPDATE_FORMAT!r} "
            f"version {UPDATE_FORMAT_VERSION}",
            reason="format",
        )
    extra_keys = sorted(set(metadata) - _UPDATE_METADATA_KEYS)
    if extra_keys:
        raise error(f"unexpected metadata entries {extra_keys}", reason="metadata")

    parameters = _parameters_of(metadata, error)
    _check_parameters(parameters, context.parameters, error)
    update_round = _metadata_int(metadata, "round", error, minimum=1)
    if update_round != context.round:
        raise error(
            f"update is for round {update_round}, expected round {context.round}",
            reason="round",
        )
    if metadata.get("base_cid") != context.base_cid:
        raise error(
            f"update is based on {metadata.get('base_cid')!r}, expected "
            f"{context.base_cid!r}",
            reason="base_cid",
        )
    merchant = metadata.get("merchant")
    try:
        if not isinstance(merchant, str):
            raise ModelError(f"merchant must be a string, got {merchant!r}")
        merchant = normalize_address(merchant)
    except ModelError as exc:
        raise error(str(exc), reason="metadata") from exc
    customer_count = _metadata_int(metadata, "customer_count", error, minimum=1)
    min_customers = _metadata_int(metadata, "min_customers", error, minimum=1)
    if min_customers < limits.required_min_customers:
        raise error(
            f"update leaves out items with fewer than {min_customers} customers; "
            f"the consortium requires at least {limits.required_min_customers}",
            reason="privacy",
        )
    return UpdateHeader(
        round=update_round,
        base_cid=context.base_cid,
        merchant=merchant,
        parameters=parameters,
        customer_count=customer_count,
        min_customers=min_customers,
    )


def _parameters_of(
    metadata: Mapping[str, Any], error: type[InvalidModelFileError]
) -> ConsortiumParameters:
    try:
        return ConsortiumParameters.from_metadata(metadata)
    except ModelError as exc:
        raise error(str(exc), reason="metadata") from exc


def _check_parameters(
    found: ConsortiumParameters,
    expected: ConsortiumParameters,
    error: type[InvalidModelFileError],
) -> None:
    if found.dimension != expected.dimension:
        raise error(
            f"file has dimension {found.dimension}, expected {expected.dimension}",
            reason="dimension",
        )
    if found != expected:
        raise error(
            f"file was made with parameters {found}, expected {expected}",
            reason="parameters",
        )


def _metadata_int(
    metadata: Mapping[str, Any],
    key: str,
    error: type[InvalidModelFileError],
    *,
    minimum: int,
) -> int:
    value = metadata.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise error(
            f"metadata entry {key!r} must be an integer >= {minimum}, got {value!r}",
            reason="metadata",
        )
    return value


def _check_tensor_layout(tensors: Mapping[str, np.ndarray], width: int) -> None:
    error = InvalidUpdateError
    if set(tensors) != set(UPDATE_TENSORS):
        raise error(
            f"update has tensors {sorted(tensors)}, expected {sorted(UPDATE_TENSORS)}",
            reason="tensor_names",
        )

    float_dtypes = {
        tensors[name].dtype
        for name, spec in UPDATE_TENSORS.items()
        if spec.dtype == "float"
    }
    if len(float_dtypes) != 1 or next(iter(float_dtypes)) not in _FLOAT_DTYPES:
        raise error(
            f"statistics tensors have dtypes {sorted(map(str, float_dtypes))}; "
            "expected all float32 or all float64",
            reason="dtype",
        )
    for name, spec in UPDATE_TENSORS.items():
        if spec.dtype == "int64" and tensors[name].dtype != np.int64:
            raise error(
                f"{name} has dtype {tensors[name].dtype}, expected int64",
                reason="dtype",
            )

    ids = tensors["item_ids"]
    if ids.ndim != 1:
        raise error(f"item_ids has shape {ids.shape}, expected 1-D", reason="shape")
    for name, spec in UPDATE_TENSORS.items():
        shape = expected_shape(spec, width, len(ids))
        if tensors[name].shape != shape:
            raise error(
                f"{name} has shape {tensors[name].shape}, expected {shape}",
                reason="shape",
            )
        if spec.dtype == "float" and not np.isfinite(tensors[name]).all():
            raise error(f"{name} contains NaN or infinite values", reason="non_finite")


def _check_ids(ids: np.ndarray, error: type[InvalidModelFileError]) -> None:
    if len(ids) and ids[0] < 0:
        raise error(f"item_ids contains a negative id {int(ids[0])}", reason="item_ids")
    if np.any(np.diff(ids) <= 0):
        raise error("item_ids must be sorted ascending and unique", reason="item_ids")


def _check_counts_and_weights(update: ModelUpdate, limits: ValidationLimits) -> None:
    error = InvalidUpdateError
    counts = update.customer_counts
    header = update.header
    if np.any(counts < header.min_customers) or np.any(counts > header.customer_count):
        raise error(
            f"item customer counts must lie in [{header.min_customers}, "
            f"{header.customer_count}], found [{counts.min()}, {counts.max()}]",
            reason="counts",
        )
    weights = update.weights.astype(np.float64)
    if np.any(weights <= 0) or np.any(weights > counts * limits.max_pair_weight):
        raise error(
            "item weights must be positive and at most max_pair_weight "
            f"({limits.max_pair_weight}) per customer",
            reason="weights",
        )


def _check_gram(update: ModelUpdate, limits: ValidationLimits) -> None:
    error = InvalidUpdateError
    parameters = update.header.parameters
    customers = update.header.customer_count
    gram = update.gram
    trace = float(np.trace(gram))
    bound = customers * _squared_vector_bound(parameters, limits)
    if trace > bound * (1.0 + limits.consistency_tolerance):
        raise error(
            f"Gram matrix trace {trace:.6g} exceeds {bound:.6g}, the bound for "
            f"{customers} customers with factor norm {limits.max_factor_norm}",
            reason="gram",
        )
    smallest = float(np.linalg.eigvalsh(gram)[0])
    if smallest < -limits.psd_tolerance * max(trace, 1.0):
        raise error(
            f"Gram matrix is not positive semi-definite (eigenvalue {smallest:.6g})",
            reason="not_psd",
        )
    if parameters.use_biases:
        _check_close(
            gram[-1, -1], customers, "Gram matrix bias entry", "customer_count", limits
        )


def _check_item_statistics(update: ModelUpdate, limits: ValidationLimits) -> None:
    parameters = update.header.parameters
    width = parameters.width
    squared_bound = _squared_vector_bound(parameters, limits)
    weights = update.weights.astype(np.float64)
    counts = update.customer_counts.astype(np.float64)
    confidence_sums = counts + parameters.alpha * weights
    tolerance = limits.consistency_tolerance

    # |rhs_i| <= sum of c_ui |z_u| <= (n_i + alpha W_i) * max |z_u|.
    rhs = update.rhs.astype(np.float64)
    rhs_bound = confidence_sums * math.sqrt(squared_bound)
    too_long = np.linalg.norm(rhs, axis=1) > rhs_bound * (1.0 + tolerance)
    _reject_rows(too_long, update, "rhs norm exceeds its bound", "rhs")
    if parameters.use_biases:
        _check_close(
            rhs[:, -1], confidence_sums, "rhs bias entry", "n + alpha W", limits
        )

    step = max(1, _CHECK_BATCH_VALUES // (width * width))
    for start in range(0, len(update.item_ids), step):
        stop = min(start + step, len(update.item_ids))
        lhs = unpack_symmetric(update.lhs_packed[start:stop], width)
        traces = np.trace(lhs, axis1=1, axis2=2)

        # trace(lhs_i) = alpha * sum of w_ui |z_u|^2 <= alpha W_i max |z_u|^2.
        trace_bound = parameters.alpha * weights[start:stop] * squared_bound
        over = traces > trace_bound * (1.0 + tolerance)
        _reject_rows(over, update, "lhs trace exceeds its bound", "trace", start)

        smallest = torch.linalg.eigvalsh(torch.from_numpy(lhs))[:, 0].numpy()
        not_psd = smallest < -limits.psd_tolerance * np.maximum(traces, 1.0)
        _reject_rows(
            not_psd, update, "lhs is not positive semi-definite", "not_psd", start
        )
        if parameters.use_biases:
            _check_close(
                lhs[:, -1, -1],
                parameters.alpha * weights[start:stop],
                "lhs bias entry",
                "alpha * weight",
                limits,
            )


def _squared_vector_bound(
    parameters: ConsortiumParameters, limits: ValidationLimits
) -> float:
    # A statistics vector is the customer factor, plus a constant 1 with biases.
    extra = 1.0 if parameters.use_biases else 0.0
    return limits.max_factor_norm**2 + extra


def _reject_rows(
    failed: np.ndarray, update: ModelUpdate, what: str, reason: str, offset: int = 0
) -> None:
    if failed.any():
        row = offset + int(np.flatnonzero(failed)[0])
        raise InvalidUpdateError(
            f"item {int(update.item_ids[row])}: {what} "
            f"({int(failed.sum())} items fail)",
            reason=reason,
        )


def _check_close(
    found: np.ndarray | float,
    expected: np.ndarray | float,
    what: str,
    expected_name: str,
    limits: ValidationLimits,
) -> None:
    found_array = np.asarray(found, dtype=np.float64)
    expected_array = np.asarray(expected, dtype=np.float64)
    scale = np.maximum(np.abs(expected_array), 1.0)
    if np.any(
        np.abs(found_array - expected_array) > limits.consistency_tolerance * scale
    ):
        raise InvalidUpdateError(
            f"{what} does not match {expected_name} declared in the file",
            reason="consistency",
        )


def _check_item_rows(items: ItemFactors, limits: ValidationLimits) -> None:
    norms = torch.linalg.vector_norm(items.factors.to(torch.float64), dim=1)
    biases = items.biases.to(torch.float64).abs()
    if len(norms) and (
        float(norms.max()) > limits.max_item_norm
        or float(biases.max()) > limits.max_item_norm
    ):
        raise InvalidModelFileError(
            f"item factor norm {float(norms.max()):.6g} or bias "
            f"{float(biases.max()):.6g} exceeds {limits.max_item_norm}",
            reason="norm",
        )


def _check_distance(
    items: ItemFactors, base: ItemFactors, limits: ValidationLimits
) -> None:
    rows = items.positions(base.item_ids)
    if np.any(rows < 0):
        missing = int(base.item_ids[np.flatnonzero(rows < 0)[0]])
        raise InvalidModelFileError(
            f"model lacks item {missing} of its base model", reason="item_ids"
        )
    if not len(rows):
        return
    moved = items.factors[torch.from_numpy(rows)].to(torch.float64)
    moved = moved - base.factors.to(torch.float64)
    distance = float(torch.linalg.vector_norm(moved, dim=1).max())
    if distance > limits.max_distance:
        raise InvalidModelFileError(
            f"an item row moved {distance:.6g} from the base model, over "
            f"{limits.max_distance}",
            reason="distance",
        )
