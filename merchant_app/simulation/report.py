"""The simulation report: its JSON shape and the tables printed per round.

Shape (merchants in file-name order)::

    {"rounds": [{"round": 1, "wall_seconds": s, "merchants": [{"name",
      "address", "hr10", "ndcg10", "bytes_uploaded", "gas_used",
      "seconds": {phase: s}, "aggregate_cid", "final_cid", "excluded"},
      ...]}, ...],
     "baselines": {"local": [{"name", "hr10", "ndcg10"}, ...],
                   "central": [...]}}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from merchant_app.errors import InputDataError
from merchant_app.federation.driver import RoundOutcome
from merchant_app.recommender.evaluation import EvaluationResult, MerchantScore

logger = logging.getLogger(__name__)


@dataclass
class SimulationReport:
    """Rounds and baselines collected during a run."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    baselines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "baselines": self.baselines}

    def write(self, path: Path) -> None:
        """Write the report as indented JSON to ``path``."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        except OSError as exc:
            raise InputDataError(f"cannot write the report {path}: {exc}") from exc
        logger.info("simulation report written to %s", path)


def merchant_entry(
    name: str, address: str, score: MerchantScore, outcome: RoundOutcome
) -> dict[str, Any]:
    """Return one merchant's entry of a round."""
    return {
        "name": name,
        "address": address,
        "hr10": score.hr10,
        "ndcg10": score.ndcg10,
        "bytes_uploaded": outcome.bytes_uploaded,
        "gas_used": outcome.gas_used,
        "seconds": {
            phase: round(seconds, 3) for phase, seconds in outcome.phase_seconds.items()
        },
        "aggregate_cid": outcome.aggregate_cid,
        "final_cid": outcome.final_cid,
        "excluded": [
            {"member": item.member, "cid": item.cid, "reason": item.reason}
            for item in outcome.excluded
        ],
    }


def baseline_entries(result: EvaluationResult) -> list[dict[str, Any]]:
    """Return the per-merchant scores of a baseline."""
    return [
        {"name": score.name, "hr10": score.hr10, "ndcg10": score.ndcg10}
        for score in result.merchants
    ]


def format_round_table(round_entry: Mapping[str, Any]) -> str:
    """Return the text table of one round's merchants and their mean."""
    merchants: Sequence[Mapping[str, Any]] = round_entry["merchants"]
    lines = [
        f"Round {round_entry['round']}",
        f"{'merchant':<16} {'HR@10':>7} {'NDCG@10':>8} {'upload KB':>10} "
        f"{'gas':>9} {'seconds':>8}",
    ]
    for merchant in merchants:
        lines.append(
            f"{merchant['name']:<16} {merchant['hr10']:>7.4f} "
            f"{merchant['ndcg10']:>8.4f} {merchant['bytes_uploaded'] / 1024:>10.1f} "
            f"{merchant['gas_used']:>9d} {sum(merchant['seconds'].values()):>8.1f}"
        )
    lines.append(
        f"{'mean':<16} {_mean(merchants, 'hr10'):>7.4f} "
        f"{_mean(merchants, 'ndcg10'):>8.4f}"
    )
    if merchants:
        lines.append(f"aggregate {merchants[0]['aggregate_cid']}")
    return "\n".join(lines)


def format_baselines(baselines: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Return the text table of the baselines (HR@10 and NDCG@10 per merchant)."""
    lines = [f"{'baseline':<10} {'merchant':<16} {'HR@10':>7} {'NDCG@10':>8}"]
    for kind, scores in baselines.items():
        for score in scores:
            lines.append(
                f"{kind:<10} {score['name']:<16} {score['hr10']:>7.4f} "
                f"{score['ndcg10']:>8.4f}"
            )
        lines.append(
            f"{kind:<10} {'mean':<16} {_mean(scores, 'hr10'):>7.4f} "
            f"{_mean(scores, 'ndcg10'):>8.4f}"
        )
    return "\n".join(lines)


def _mean(entries: Sequence[Mapping[str, Any]], key: str) -> float:
    if not entries:
        return 0.0
    return float(np.mean([entry[key] for entry in entries]))
