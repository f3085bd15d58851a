"""Small synthetic merchants and update files for the federation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from merchant_app.federation.local_update import LocalRoundResult, compute_local_update
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.shared_model import SharedModel
from merchant_app.federation.starter import starter_model

PARAMETERS = ConsortiumParameters(dimension=4, alpha=5.0, regularization=2.0)
BASE_CID = "bafkreibasemodelcidforthefederationtests"
ROUND = 1
ADDRESSES = (
    "0x" + "a1" * 20,
    "0x" + "0b" * 20,
    "0x" + "c3" * 20,
)
EVENT_TYPES = np.array(["view", "cart", "purchase"])


def synthetic_events(
    seed: int, *, customers: int = 23, products: int = 15, events: int = 140
) -> pd.DataFrame:
    """Return random events of one merchant over products 0 to ``products - 1``.

    Customer ids overlap between seeds, as they would in the shared id space
    of the seed shops; the federation keeps them apart per merchant anyway.
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, customers, events).astype(np.int64),
            "product_id": rng.integers(0, products, events).astype(np.int64),
            "event_type": EVENT_TYPES[rng.integers(0, 3, events)],
        }
    )
    # A product bought by one customer only, for the min_customers tests.
    lone = pd.DataFrame(
        {
            "user_id": [customers + seed],
            "product_id": [100 + seed],
            "event_type": ["view"],
        }
    )
    return pd.concat([frame, lone], ignore_index=True)


def base_model(item_ids: np.ndarray | None = None) -> SharedModel:
    return starter_model(PARAMETERS, item_ids)


def local_update(
    seed: int,
    *,
    address_index: int = 0,
    base: SharedModel | None = None,
    min_customers: int = 1,
    events: pd.DataFrame | None = None,
) -> LocalRoundResult:
    return compute_local_update(
        base or base_model(),
        synthetic_events(seed) if events is None else events,
        round_id=ROUND,
        base_cid=BASE_CID,
        merchant=ADDRESSES[address_index],
        min_customers=min_customers,
    )
