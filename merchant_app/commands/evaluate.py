"""``merchant-app evaluate``: score the recommender with the hold-one-out protocol.

Reads one event CSV per merchant from a folder, applies the protocol of
:mod:`merchant_app.recommender.evaluation`, trains local-only models (one per
merchant) or one central model (all merchants pooled), prints a table and
writes the scores as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from merchant_app.errors import ConfigError
from merchant_app.recommender.als import AlsConfig, config_for_mode, train_als
from merchant_app.recommender.dataset import build_interactions, load_merchant_folder
from merchant_app.recommender.evaluation import (
    EvaluationResult,
    RankingModel,
    evaluate_central,
    evaluate_local,
    split_hold_one_out,
)

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score the recommender on event files with the hold-one-out protocol",
        description=__doc__,
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder with one event CSV file per merchant (slim or nine-column)",
    )
    parser.add_argument(
        "--mode",
        choices=("local", "central"),
        default="local",
        help="local: one model per merchant; central: one model on all events "
        "pooled (default: local)",
    )
    parser.add_argument(
        "--json", type=Path, required=True, help="file to write the scores to"
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and return the exit code."""
    merchants = load_merchant_folder(args.data)
    split = split_hold_one_out(merchants)
    config = config_for_mode(args.mode)
    logger.info("evaluate %s started on %s with %s", args.mode, args.data, config)

    def trainer(events: Any) -> RankingModel:
        return train_als(build_interactions(events), config)

    if args.mode == "local":
        result = evaluate_local(split, trainer)
    else:
        result = evaluate_central(split, trainer)

    print(format_table(result, args.mode, config))
    try:
        args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(
            f"cannot write {args.json}: {exc}. Check the --json path."
        ) from exc
    return 0


def format_table(result: EvaluationResult, mode: str, config: AlsConfig) -> str:
    """Format the scores as a plain-text table."""
    width = max([len("average")] + [len(m.name) for m in result.merchants])
    lines = [
        f"mode {mode}; factors {config.dimension}, regularization "
        f"{config.regularization:g}, alpha {config.alpha:g}, "
        f"iterations {config.iterations}",
        f"{'merchant':<{width}}  {'HR@10':>7}  {'NDCG@10':>7}  {'customers':>9}",
    ]
    for merchant in result.merchants:
        lines.append(
            f"{merchant.name:<{width}}  {merchant.hr10:>7.4f}  "
            f"{merchant.ndcg10:>7.4f}  {merchant.test_customers:>9}"
        )
    lines.append(
        f"{'average':<{width}}  {result.average_hr10:>7.4f}  "
        f"{result.average_ndcg10:>7.4f}"
    )
    return "\n".join(lines)
