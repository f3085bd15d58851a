"""Top-10 speed over a 50,000-product catalog.

Builds a random model (dimension 32, 50,000 products, 20,000 customers, each
with 10 events to exclude) and times :meth:`Recommender.top_k` for one
customer and :meth:`Recommender.top_k_batch` for 1,000 customers. Targets:
under 5 ms for one customer and under 0.5 s for 1,000. Writes the ``topk``
section of docs/benchmarks.md.

    .venv/bin/python benchmarks/topk_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from markdown_section import machine_description, write_section

from merchant_app.recommender.model import CustomerFactors, FactorModel, ItemFactors
from merchant_app.recommender.recommend import Recommender, product_info_from_events

PRODUCTS = 50_000
CUSTOMERS = 20_000
EVENTS_PER_CUSTOMER = 10
DIMENSION = 32
SINGLE_TARGET_S = 0.005
BATCH_TARGET_S = 0.5
BATCH_CUSTOMERS = 1_000


def build_recommender(seed: int) -> Recommender:
    """Return a recommender over a random model and random event history."""
    generator = torch.Generator().manual_seed(seed)
    items = ItemFactors(
        item_ids=np.arange(PRODUCTS, dtype=np.int64),
        factors=torch.randn((PRODUCTS, DIMENSION), generator=generator) * 0.1,
        biases=torch.randn(PRODUCTS, generator=generator) * 0.01,
    )
    customers = CustomerFactors(
        customer_ids=np.arange(CUSTOMERS, dtype=np.int64),
        factors=torch.randn((CUSTOMERS, DIMENSION), generator=generator) * 0.1,
    )
    rng = np.random.default_rng(seed)
    count = CUSTOMERS * EVENTS_PER_CUSTOMER
    events = pd.DataFrame(
        {
            "user_id": np.repeat(
                np.arange(CUSTOMERS, dtype=np.int64), EVENTS_PER_CUSTOMER
            ),
            "product_id": rng.integers(PRODUCTS, size=count, dtype=np.int64),
            "event_type": rng.choice(
                ["view", "cart", "purchase"], size=count, p=[0.9, 0.05, 0.05]
            ),
            "category_code": "electronics.smartphone",
            "brand": "acme",
            "price": 9.99,
        }
    )
    info = product_info_from_events(events.drop_duplicates("product_id"))
    return Recommender(FactorModel(items, customers), events, info)


def time_calls(call: Callable[[int], object], repeats: int) -> list[float]:
    """Return the wall time of ``call(i)`` for ``i`` in ``range(repeats)``."""
    durations = []
    for index in range(repeats):
        started = time.perf_counter()
        call(index)
        durations.append(time.perf_counter() - started)
    return durations


def render(single: list[float], batch: list[float]) -> str:
    single_median = statistics.median(single)
    batch_median = statistics.median(batch)
    rows = [
        (
            "1 customer",
            single_median * 1000,
            min(single) * 1000,
            "ms",
            SINGLE_TARGET_S * 1000,
            single_median < SINGLE_TARGET_S,
        ),
        (
            f"{BATCH_CUSTOMERS:,} customers",
            batch_median,
            min(batch),
            "s",
            BATCH_TARGET_S,
            batch_median < BATCH_TARGET_S,
        ),
    ]
    table = [
        "| request | median | best | target | target met |",
        "|---|---:|---:|---:|---|",
    ]
    for name, median, best, unit, target, met in rows:
        table.append(
            f"| {name} | {median:.3g} {unit} | {best:.3g} {unit} | "
            f"< {target:g} {unit} | {'yes' if met else 'no'} |"
        )
    return "\n".join(
        [
            "## Top-10 speed",
            "",
            f"Top-10 over a catalog of {PRODUCTS:,} products, dimension "
            f"{DIMENSION}, random factors; each customer has "
            f"{EVENTS_PER_CUSTOMER} events whose products are excluded. "
            f"`Recommender.top_k` for one customer ({len(single)} calls, each a "
            f"different customer) and `Recommender.top_k_batch` for "
            f"{BATCH_CUSTOMERS:,} customers ({len(batch)} calls). Times include "
            "the exclusion and building the result objects with product info. "
            "The script sets 1 torch thread (`--threads`). On this shared machine, "
            "2 threads made single calls several times slower (about 8 to 16 ms "
            "in trial runs while other jobs shared the cores).",
            "",
            *table,
            "",
            f"- Machine: {machine_description()}",
            "- Command: `.venv/bin/python benchmarks/topk_speed.py`",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    recommender = build_recommender(seed=0)
    recommender.top_k(0)  # warm-up: first calls load kernels
    single = time_calls(lambda i: recommender.top_k(1 + i), repeats=200)

    def batch_call(index: int) -> object:
        first = index * BATCH_CUSTOMERS
        ids = np.arange(first, first + BATCH_CUSTOMERS, dtype=np.int64)
        return recommender.top_k_batch(ids)

    batch = time_calls(batch_call, repeats=5)
    section = render(single, batch)
    print(section)
    write_section("topk", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
