"""Deterministic safetensors files.

Model and update files are safetensors, never pickle. The files the app puts
on IPFS must be byte-identical for equal content, so that every merchant gets
the same CID for the same model. The ``safetensors`` writer (0.8.0) keeps the
``__metadata__`` map in a Rust ``HashMap`` whose order changes from process
to process, so a file with several metadata keys gets different bytes each
run. This module therefore stores all metadata under one key, as JSON with
sorted keys, and lets the library order the tensors (it sorts them by dtype
alignment, then name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from merchant_app.errors import ModelError

METADATA_KEY = "merchant_app"


def dump_tensors(
    tensors: Mapping[str, np.ndarray], metadata: Mapping[str, Any]
) -> bytes:
    """Serialise ``tensors`` and JSON-compatible ``metadata`` to safetensors bytes.

    Equal arrays and equal metadata always give equal bytes.
    """
    arrays = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    header = json.dumps(dict(metadata), sort_keys=True, separators=(",", ":"))
    return save(arrays, metadata={METADATA_KEY: header})


def load_tensors(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Parse safetensors bytes written by :func:`dump_tensors`.

    Raises:
        ModelError: when the bytes are not a safetensors file or the metadata
            is missing or not a JSON object.
    """
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as exc:
        raise ModelError(f"not a valid safetensors file: {exc}") from exc

    header = _read_header(data)
    raw_metadata = header.get("__metadata__", {}).get(METADATA_KEY)
    if raw_metadata is None:
        raise ModelError(f"safetensors file has no {METADATA_KEY!r} metadata entry")
    try:
        metadata = json.loads(raw_metadata)
    except json.JSONDecodeError as exc:
        raise ModelError(f"safetensors metadata is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ModelError("safetensors metadata must be a JSON object")
    return tensors, metadata


def read_header(data: bytes) -> dict[str, Any]:
    """Return the JSON header of safetensors bytes without loading any tensor."""
    return _read_header(data)


def _read_header(data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise ModelError(
            f"safetensors file is {len(data)} bytes, shorter than its header"
        )
    header_length = int.from_bytes(data[:8], "little")
    if header_length > len(data) - 8:
        raise ModelError(
            f"safetensors header length {header_length} exceeds the file size "
            f"{len(data)}"
        )
    try:
        header = json.loads(data[8 : 8 + header_length])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"safetensors header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ModelError("safetensors header must be a JSON object")
    return header
