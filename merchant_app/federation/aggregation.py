"""Combine the round's updates into the next shared model, the same on every merchant.

The updates are validated and sorted by merchant address (lower-case hex).
Their per-item statistics are summed in float64 in that order
(:func:`merchant_app.recommender.als.sum_item_statistics`), then each item is
solved once with the consortium's regularization
(:func:`merchant_app.recommender.als.solve_items`) and stored as float32.
Items no update contains keep their base row; items no base row exists for
are added. The result's bytes, and so its CID, depend only on the inputs.

NOTE: the per-item Cholesky solve runs in LAPACK through torch. Two machines
with different CPUs or BLAS builds can differ in the last bits of a float64
solution, which changes a float32 value when it lies within that error of a
rounding boundary. Merchants on the same platform get identical bytes (tested
across processes); a consortium on mixed hardware can see two aggregate CIDs
in a round, and approvals are counted per CID.

Robust option (:class:`RobustOptions`): a median of summed statistics is not
their sum, so robust combination here works on whole per-item contributions.
For each item, a contribution whose declared interaction weight exceeds
``max_weight_ratio`` times the lower median of that item's contributions is
left out of that item's sum, and an update whose customer count exceeds
``max_weight_ratio`` times the lower median customer count is left out
entirely (its Gram matrix affects every item). Validation has already tied
each contribution's trace and norm to its declared weight, so a contribution
that is kept moves its item at most as much as an honest one of
``max_weight_ratio`` times the typical weight could. docs/federation.md
discusses the cost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from merchant_app.errors import InvalidUpdateError, ModelError
from merchant_app.federation.shared_model import SharedModel, shared_model_to_bytes
from merchant_app.federation.update_file import ModelUpdate, normalize_address
from merchant_app.federation.validation import (
    UpdateContext,
    ValidationLimits,
    validate_update,
)
from merchant_app.recommender.als import (
    ItemStatistics,
    solve_items,
    sum_item_statistics,
)
from merchant_app.recommender.model import ItemFactors

logger = logging.getLogger(__name__)

# Items solved together; bounds the float64 per-item matrices held at once.
_SOLVE_BATCH_VALUES = 1 << 22


@dataclass(frozen=True)
class RobustOptions:
    """Options for consortia that fear a poisoned update (see module docstring)."""

    max_weight_ratio: float = 10.0

    def __post_init__(self) -> None:
        if not self.max_weight_ratio >= 1.0:
            raise ModelError(
                f"max_weight_ratio must be at least 1, got {self.max_weight_ratio}"
            )


@dataclass(frozen=True)
class ExcludedUpdate:
    """An update left out of the aggregate, with the rule it failed."""

    merchant: str
    reason: str
    message: str


@dataclass(frozen=True)
class AggregationResult:
    """The next shared model, its bytes, and which updates went into it.

    ``trimmed_contributions`` counts per-item contributions left out by the
    robust option.
    """

    model: SharedModel
    model_bytes: bytes
    included: list[str]
    excluded: list[ExcludedUpdate]
    trimmed_contributions: int = 0
    solved_items: int = 0
    new_items: int = 0
    untouched_items: int = 0


def aggregate_updates(
    base: SharedModel,
    updates: Sequence[tuple[str, bytes | ModelUpdate]],
    *,
    round_id: int,
    base_cid: str,
    limits: ValidationLimits | None = None,
    robust: RobustOptions | None = None,
) -> AggregationResult:
    """Compute the shared model that closes ``round_id``.

    ``updates`` pairs each submitting merchant's address with its update file
    bytes (validated here) or an update already returned by
    :func:`~merchant_app.federation.validation.validate_update`. The list
    order does not matter. A file that fails validation, or whose declared
    merchant differs from its submitter, is excluded and listed in the result.

    Raises:
        ModelError: when an address occurs twice or no valid update remains.
    """
    context = UpdateContext(
        round=round_id, base_cid=base_cid, parameters=base.parameters
    )
    accepted, excluded = _validated_in_address_order(updates, context, limits)
    if robust is not None:
        accepted, dropped = _drop_oversized_updates(accepted, robust)
        excluded.extend(dropped)
    if not accepted:
        raise ModelError(
            f"no valid update for round {round_id}; the base model stays in use"
        )

    # Solve every item some update contains, in batches of sorted ids.
    solved_ids = np.unique(np.concatenate([update.item_ids for update in accepted]))
    width = base.parameters.width
    factors = np.empty((len(solved_ids), base.parameters.dimension), np.float32)
    biases = np.empty(len(solved_ids), np.float32)
    trimmed = 0
    step = max(1, _SOLVE_BATCH_VALUES // (width * width))
    for start in range(0, len(solved_ids), step):
        batch_ids = solved_ids[start : start + step]
        parts = [_rows_of(update, batch_ids) for update in accepted]
        if robust is not None:
            parts, batch_trimmed = _trim_contributions(parts, batch_ids, robust)
            trimmed += batch_trimmed
        summed = sum_item_statistics(parts)
        batch_factors, batch_biases = solve_items(
            summed, regularization=base.parameters.regularization
        )
        factors[start : start + len(batch_ids)] = batch_factors.to(torch.float32)
        biases[start : start + len(batch_ids)] = batch_biases.to(torch.float32)

    items = _merge_with_base(base.items, solved_ids, factors, biases)
    model = SharedModel(
        items=items,
        round=round_id,
        parent_cid=base_cid,
        parameters=base.parameters,
    )
    new_items = int(np.isin(solved_ids, base.items.item_ids, invert=True).sum())
    result = AggregationResult(
        model=model,
        model_bytes=shared_model_to_bytes(model),
        included=[update.header.merchant for update in accepted],
        excluded=excluded,
        trimmed_contributions=trimmed,
        solved_items=len(solved_ids),
        new_items=new_items,
        untouched_items=len(items.item_ids) - len(solved_ids),
    )
    logger.info(
        "aggregate of round %d on %s: %d updates, %d excluded, %d items solved "
        "(%d new), %d untouched, %d contributions trimmed",
        round_id,
        base_cid,
        len(accepted),
        len(excluded),
        result.solved_items,
        new_items,
        result.untouched_items,
        trimmed,
    )
    return result


def _validated_in_address_order(
    updates: Sequence[tuple[str, bytes | ModelUpdate]],
    context: UpdateContext,
    limits: ValidationLimits | None,
) -> tuple[list[ModelUpdate], list[ExcludedUpdate]]:
    by_address: dict[str, bytes | ModelUpdate] = {}
    for address, update in updates:
        normalized = normalize_address(address)
        if normalized in by_address:
            raise ModelError(
                f"two updates from {normalized} in round {context.round}; "
                "pass one update per merchant"
            )
        by_address[normalized] = update

    accepted: list[ModelUpdate] = []
    excluded: list[ExcludedUpdate] = []
    for address in sorted(by_address):
        try:
            update = _validated(by_address[address], context, limits)
            if update.header.merchant != address:
                raise InvalidUpdateError(
                    f"update declares merchant {update.header.merchant} but was "
                    f"submitted by {address}",
                    reason="merchant",
                )
        except InvalidUpdateError as exc:
            logger.warning(
                "update of %s for round %d excluded (%s): %s",
                address,
                context.round,
                exc.reason,
                exc,
            )
            excluded.append(ExcludedUpdate(address, exc.reason, str(exc)))
            continue
        accepted.append(update)
    return accepted, excluded


def _validated(
    update: bytes | ModelUpdate,
    context: UpdateContext,
    limits: ValidationLimits | None,
) -> ModelUpdate:
    if isinstance(update, ModelUpdate):
        # Already parsed by validate_update; only the round context is rechecked.
        header = update.header
        if (
            header.round != context.round
            or header.base_cid != context.base_cid
            or header.parameters != context.parameters
        ):
            raise InvalidUpdateError(
                f"parsed update of {header.merchant} is for round {header.round} "
                f"on {header.base_cid}, not this round",
                reason="round",
            )
        return update
    return validate_update(update, context, limits)


def _rows_of(update: ModelUpdate, item_ids: np.ndarray) -> ItemStatistics:
    """Return the statistics of the items of ``item_ids`` that ``update`` has."""
    # Batches are contiguous ranges of the sorted union of all updates' ids.
    first = np.searchsorted(update.item_ids, item_ids[0], side="left")
    last = np.searchsorted(update.item_ids, item_ids[-1], side="right")
    return update.statistics(np.arange(first, last))


def _trim_contributions(
    parts: list[ItemStatistics], item_ids: np.ndarray, robust: RobustOptions
) -> tuple[list[ItemStatistics], int]:
    """Drop per-item contributions far above the item's lower-median weight."""
    weights = np.full((len(parts), len(item_ids)), np.nan)
    for index, part in enumerate(parts):
        weights[index, np.searchsorted(item_ids, part.item_ids)] = part.weights.numpy()

    # Lower median per item over the parts that contain it.
    present = ~np.isnan(weights)
    ordered = np.sort(np.where(present, weights, np.inf), axis=0)
    middle = (present.sum(axis=0) - 1) // 2
    median = ordered[middle, np.arange(len(item_ids))]
    keep_matrix = ~present | (weights <= robust.max_weight_ratio * median)

    trimmed_parts = []
    trimmed = 0
    for index, part in enumerate(parts):
        columns = np.searchsorted(item_ids, part.item_ids)
        keep = keep_matrix[index, columns]
        trimmed += int((~keep).sum())
        if keep.all():
            trimmed_parts.append(part)
            continue
        rows = torch.from_numpy(np.flatnonzero(keep))
        trimmed_parts.append(
            ItemStatistics(
                item_ids=part.item_ids[keep],
                gram=part.gram,
                lhs=part.lhs[rows],
                rhs=part.rhs[rows],
                weights=part.weights[rows],
                use_biases=part.use_biases,
            )
        )
    return trimmed_parts, trimmed


def _drop_oversized_updates(
    updates: list[ModelUpdate], robust: RobustOptions
) -> tuple[list[ModelUpdate], list[ExcludedUpdate]]:
    if not updates:
        return updates, []
    counts = sorted(update.header.customer_count for update in updates)
    median = counts[(len(counts) - 1) // 2]
    kept, dropped = [], []
    for update in updates:
        if update.header.customer_count > robust.max_weight_ratio * median:
            message = (
                f"customer count {update.header.customer_count} exceeds "
                f"{robust.max_weight_ratio} x the median {median}"
            )
            logger.warning(
                "update of %s excluded by the robust option: %s",
                update.header.merchant,
                message,
            )
            dropped.append(ExcludedUpdate(update.header.merchant, "outlier", message))
        else:
            kept.append(update)
    return kept, dropped


def _merge_with_base(
    base: ItemFactors, solved_ids: np.ndarray, factors: np.ndarray, biases: np.ndarray
) -> ItemFactors:
    all_ids = np.union1d(base.item_ids, solved_ids)
    merged_factors = np.empty((len(all_ids), factors.shape[1]), np.float32)
    merged_biases = np.empty(len(all_ids), np.float32)
    merged_factors[np.searchsorted(all_ids, base.item_ids)] = base.factors.numpy()
    merged_biases[np.searchsorted(all_ids, base.item_ids)] = base.biases.numpy()
    merged_factors[np.searchsorted(all_ids, solved_ids)] = factors
    merged_biases[np.searchsorted(all_ids, solved_ids)] = biases
    return ItemFactors(
        item_ids=all_ids,
        factors=torch.from_numpy(merged_factors),
        biases=torch.from_numpy(merged_biases),
    )
