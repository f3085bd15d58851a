"""Time the store's lookups by customer and product, with and without indexes.

Schema version 3 dropped the indexes `events_by_user (user_id)` and
`events_by_product (product_id)` of version 2, because rebuilding them took
a large share of every import. This script measures what that costs the
queries that could use them: it imports a generated REES46 file (the
generator of import_speed.py) into a new store, times each query, adds the
two version-2 indexes, and times the queries again. Each time is the best
of five runs. The results replace the ``store-queries`` section of
``docs/benchmarks.md``.

Run: .venv/bin/python benchmarks/store_queries.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from import_speed import generate
from markdown_section import PROJECT_ROOT, machine_description, write_section

sys.path.insert(0, str(PROJECT_ROOT))

from merchant_app.store import EventFilter, EventStore  # noqa: E402

RUNS = 5
VERSION_2_INDEXES = (
    "CREATE INDEX events_by_user ON event_rows (user_id)",
    "CREATE INDEX events_by_product ON event_rows (product_id)",
)


def best_seconds(action: object) -> float:
    """Return the shortest wall time of RUNS calls of ``action``."""
    assert callable(action)
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def measure(store: EventStore, user_id: int, product_id: int) -> dict[str, float]:
    """Return the seconds of each store call that a lookup index could serve."""
    by_user = EventFilter(user_id=user_id)
    by_product = EventFilter(product_id=product_id)
    calls = {
        "events of one customer, first page": lambda: store.fetch_events(
            limit=100, event_filter=by_user
        ),
        "count of one customer's events": lambda: store.count_events(by_user),
        "events of one product, first page": lambda: store.fetch_events(
            limit=100, event_filter=by_product
        ),
        "distinct customers and products (Home)": store.counts,
        "first page sorted by customer": lambda: store.fetch_events(
            limit=100, sort="user_id"
        ),
        "first page sorted by price (never indexed)": lambda: store.fetch_events(
            limit=100, sort="price"
        ),
    }
    return {name: best_seconds(call) for name, call in calls.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="store-queries-") as temporary:
        folder = Path(temporary)
        source = folder / "events.csv"
        generate(source, arguments.rows)
        with EventStore.open(folder / "store.sqlite") as store:
            report = store.import_csv(source)
            middle = store.fetch_events(limit=1, offset=report.rows_added // 2)[0]
            without = measure(store, middle.user_id, middle.product_id)
            connection: sqlite3.Connection = store.connection
            started = time.perf_counter()
            for statement in VERSION_2_INDEXES:
                connection.execute(statement)
            build = time.perf_counter() - started
            with_indexes = measure(store, middle.user_id, middle.product_id)

    lines = [
        "## Store lookups without the version-2 indexes",
        "",
        f"Machine: {machine_description()}; SQLite {sqlite3.sqlite_version}.",
        "",
        f"Command: `.venv/bin/python benchmarks/store_queries.py --rows "
        f"{arguments.rows}`",
        "",
        f"A store with {report.rows_added:,} generated events. Best of {RUNS} "
        f"runs per call, in ms. Building the two indexes took {build:.2f} s.",
        "",
        "| call | schema 3 (no lookup indexes) | with the version-2 indexes |",
        "|---|---|---|",
    ]
    for name, seconds in without.items():
        lines.append(
            f"| {name} | {seconds * 1000:.1f} | {with_indexes[name] * 1000:.1f} |"
        )
    write_section("store-queries", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
