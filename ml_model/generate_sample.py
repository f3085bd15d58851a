"""Generate the small synthetic shop files the demo uses without real data.

The files imitate the seed shops' slim layout
(``user_id,product_id,category_code,brand,price,event_type``): three shops
share one id space for products and, in part, for customers, and each
customer prefers a few categories, so a recommender has something to learn.
The output is deterministic for a given seed.

Run: ``.venv/bin/python ml_model/generate_sample.py [--out ml_model/sample]``
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

CATEGORIES = [
    "electronics.smartphone",
    "electronics.audio.headphone",
    "electronics.video.tv",
    "appliances.kitchen.kettle",
    "appliances.environment.vacuum",
    "computers.notebook",
    "apparel.shoes",
    "furniture.living_room.sofa",
    "kids.toys",
    "sport.bicycle",
]
BRANDS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", ""]
EVENT_TYPES = ["view", "cart", "purchase"]
EVENT_PROBABILITIES = [0.93, 0.04, 0.03]


def generate_shop(
    rng: np.random.Generator,
    *,
    customers: np.ndarray,
    products: list[tuple[int, str, str, float]],
    events: int,
) -> list[tuple[int, int, str, str, str, str]]:
    """Return ``events`` rows for one shop drawn from customers' preferences."""
    by_category: dict[str, list[int]] = {}
    for index, (_, category, _, _) in enumerate(products):
        by_category.setdefault(category, []).append(index)

    rows = []
    for _ in range(events):
        customer = int(rng.choice(customers))
        # Each customer's two favourite categories follow from its id, so the
        # same customer has the same taste in every shop.
        favourites = [CATEGORIES[customer % 10], CATEGORIES[(customer * 7 + 3) % 10]]
        category = favourites[0] if rng.random() < 0.6 else favourites[1]
        if rng.random() < 0.15:
            category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        candidates = by_category[category]
        # Popular products (low index in the category) are seen more often.
        weights = 1.0 / np.arange(1, len(candidates) + 1)
        index = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
        product_id, category_code, brand, price = products[index]
        event_type = str(rng.choice(EVENT_TYPES, p=EVENT_PROBABILITIES))
        rows.append(
            (customer, product_id, category_code, brand, f"{price:.2f}", event_type)
        )
    return rows


def generate(
    out_dir: Path, *, seed: int = 7, events_per_shop: int = 3000
) -> list[Path]:
    """Write the three shop files into ``out_dir`` and return their paths."""
    rng = np.random.default_rng(seed)
    products = []
    for product_id in range(600):
        category = CATEGORIES[product_id % len(CATEGORIES)]
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        price = float(np.round(rng.lognormal(mean=4.0, sigma=1.0), 2))
        products.append((product_id, category, brand, price))

    # Customers 0-299 shop everywhere; each shop also has 500 of its own.
    shared_customers = np.arange(300)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for shop in range(3):
        own_customers = np.arange(1000 + shop * 1000, 1500 + shop * 1000)
        customers = np.concatenate([shared_customers, own_customers])
        rows = generate_shop(
            rng, customers=customers, products=products, events=events_per_shop
        )
        path = out_dir / f"shop_{shop}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(
                [
                    "user_id",
                    "product_id",
                    "category_code",
                    "brand",
                    "price",
                    "event_type",
                ]
            )
            writer.writerows(rows)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "sample",
        help="folder for shop_0.csv, shop_1.csv and shop_2.csv",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--events", type=int, default=3000, help="events per shop file")
    args = parser.parse_args()
    for path in generate(args.out, seed=args.seed, events_per_shop=args.events):
        print(path)


if __name__ == "__main__":
    main()
