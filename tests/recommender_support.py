"""Small synthetic event tables for the recommender tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

SEED_SHOPS_FOLDER = "seed-shops"


def clustered_events(
    *,
    seed: int,
    customers: int = 60,
    products: int = 40,
    groups: int = 4,
    events_per_customer: int = 6,
    first_customer: int = 0,
) -> pd.DataFrame:
    """Return events where each customer group mostly views its own products.

    Customers ``first_customer + c`` belong to group ``c % groups``; products
    ``p`` belong to group ``p % groups``. 90% of a customer's events fall on
    its group's products, the rest anywhere; about 10% are purchases and 10%
    carts. Columns follow the slim CSV layout.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for offset in range(customers):
        group = offset % groups
        own = np.arange(group, products, groups)
        for _ in range(events_per_customer):
            if rng.random() < 0.9:
                product = int(rng.choice(own))
            else:
                product = int(rng.integers(products))
            kind = rng.choice(["view", "cart", "purchase"], p=[0.8, 0.1, 0.1])
            rows.append(
                {
                    "user_id": first_customer + offset,
                    "product_id": product,
                    "category_code": f"group.{product % groups}",
                    "brand": f"brand{product % 7}",
                    "price": float(10 + product),
                    "event_type": str(kind),
                }
            )
    events = pd.DataFrame(rows)
    return events.astype({"user_id": np.int64, "product_id": np.int64})


def write_csv(events: pd.DataFrame, path: str) -> None:
    """Write ``events`` in the slim CSV layout."""
    columns = ["user_id", "product_id", "category_code", "brand", "price", "event_type"]
    events[columns].to_csv(path, index=False)
