"""Tests for deterministic safetensors files."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from merchant_app.errors import ModelError
from merchant_app.tensor_files import dump_tensors, load_tensors

_DUMP_SCRIPT = """
import hashlib, numpy as np
from merchant_app.tensor_files import dump_tensors
data = dump_tensors(
    {"item_factors": np.arange(12, dtype=np.float32).reshape(3, 4),
     "item_ids": np.array([3, 5, 9], dtype=np.int64)},
    {"round": 7, "base_cid": "bafy", "dimension": 4, "merchant": "0xabc",
     "format_version": 1},
)
print(hashlib.sha256(data).hexdigest())
"""


def test_dump_tensors_same_bytes_across_processes():
    digests = {
        subprocess.run(
            [sys.executable, "-c", _DUMP_SCRIPT],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for _ in range(4)
    }

    assert len(digests) == 1


def test_load_tensors_round_trip():
    factors = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    ids = np.array([1, 2, 4, 8, 16], dtype=np.int64)

    tensors, metadata = load_tensors(
        dump_tensors({"factors": factors, "ids": ids}, {"round": 2, "name": "x"})
    )

    np.testing.assert_array_equal(tensors["factors"], factors)
    np.testing.assert_array_equal(tensors["ids"], ids)
    assert metadata == {"round": 2, "name": "x"}


def test_load_tensors_rejects_garbage():
    with pytest.raises(ModelError, match="safetensors"):
        load_tensors(b"\x80\x04not a safetensors file at all")


def test_load_tensors_rejects_missing_metadata():
    from safetensors.numpy import save

    data = save({"x": np.zeros(2, dtype=np.float32)})

    with pytest.raises(ModelError, match="metadata"):
        load_tensors(data)


def test_dump_tensors_digest_changes_with_content():
    first = dump_tensors({"x": np.zeros(2, dtype=np.float32)}, {"round": 1})
    second = dump_tensors({"x": np.zeros(2, dtype=np.float32)}, {"round": 2})

    assert hashlib.sha256(first).digest() != hashlib.sha256(second).digest()
