"""The update file a merchant publishes each round: per-item ALS statistics.

An update holds, for every item the merchant's customers interacted with
(and that passes the ``min_customers`` privacy rule), the sufficient
statistics of one ALS item half-step (see
:class:`merchant_app.recommender.als.ItemStatistics`), plus the merchant's
customer Gram matrix. Summing the updates of all merchants and solving each
item once gives the pooled item solve with customers kept apart per shop.

Layout (safetensors through :mod:`merchant_app.tensor_files`, so equal content
gives equal bytes): the tensors of :data:`UPDATE_TENSORS`, whose axes are
items, the statistics width ``k`` (the dimension, plus 1 with item biases)
and the packed upper triangle of a ``k x k`` matrix. No tensor has a customer
axis, and no customer id or customer factor row is ever written. Symmetric
matrices are stored as their packed upper triangle (row-major, the order of
``numpy.triu_indices``), which halves the bytes and makes every matrix
symmetric by construction. Statistics are float32 by default (float64 on
request); docs/federation.md has the measured size and accuracy trade-off.

The reader is :func:`merchant_app.federation.validation.validate_update`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from merchant_app.errors import ModelError
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.recommender.als import ItemStatistics
from merchant_app.tensor_files import dump_tensors

logger = logging.getLogger(__name__)

UPDATE_FORMAT = "merchant-app/als-update"
UPDATE_FORMAT_VERSION = 1

StatisticsDtype = Literal["float32", "float64"]
STATISTICS_DTYPES: dict[str, type[np.floating[Any]]] = {
    "float32": np.float32,
    "float64": np.float64,
}

_ADDRESS = re.compile(r"0x[0-9a-f]{40}")


@dataclass(frozen=True)
class TensorSpec:
    """Allowed dtype and symbolic shape of one tensor of an update file.

    ``axes`` name each dimension: ``items`` (one row per item id), ``width``
    (the statistics width k) or ``packed`` (k * (k + 1) / 2 values of a
    packed symmetric matrix). ``dtype`` is ``int64`` or ``float``, where
    ``float`` means float32 or float64, the same for every such tensor.
    """

    axes: tuple[str, ...]
    dtype: Literal["int64", "float"]


# Every tensor an update file may contain. Tests check each written file
# against this table and that no axis counts customers.
UPDATE_TENSORS: dict[str, TensorSpec] = {
    "item_ids": TensorSpec(("items",), "int64"),
    "item_customer_counts": TensorSpec(("items",), "int64"),
    "item_weights": TensorSpec(("items",), "float"),
    "item_rhs": TensorSpec(("items", "width"), "float"),
    "item_lhs_packed": TensorSpec(("items", "packed"), "float"),
    "gram_packed": TensorSpec(("packed",), "float"),
}
UPDATE_AXES = ("items", "width", "packed")


def packed_size(width: int) -> int:
    """Return the number of values in the packed upper triangle of a matrix."""
    return width * (width + 1) // 2


def axis_sizes(width: int, items: int) -> dict[str, int]:
    """Return the size of each symbolic axis of :data:`UPDATE_TENSORS`."""
    return {"items": items, "width": width, "packed": packed_size(width)}


def expected_shape(spec: TensorSpec, width: int, items: int) -> tuple[int, ...]:
    """Return the concrete shape of a tensor of ``spec``."""
    sizes = axis_sizes(width, items)
    return tuple(sizes[axis] for axis in spec.axes)


def pack_symmetric(matrices: np.ndarray) -> np.ndarray:
    """Return the packed upper triangles of ``(..., k, k)`` matrices."""
    width = matrices.shape[-1]
    rows, cols = np.triu_indices(width)
    return np.ascontiguousarray(matrices[..., rows, cols])


def unpack_symmetric(packed: np.ndarray, width: int) -> np.ndarray:
    """Return the symmetric ``(..., k, k)`` float64 matrices of packed triangles."""
    rows, cols = np.triu_indices(width)
    matrices = np.zeros((*packed.shape[:-1], width, width), dtype=np.float64)
    matrices[..., rows, cols] = packed
    matrices[..., cols, rows] = packed
    return matrices


def normalize_address(address: str) -> str:
    """Return ``address`` as lower-case ``0x`` hex, the form used for ordering.

    Raises:
        ModelError: when it is not a 20-byte hex address.
    """
    normalized = address.strip().lower()
    if not _ADDRESS.fullmatch(normalized):
        raise ModelError(
            f"invalid merchant address {address!r}; expected 0x and 40 hex digits"
        )
    return normalized


@dataclass(frozen=True)
class UpdateHeader:
    """The metadata of an update: the round it is for and how it was made.

    ``customer_count`` is the number of customers behind the Gram matrix and
    ``min_customers`` the privacy threshold the merchant applied: items with
    fewer distinct customers were left out.
    """

    round: int
    base_cid: str
    merchant: str
    parameters: ConsortiumParameters
    customer_count: int
    min_customers: int = 1

    def to_metadata(self) -> dict[str, Any]:
        """Return the JSON metadata of the update file."""
        metadata = self.parameters.to_metadata()
        metadata.update(
            {
                "format": UPDATE_FORMAT,
                "format_version": UPDATE_FORMAT_VERSION,
                "round": self.round,
                "base_cid": self.base_cid,
                "merchant": self.merchant,
                "customer_count": self.customer_count,
                "min_customers": self.min_customers,
            }
        )
        return metadata


@dataclass(frozen=True)
class ModelUpdate:
    """One merchant's update: per-item statistics in packed form.

    ``lhs_packed`` (n, k(k+1)/2), ``rhs`` (n, k), ``weights`` (n,) and
    ``gram`` (k, k) keep the dtype they were read or built with;
    ``customer_counts`` (n,) is int64. Rows follow ``item_ids``.
    """

    header: UpdateHeader
    item_ids: np.ndarray
    customer_counts: np.ndarray
    weights: np.ndarray
    rhs: np.ndarray
    lhs_packed: np.ndarray
    gram: np.ndarray

    @property
    def width(self) -> int:
        return self.header.parameters.width

    @property
    def total_weight(self) -> float:
        """Sum of the interaction weights of every item in the update."""
        return float(np.sum(self.weights, dtype=np.float64))

    def statistics(self, rows: np.ndarray | None = None) -> ItemStatistics:
        """Return float64 :class:`ItemStatistics` of ``rows`` (all by default)."""
        selected = np.arange(len(self.item_ids)) if rows is None else rows
        lhs = unpack_symmetric(self.lhs_packed[selected], self.width)
        return ItemStatistics(
            item_ids=self.item_ids[selected],
            gram=torch.from_numpy(self.gram.astype(np.float64)),
            lhs=torch.from_numpy(lhs),
            rhs=torch.from_numpy(self.rhs[selected].astype(np.float64)),
            weights=torch.from_numpy(self.weights[selected].astype(np.float64)),
            use_biases=self.header.parameters.use_biases,
        )


def build_update(
    statistics: ItemStatistics,
    customer_counts: np.ndarray,
    header: UpdateHeader,
) -> ModelUpdate:
    """Pack one merchant's statistics into an update, applying ``min_customers``.

    ``customer_counts`` gives the number of distinct customers of each item of
    ``statistics``. Items with fewer than ``header.min_customers`` are left
    out: their statistics would give a single customer's factor and weight
    back exactly (docs/privacy.md).

    Raises:
        ModelError: when the statistics do not match the header's parameters.
    """
    parameters = header.parameters
    width = parameters.width
    if statistics.use_biases != parameters.use_biases:
        raise ModelError("statistics and consortium disagree on item biases")
    if tuple(statistics.gram.shape) != (width, width):
        raise ModelError(
            f"statistics have width {statistics.gram.shape[0]}, the consortium "
            f"needs {width}"
        )
    counts = np.asarray(customer_counts, dtype=np.int64)
    if counts.shape != statistics.item_ids.shape:
        raise ModelError("customer_counts must have one entry per item")
    if header.min_customers < 1:
        raise ModelError(
            f"min_customers must be at least 1, got {header.min_customers}"
        )

    keep = counts >= header.min_customers
    logger.info(
        "update for round %d: %d of %d items kept with min_customers=%d",
        header.round,
        int(keep.sum()),
        len(keep),
        header.min_customers,
    )
    lhs = statistics.lhs.numpy()[keep]
    return ModelUpdate(
        header=header,
        item_ids=np.asarray(statistics.item_ids, dtype=np.int64)[keep],
        customer_counts=counts[keep],
        weights=statistics.weights.numpy()[keep],
        rhs=statistics.rhs.numpy()[keep],
        lhs_packed=pack_symmetric(lhs),
        gram=statistics.gram.numpy().copy(),
    )


def update_to_bytes(
    update: ModelUpdate, *, dtype: StatisticsDtype = "float32"
) -> bytes:
    """Serialise ``update`` with its statistics stored as ``dtype``.

    Equal updates give equal bytes. Values are rounded once, from whatever
    dtype the update holds, to ``dtype``.
    """
    float_type = STATISTICS_DTYPES[dtype]
    tensors = {
        "item_ids": np.asarray(update.item_ids, dtype=np.int64),
        "item_customer_counts": np.asarray(update.customer_counts, dtype=np.int64),
        "item_weights": update.weights.astype(float_type),
        "item_rhs": update.rhs.astype(float_type),
        "item_lhs_packed": update.lhs_packed.astype(float_type),
        "gram_packed": pack_symmetric(update.gram).astype(float_type),
    }
    data = dump_tensors(tensors, update.header.to_metadata())
    logger.info(
        "update file for round %d by %s: %d items, %d bytes",
        update.header.round,
        update.header.merchant,
        len(update.item_ids),
        len(data),
    )
    return data
