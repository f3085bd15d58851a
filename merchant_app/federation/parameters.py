"""The training parameters every member of a consortium must share.

Exact federated ALS only equals the pooled solve when every merchant reduces
its customers with the same dimension, confidence ``alpha``, regularization
and bias setting. The starter model fixes them in its metadata and every
aggregate copies them forward, so each round's base model gives a merchant
its training parameters and gives the validator the values every update must
declare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from merchant_app.errors import ModelError
from merchant_app.recommender.als import (
    DEFAULT_ALPHA,
    DEFAULT_REGULARIZATION,
    AlsConfig,
)
from merchant_app.recommender.model import DEFAULT_DIMENSION

METHOD = "implicit-als-item-statistics"

# Item rows the base model lacks start uniform in [-scale, scale]. The scale
# is small, so the first customer solve follows the data more than the noise.
DEFAULT_INIT_SCALE = 0.01
DEFAULT_INIT_SEED = 0


@dataclass(frozen=True)
class ConsortiumParameters:
    """Hyper-parameters fixed for a consortium by its starter model."""

    dimension: int = DEFAULT_DIMENSION
    alpha: float = DEFAULT_ALPHA
    regularization: float = DEFAULT_REGULARIZATION
    use_biases: bool = True
    init_seed: int = DEFAULT_INIT_SEED
    init_scale: float = DEFAULT_INIT_SCALE

    def __post_init__(self) -> None:
        if self.dimension < 1:
            raise ModelError(f"dimension must be at least 1, got {self.dimension}")
        if not math.isfinite(self.alpha) or self.alpha < 0:
            raise ModelError(f"alpha must be finite and >= 0, got {self.alpha}")
        if not math.isfinite(self.regularization) or self.regularization <= 0:
            raise ModelError(
                f"regularization must be finite and positive, got {self.regularization}"
            )
        if not 0 <= self.init_seed < 2**63:
            raise ModelError(f"init_seed must be in [0, 2^63), got {self.init_seed}")
        if not math.isfinite(self.init_scale) or self.init_scale <= 0:
            raise ModelError(
                f"init_scale must be finite and positive, got {self.init_scale}"
            )

    @property
    def width(self) -> int:
        """Size of a statistics vector: the dimension, plus 1 with item biases."""
        return self.dimension + (1 if self.use_biases else 0)

    def als_config(self) -> AlsConfig:
        """Return the recommender configuration these parameters fix."""
        return AlsConfig(
            dimension=self.dimension,
            regularization=self.regularization,
            alpha=self.alpha,
            use_biases=self.use_biases,
        )

    def to_metadata(self) -> dict[str, Any]:
        """Return the JSON metadata entries that record these parameters."""
        return {
            "method": METHOD,
            "dimension": self.dimension,
            "alpha": float(self.alpha),
            "regularization": float(self.regularization),
            "use_biases": self.use_biases,
            "init_seed": self.init_seed,
            "init_scale": float(self.init_scale),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ConsortiumParameters:
        """Read the parameters back from file metadata.

        Raises:
            ModelError: naming the entry when one is missing or has a wrong type.
        """
        if metadata.get("method") != METHOD:
            raise ModelError(
                f"model file method is {metadata.get('method')!r}, expected {METHOD!r}"
            )
        return cls(
            dimension=_integer(metadata, "dimension"),
            alpha=_number(metadata, "alpha"),
            regularization=_number(metadata, "regularization"),
            use_biases=_boolean(metadata, "use_biases"),
            init_seed=_integer(metadata, "init_seed"),
            init_scale=_number(metadata, "init_scale"),
        )


def _integer(metadata: Mapping[str, Any], key: str) -> int:
    value = metadata.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelError(f"metadata entry {key!r} must be an integer, got {value!r}")
    return value


def _number(metadata: Mapping[str, Any], key: str) -> float:
    value = metadata.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ModelError(f"metadata entry {key!r} must be a number, got {value!r}")
    return float(value)


def _boolean(metadata: Mapping[str, Any], key: str) -> bool:
    value = metadata.get(key)
    if not isinstance(value, bool):
        raise ModelError(f"metadata entry {key!r} must be true or false, got {value!r}")
    return value
