"""Each simulated merchant's own SQLite store, filled from its CSV file.

The evaluation protocol holds out one (customer, product) pair per eligible
customer of every merchant and removes the held-out pairs from every
merchant's training events. Here the store keeps every imported event, and
the events of held-out pairs are marked as not included. The round driver
trains on included events only, so it never reads them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from merchant_app.store import EventStore

logger = logging.getLogger(__name__)

_EXCLUDE_BATCH = 10_000


def open_merchant_store(
    database: Path, csv_file: Path, held_out: pd.DataFrame
) -> EventStore:
    """Create the store at ``database``, import ``csv_file`` and exclude
    ``held_out`` pairs (columns ``user_id``, ``product_id``) from training."""
    store = EventStore.open(database)
    try:
        report = store.import_csv(csv_file)
        logger.info(
            "imported %s into %s: %d events added",
            csv_file.name,
            database,
            report.rows_added,
        )
        excluded = exclude_pairs(store, held_out)
        logger.info("%s: %d events of held-out pairs excluded", database, excluded)
    except BaseException:
        store.close()
        raise
    return store


def exclude_pairs(store: EventStore, pairs: pd.DataFrame) -> int:
    """Mark every event of the (user_id, product_id) ``pairs`` as not included.

    Returns the number of events marked.
    """
    rows = store.connection.execute(
        "SELECT id, user_id, product_id FROM events"
    ).fetchall()
    if not rows or pairs.empty:
        return 0
    events = pd.DataFrame(rows, columns=["id", "user_id", "product_id"])
    keys = pd.MultiIndex.from_frame(events[["user_id", "product_id"]])
    held = pd.MultiIndex.from_frame(pairs[["user_id", "product_id"]].astype(np.int64))
    ids = events.loc[keys.isin(held), "id"].astype(int).tolist()
    marked = 0
    for start in range(0, len(ids), _EXCLUDE_BATCH):
        marked += store.set_included(ids[start : start + _EXCLUDE_BATCH], False)
    return marked
