"""Save and load the two halves of a model as safetensors files (never pickle).

The shared half (item ids, factors, biases) and the private half (customer
ids and factors) go to separate files, so the customer factors can stay in
the merchant's own data folder while the item file is published. Both files
come from :mod:`merchant_app.tensor_files`, so equal content gives equal
bytes. Loading checks the format name and version, tensor names, dtypes,
shapes, finite values and sorted unique non-negative ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from merchant_app.errors import ModelError
from merchant_app.recommender.model import CustomerFactors, ItemFactors
from merchant_app.tensor_files import dump_tensors, load_tensors

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
ITEM_FORMAT = "merchant-app/item-factors"
CUSTOMER_FORMAT = "merchant-app/customer-factors"

# Files larger than this are rejected before parsing (1e6 items at d=64 is
# about 270 MB).
MAX_FILE_BYTES = 512 * 1024 * 1024


def item_factors_to_bytes(
    items: ItemFactors, extra: Mapping[str, Any] | None = None
) -> bytes:
    """Serialise the shared half; ``extra`` adds JSON metadata entries."""
    tensors = {
        "item_ids": np.asarray(items.item_ids, dtype=np.int64),
        "item_factors": items.factors.to(torch.float32).numpy(),
        "item_biases": items.biases.to(torch.float32).numpy(),
    }
    metadata = _metadata(ITEM_FORMAT, items.dimension, extra)
    return dump_tensors(tensors, metadata)


def item_factors_from_bytes(data: bytes) -> tuple[ItemFactors, dict[str, Any]]:
    """Parse and validate the shared half; returns it and its metadata.

    Raises:
        ModelError: when the bytes are not a valid item-factor file.
    """
    tensors, metadata = _load_checked(
        data, ITEM_FORMAT, {"item_ids", "item_factors", "item_biases"}
    )
    dimension = int(metadata["dimension"])
    ids = _checked_ids(tensors["item_ids"], "item_ids")
    factors = _checked_float(
        tensors["item_factors"], "item_factors", (len(ids), dimension)
    )
    biases = _checked_float(tensors["item_biases"], "item_biases", (len(ids),))
    items = ItemFactors(ids, torch.from_numpy(factors), torch.from_numpy(biases))
    return items, metadata


def customer_factors_to_bytes(
    customers: CustomerFactors, extra: Mapping[str, Any] | None = None
) -> bytes:
    """Serialise the private half; ``extra`` adds JSON metadata entries."""
    tensors = {
        "customer_ids": np.asarray(customers.customer_ids, dtype=np.int64),
        "customer_factors": customers.factors.to(torch.float32).numpy(),
    }
    return dump_tensors(tensors, _metadata(CUSTOMER_FORMAT, customers.dimension, extra))


def customer_factors_from_bytes(data: bytes) -> tuple[CustomerFactors, dict[str, Any]]:
    """Parse and validate the private half; returns it and its metadata.

    Raises:
        ModelError: when the bytes are not a valid customer-factor file.
    """
    tensors, metadata = _load_checked(
        data, CUSTOMER_FORMAT, {"customer_ids", "customer_factors"}
    )
    dimension = int(metadata["dimension"])
    ids = _checked_ids(tensors["customer_ids"], "customer_ids")
    factors = _checked_float(
        tensors["customer_factors"], "customer_factors", (len(ids), dimension)
    )
    return CustomerFactors(ids, torch.from_numpy(factors)), metadata


def save_item_factors(
    path: Path, items: ItemFactors, extra: Mapping[str, Any] | None = None
) -> None:
    """Write the shared half to ``path``, replacing the file atomically."""
    _write_atomically(path, item_factors_to_bytes(items, extra))


def load_item_factors(path: Path) -> tuple[ItemFactors, dict[str, Any]]:
    """Read and validate the shared half from ``path``."""
    return item_factors_from_bytes(_read_limited(path))


def save_customer_factors(
    path: Path, customers: CustomerFactors, extra: Mapping[str, Any] | None = None
) -> None:
    """Write the private half to ``path``, replacing the file atomically."""
    _write_atomically(path, customer_factors_to_bytes(customers, extra))


def load_customer_factors(path: Path) -> tuple[CustomerFactors, dict[str, Any]]:
    """Read and validate the private half from ``path``."""
    return customer_factors_from_bytes(_read_limited(path))


def _metadata(
    format_name: str, dimension: int, extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    metadata = dict(extra or {})
    metadata.update(
        {
            "format": format_name,
            "format_version": FORMAT_VERSION,
            "dimension": dimension,
        }
    )
    return metadata


def _load_checked(
    data: bytes, format_name: str, names: set[str]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if len(data) > MAX_FILE_BYTES:
        raise ModelError(
            f"model file is {len(data)} bytes, over the {MAX_FILE_BYTES} limit"
        )
    tensors, metadata = load_tensors(data)

    if metadata.get("format") != format_name:
        raise ModelError(
            f"model file has format {metadata.get('format')!r}, "
            f"expected {format_name!r}"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"model file has format version {metadata.get('format_version')!r}; "
            f"this app reads version {FORMAT_VERSION}"
        )
    dimension = metadata.get("dimension")
    if not isinstance(dimension, int) or isinstance(dimension, bool) or dimension < 1:
        raise ModelError(f"model file has invalid dimension {dimension!r}")
    if set(tensors) != names:
        raise ModelError(
            f"model file has tensors {sorted(tensors)}, expected {sorted(names)}"
        )
    return tensors, metadata


def _checked_ids(ids: np.ndarray, name: str) -> np.ndarray:
    if ids.dtype != np.int64 or ids.ndim != 1:
        raise ModelError(
            f"{name} must be a 1-D int64 tensor, got {ids.dtype} {ids.shape}"
        )
    if len(ids) and ids[0] < 0:
        raise ModelError(f"{name} contains a negative id {int(ids[0])}")
    if np.any(np.diff(ids) <= 0):
        raise ModelError(f"{name} must be sorted and unique")
    return ids.copy()


def _checked_float(values: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if values.dtype != np.float32:
        raise ModelError(f"{name} must be float32, got {values.dtype}")
    if values.shape != shape:
        raise ModelError(f"{name} has shape {values.shape}, expected {shape}")
    if not np.isfinite(values).all():
        raise ModelError(f"{name} contains NaN or infinite values")
    return values.copy()


def _read_limited(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ModelError(f"{path} is {size} bytes, over the {MAX_FILE_BYTES} limit")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(
            f"model file not found: {path}", user_message="No trained model was found."
        ) from exc


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
    logger.info("model file written: %s (%d bytes)", path, len(data))
