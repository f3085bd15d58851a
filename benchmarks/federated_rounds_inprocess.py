"""Exact federated ALS over the three seed shops, in one process.

Each round runs the whole data path of the federation except IPFS and the
chain. Every merchant computes its update from the round's base model and
writes the update file's bytes. The bytes are validated and aggregated, and
the aggregate's bytes are validated as a shared model file. Every merchant
then refits its customers against it and is scored with the evaluation
protocol of merchant_app.recommender.evaluation. Local-only and central (pooled) ALS
with the same parameters are the reference points.

Runs one configuration per ``--min-customers`` value (the privacy option of
the update) and, with ``--compare-dtypes``, the same rounds with float64
statistics, then writes the ``federated-inprocess`` section of
docs/benchmarks.md.

    .venv/bin/python benchmarks/federated_rounds_inprocess.py \
        [--rounds 10] [--dimension 32] [--min-customers 1 2 3] [--compare-dtypes]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from markdown_section import PROJECT_ROOT, machine_description, write_section

from merchant_app.federation.aggregation import RobustOptions, aggregate_updates
from merchant_app.federation.local_update import (
    compute_local_update,
    refit_local_customers,
)
from merchant_app.federation.parameters import ConsortiumParameters
from merchant_app.federation.shared_model import SharedModel, shared_model_to_bytes
from merchant_app.federation.starter import starter_model
from merchant_app.federation.update_file import StatisticsDtype, update_to_bytes
from merchant_app.federation.validation import validate_shared_model
from merchant_app.recommender.als import train_als
from merchant_app.recommender.dataset import (
    build_interactions,
    interaction_weights,
    load_merchant_folder,
)
from merchant_app.recommender.evaluation import (
    EvaluationResult,
    HoldOutSplit,
    evaluate_central,
    evaluate_local,
    score_merchant,
    split_hold_one_out,
)
from merchant_app.recommender.model import FactorModel, ItemFactors

logger = logging.getLogger("federated_rounds_inprocess")

SEED_SHOPS = PROJECT_ROOT.parent / "shared" / "data" / "seed-shops"
COMMAND = ".venv/bin/python benchmarks/federated_rounds_inprocess.py"


@dataclass
class RunRecord:
    """Per-round numbers of one federated run."""

    min_customers: int
    dtype: str
    robust: bool
    private_rows: bool
    hr10: list[float] = field(default_factory=list)
    ndcg10: list[float] = field(default_factory=list)
    final: EvaluationResult | None = None
    update_bytes: list[int] = field(default_factory=list)
    items_sent: list[int] = field(default_factory=list)
    items_in_model: list[int] = field(default_factory=list)
    max_customer_norm: float = 0.0
    max_item_norm: float = 0.0
    max_step: float = 0.0
    seconds: float = 0.0
    final_factors: np.ndarray | None = None


def stand_in_cid(data: bytes) -> str:
    """Return a content id for in-process runs, where no IPFS node exists."""
    return "sim-sha256-" + hashlib.sha256(data).hexdigest()


def merchant_address(index: int) -> str:
    return "0x" + f"{index + 1:040x}"


def run_federated(
    split: HoldOutSplit,
    parameters: ConsortiumParameters,
    *,
    rounds: int,
    min_customers: int,
    dtype: StatisticsDtype,
    robust: bool = False,
    private_rows: bool = True,
) -> RunRecord:
    """Run ``rounds`` federated rounds and score every merchant after each.

    With ``private_rows``, each merchant keeps the rows of the items it left
    out of its update and scores them too. Without, it scores shared items only.
    """
    record = RunRecord(min_customers, dtype, robust, private_rows)
    names = list(split.train)
    private: dict[str, ItemFactors | None] = dict.fromkeys(names)
    started = time.perf_counter()
    base: SharedModel = starter_model(parameters)
    base_bytes = shared_model_to_bytes(base)

    for round_id in range(1, rounds + 1):
        base_cid = stand_in_cid(base_bytes)

        # Every merchant writes its update file from the same base.
        files = []
        sizes, sent = [], []
        for index, name in enumerate(names):
            local = compute_local_update(
                base,
                split.train[name],
                round_id=round_id,
                base_cid=base_cid,
                merchant=merchant_address(index),
                min_customers=min_customers,
                private_items=private[name],
            )
            if private_rows:
                private[name] = local.private_items
            data = update_to_bytes(local.update, dtype=dtype)
            files.append((merchant_address(index), data))
            sizes.append(len(data))
            sent.append(len(local.update.item_ids))
            norms = torch.linalg.vector_norm(local.customers.factors, dim=1)
            record.max_customer_norm = max(record.max_customer_norm, float(norms.max()))

        # Bytes in, validated, aggregated; the result read back as a fetched file.
        result = aggregate_updates(
            base,
            files,
            round_id=round_id,
            base_cid=base_cid,
            robust=RobustOptions() if robust else None,
        )
        if result.excluded:
            raise RuntimeError(f"round {round_id} excluded {result.excluded}")
        model = validate_shared_model(
            result.model_bytes,
            parameters=parameters,
            expected_round=round_id,
            expected_parent_cid=base_cid,
            base=base.items,
        )
        record.max_item_norm = max(
            record.max_item_norm,
            float(torch.linalg.vector_norm(model.items.factors, dim=1).max()),
        )
        rows = model.items.positions(base.items.item_ids)
        if len(rows):
            step = model.items.factors[torch.from_numpy(rows)] - base.items.factors
            record.max_step = max(
                record.max_step, float(torch.linalg.vector_norm(step, dim=1).max())
            )
        base, base_bytes = model, result.model_bytes

        # Each merchant refits its customers on the new shared items.
        scores = [
            score_merchant(
                name,
                refit_local_customers(base, split.train[name], private[name]),
                split,
            )
            for name in names
        ]
        evaluation = EvaluationResult(scores)
        record.hr10.append(evaluation.average_hr10)
        record.ndcg10.append(evaluation.average_ndcg10)
        record.update_bytes.append(int(np.mean(sizes)))
        record.items_sent.append(int(np.sum(sent)))
        record.items_in_model.append(len(base.items.item_ids))
        record.final = evaluation
        logger.info(
            "K=%d %s round %d: HR@10 %.4f NDCG@10 %.4f, %d items",
            min_customers,
            dtype,
            round_id,
            evaluation.average_hr10,
            evaluation.average_ndcg10,
            len(base.items.item_ids),
        )

    record.seconds = time.perf_counter() - started
    record.final_factors = base.items.factors.numpy()
    return record


def reference_results(
    split: HoldOutSplit, parameters: ConsortiumParameters
) -> tuple[EvaluationResult, EvaluationResult]:
    config = parameters.als_config()

    def trainer(events: pd.DataFrame) -> FactorModel:
        return train_als(build_interactions(events), config)

    return evaluate_local(split, trainer), evaluate_central(split, trainer)


def single_customer_share(split: HoldOutSplit) -> dict[str, float]:
    """Return, per merchant, the share of its items with one customer."""
    shares = {}
    for name, events in split.train.items():
        counts = interaction_weights(events).groupby("product_id").size()
        shares[name] = float((counts == 1).mean())
    return shares


def format_report(
    records: list[RunRecord],
    local: EvaluationResult,
    central: EvaluationResult,
    parameters: ConsortiumParameters,
    shares: dict[str, float],
    dtype_difference: float | None,
    rounds: int,
) -> str:
    lines = [
        "## Exact federated ALS in one process",
        "",
        f"Three seed shops, {rounds} rounds through update files (bytes, "
        "validation, aggregation, shared model file, customer refit), "
        f"dimension {parameters.dimension}, alpha {parameters.alpha}, "
        f"regularization {parameters.regularization}, item biases "
        f"{'on' if parameters.use_biases else 'off'}, empty starter model. "
        "Local-only and central are the app's ALS with the same parameters "
        "and 15 iterations. K is the update's `min_customers`.",
        "",
        "| run | " + " | ".join(f"r{r}" for r in range(1, rounds + 1)) + " |",
        "|---|" + "---:|" * rounds,
    ]
    for record in records:
        label = _label(record)
        lines.append(
            f"| {label} HR@10 | " + " | ".join(f"{v:.4f}" for v in record.hr10) + " |"
        )
    lines += [
        "",
        "| run | "
        + " | ".join(m.name for m in local.merchants)
        + " | average HR@10 | average NDCG@10 | update file (mean) "
        "| items sent per round (3 shops) | seconds |",
        "|---|" + "---:|" * (len(local.merchants) + 5),
        _reference_row("local-only", local),
        _reference_row("central", central),
    ]
    for record in records:
        assert record.final is not None
        label = "federated " + _label(record)
        cells = [f"{m.hr10:.4f} / {m.ndcg10:.4f}" for m in record.final.merchants]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {record.final.average_hr10:.4f} | {record.final.average_ndcg10:.4f}"
            f" | {record.update_bytes[-1] / 1e6:.1f} MB | {record.items_sent[-1]}"
            f" | {record.seconds:.0f} |"
        )
    lines += [
        "",
        "Per-merchant cells are HR@10 / NDCG@10 after the last round.",
        "Share of items with a single customer: "
        + ", ".join(f"{name} {share:.1%}" for name, share in shares.items())
        + ".",
        f"Largest customer factor norm seen: "
        f"{max(r.max_customer_norm for r in records):.3f}; largest item factor "
        f"norm: {max(r.max_item_norm for r in records):.3f}; largest item row "
        f"step between rounds: {max(r.max_step for r in records):.3f}.",
    ]
    if dtype_difference is not None:
        lines.append(
            "Largest absolute difference between the final item factors of "
            f"the float32 and float64 K=1 runs: {dtype_difference:.2e}."
        )
    lines += [
        "",
        f"- Machine: {machine_description()}",
        f"- Command: `{COMMAND} {' '.join(sys.argv[1:])}`".replace(" `", " `", 1),
    ]
    return "\n".join(lines)


def _label(record: RunRecord) -> str:
    label = f"K={record.min_customers} {record.dtype}"
    if record.min_customers > 1 and not record.private_rows:
        label += " shared rows only"
    if record.robust:
        label += " robust"
    return label


def _reference_row(label: str, result: EvaluationResult) -> str:
    cells = [f"{m.hr10:.4f} / {m.ndcg10:.4f}" for m in result.merchants]
    return (
        f"| {label} | "
        + " | ".join(cells)
        + f" | {result.average_hr10:.4f} | {result.average_ndcg10:.4f} | | | |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SEED_SHOPS)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dimension", type=int, default=32)
    parser.add_argument("--min-customers", type=int, nargs="+", default=[1])
    parser.add_argument("--compare-dtypes", action="store_true")
    parser.add_argument("--robust", action="store_true", help="also run K=1 robust")
    parser.add_argument(
        "--compare-private-rows",
        action="store_true",
        help="also run each K > 1 without the private rows of left-out items",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument(
        "--no-write", action="store_true", help="skip docs/benchmarks.md"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("merchant_app").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)

    if not args.data.is_dir():
        print(f"seed shops not found: {args.data}", file=sys.stderr)
        return 1
    split = split_hold_one_out(load_merchant_folder(args.data))
    parameters = ConsortiumParameters(dimension=args.dimension)
    local, central = reference_results(split, parameters)
    logger.info(
        "local HR@10 %.4f, central HR@10 %.4f",
        local.average_hr10,
        central.average_hr10,
    )

    records = [
        run_federated(
            split,
            parameters,
            rounds=args.rounds,
            min_customers=k,
            dtype="float32",
        )
        for k in args.min_customers
    ]
    if args.compare_private_rows:
        records += [
            run_federated(
                split,
                parameters,
                rounds=args.rounds,
                min_customers=k,
                dtype="float32",
                private_rows=False,
            )
            for k in args.min_customers
            if k > 1
        ]
    dtype_difference = None
    if args.compare_dtypes:
        wide = run_federated(
            split, parameters, rounds=args.rounds, min_customers=1, dtype="float64"
        )
        narrow = next(r for r in records if r.min_customers == 1)
        assert narrow.final_factors is not None and wide.final_factors is not None
        dtype_difference = float(
            np.abs(narrow.final_factors - wide.final_factors).max()
        )
        records.append(wide)
    if args.robust:
        records.append(
            run_federated(
                split,
                parameters,
                rounds=args.rounds,
                min_customers=1,
                dtype="float32",
                robust=True,
            )
        )

    report = format_report(
        records,
        local,
        central,
        parameters,
        single_customer_share(split),
        dtype_difference,
        args.rounds,
    )
    print(report)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "local": local.to_json(),
                    "central": central.to_json(),
                    "runs": [
                        {
                            "min_customers": r.min_customers,
                            "dtype": r.dtype,
                            "robust": r.robust,
                            "private_rows": r.private_rows,
                            "hr10": r.hr10,
                            "ndcg10": r.ndcg10,
                            "final": r.final.to_json() if r.final else None,
                            "update_bytes": r.update_bytes,
                        }
                        for r in records
                    ],
                },
                indent=2,
            )
        )
    if not args.no_write:
        write_section("federated-inprocess", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
