"""Event tables for training and evaluation: CSV loading, weights, index maps.

This module reads event CSV files for the evaluation command and the
benchmarks (the store has its own importer for the merchant's database). Both
layouts of the app are accepted: the slim one
``user_id,product_id,category_code,brand,price,event_type`` and the original
nine-column REES46 one. Ids are parsed from text as integers, never through
float, because 19-digit ids do not fit a float64 exactly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from merchant_app.errors import InputDataError
from merchant_app.store.layouts import LAYOUT_COLUMNS, Layout
from merchant_app.store.rows import EVENT_TYPES, event_weights

logger = logging.getLogger(__name__)

# The layouts, event types and weights are the store's, so the evaluation
# reads files by the same rules the merchant's database does.
SLIM_COLUMNS = LAYOUT_COLUMNS[Layout.SLIM]
FULL_COLUMNS = LAYOUT_COLUMNS[Layout.REES46]

# How much one event counts in training. remove_from_cart is stored but does not
# count. Repeated events of one (customer, product) pair add up.
EVENT_WEIGHTS: Mapping[str, float] = event_weights()

# Columns of the event tables this package works with.
EVENT_COLUMNS = (
    "user_id",
    "product_id",
    "event_type",
    "category_code",
    "brand",
    "price",
)

_MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]+")


def load_events_csv(path: Path) -> pd.DataFrame:
    """Read one merchant's event CSV file in the slim or the nine-column layout.

    Returns a frame with :data:`EVENT_COLUMNS`: ``user_id`` and ``product_id``
    as int64, ``event_type`` as text, ``category_code`` and ``brand`` as text
    or ``None``, ``price`` as float or NaN.

    Raises:
        InputDataError: when the file is missing, has another header, or a row
            has an invalid id or event type (the message names line and value).
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise InputDataError(f"event file not found: {path}") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputDataError(f"cannot parse event file {path}: {exc}") from exc

    columns = tuple(frame.columns)
    if columns not in (SLIM_COLUMNS, FULL_COLUMNS):
        raise InputDataError(
            f"{path}: unexpected header {','.join(columns)!r}; expected "
            f"{','.join(SLIM_COLUMNS)!r} or {','.join(FULL_COLUMNS)!r}"
        )

    events = pd.DataFrame(
        {
            "user_id": _parse_ids(frame["user_id"], path, "user_id"),
            "product_id": _parse_ids(frame["product_id"], path, "product_id"),
            "event_type": _parse_event_types(frame["event_type"], path),
            "category_code": _empty_to_none(frame["category_code"]),
            "brand": _empty_to_none(frame["brand"]),
            "price": _parse_prices(frame["price"], path),
        }
    )
    logger.debug("loaded %d events from %s", len(events), path)
    return events


def load_merchant_folder(folder: Path) -> dict[str, pd.DataFrame]:
    """Read every ``*.csv`` file of ``folder``, one merchant each, by file name.

    Keys are the file stems, in sorted file-name order.

    Raises:
        InputDataError: when the folder is missing or contains no CSV file.
    """
    if not folder.is_dir():
        raise InputDataError(f"data folder not found: {folder}")
    paths = sorted(folder.glob("*.csv"), key=lambda path: path.name)
    if not paths:
        raise InputDataError(
            f"no .csv files in {folder}; put one event file per merchant there"
        )
    return {path.stem: load_events_csv(path) for path in paths}


def interaction_weights(events: pd.DataFrame) -> pd.DataFrame:
    """Sum event weights per (customer, product) pair.

    Returns columns ``user_id``, ``product_id`` (int64) and ``weight``
    (float64), sorted by customer then product. ``remove_from_cart`` rows and
    other unweighted types do not count.
    """
    weights = events["event_type"].map(EVENT_WEIGHTS)
    counted = events.loc[weights.notna(), ["user_id", "product_id"]].copy()
    counted["weight"] = weights[weights.notna()].astype(np.float64)
    summed = counted.groupby(["user_id", "product_id"], as_index=False, sort=True)[
        "weight"
    ].sum()
    return summed.astype({"user_id": np.int64, "product_id": np.int64})


@dataclass(frozen=True)
class Interactions:
    """A sparse customer-by-item weight matrix in coordinate form.

    ``customer_ids`` and ``item_ids`` are sorted unique int64 ids. ``rows``
    and ``cols`` index into them, with one entry per (customer, item) pair
    that has a positive summed event ``weight``.
    """

    customer_ids: np.ndarray
    item_ids: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.customer_ids), len(self.item_ids)

    @property
    def pair_count(self) -> int:
        return len(self.weights)


def build_interactions(
    events: pd.DataFrame, *, item_ids: np.ndarray | None = None
) -> Interactions:
    """Build the weight matrix of ``events``.

    Customers and items are those with at least one weighted event. When
    ``item_ids`` is given, the columns are exactly those ids (sorted unique)
    and pairs of other products are dropped, which is how customer factors are
    refitted against fixed item factors.
    """
    pairs = interaction_weights(events)
    if item_ids is None:
        items = np.unique(pairs["product_id"].to_numpy(np.int64))
    else:
        items = np.asarray(item_ids, dtype=np.int64)
        pairs = pairs[pairs["product_id"].isin(items)]

    customers = np.unique(pairs["user_id"].to_numpy(np.int64))
    rows = np.searchsorted(customers, pairs["user_id"].to_numpy(np.int64))
    cols = np.searchsorted(items, pairs["product_id"].to_numpy(np.int64))
    return Interactions(
        customer_ids=customers,
        item_ids=items,
        rows=rows.astype(np.int64),
        cols=cols.astype(np.int64),
        weights=pairs["weight"].to_numpy(np.float64),
    )


def _parse_ids(column: pd.Series, path: Path, name: str) -> pd.Series:
    text = column.str.strip()
    valid = text.map(lambda value: bool(_DIGITS.fullmatch(value)))
    too_long = text.str.len() > 19
    bad = ~valid | too_long
    if not bad.any():
        values = [int(value) for value in text]
        bad_range = [index for index, value in enumerate(values) if value > _MAX_ID]
        if not bad_range:
            return pd.Series(np.array(values, dtype=np.int64), index=column.index)
        bad.iloc[bad_range] = True
    row = int(np.flatnonzero(bad.to_numpy())[0])
    raise InputDataError(
        f"{path}: line {row + 2}, column {name}: invalid id {column.iloc[row]!r}; "
        f"expected an integer from 0 to {_MAX_ID}"
    )


def _parse_event_types(column: pd.Series, path: Path) -> pd.Series:
    bad = ~column.isin(EVENT_TYPES)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputDataError(
            f"{path}: line {row + 2}, column event_type: invalid value "
            f"{column.iloc[row]!r}; expected one of {', '.join(EVENT_TYPES)}"
        )
    return column.astype(object)


def _parse_prices(column: pd.Series, path: Path) -> pd.Series:
    prices = pd.to_numeric(column.replace("", np.nan), errors="coerce")
    bad = prices.isna() & (column != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputDataError(
            f"{path}: line {row + 2}, column price: invalid number {column.iloc[row]!r}"
        )
    return prices.astype(np.float64)


def _empty_to_none(column: pd.Series) -> pd.Series:
    return column.astype(object).where(column != "", None)
