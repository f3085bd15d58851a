"""The shared model file: the base model of a round and every aggregate.

It contains the item half of the model (item ids, float32 item factors and
biases) in the recommender's item-factor format
(:func:`merchant_app.recommender.io.item_factors_to_bytes`), with metadata
for the federation: the round it closes (0 for the starter model), the CID of
the base model it was computed from (``None`` for the starter model) and the
consortium parameters. No timestamp or other varying value is written, so the
same model gives the same bytes, and so the same CID, on every merchant.

The reader is :func:`merchant_app.federation.validation.validate_shared_model`.
"""

from __future__ import annotations

from dataclasses import dataclass

from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.recommender.io import item_factors_to_bytes
from merchant_app.recommender.model import ItemFactors

SHARED_MODEL_KIND = "merchant-app/shared-model"
SHARED_MODEL_VERSION = 1


@dataclass(frozen=True)
class SharedModel:
    """Shared item factors and the round that produced them."""

    items: ItemFactors
    round: int
    parent_cid: str | None
    parameters: ConsortiumParameters


def shared_model_to_bytes(model: SharedModel) -> bytes:
    """Serialise ``model``; equal models give equal bytes."""
    extra = model.parameters.to_metadata()
    extra.update(
        {
            "kind": SHARED_MODEL_KIND,
            "kind_version": SHARED_MODEL_VERSION,
            "round": model.round,
            "parent_cid": model.parent_cid,
        }
    )
    return item_factors_to_bytes(model.items, extra)
