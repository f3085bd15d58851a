"""Turn a ``merchant-app simulate`` report into the simulation section of
docs/benchmarks.md (between the ``simulation`` markers; other sections stay).

Run the simulation first, then this script on its report:

    .venv/bin/merchant-app simulate --data ../shared/data/seed-shops \\
        --rounds 10 --report /tmp/report.json
    .venv/bin/python benchmarks/simulation_report.py --report /tmp/report.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

from markdown_section import machine_description, write_section

DEFAULT_COMMAND = (
    ".venv/bin/merchant-app simulate --data ../shared/data/seed-shops "
    "--rounds 10 --report /tmp/report.json"
)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _torch_threads(report: dict[str, Any]) -> int:
    # The rule of merchant_app.simulation.runner._limit_torch_threads.
    merchants = len(report["rounds"][0]["merchants"]) if report["rounds"] else 1
    return max(1, (os.cpu_count() or 1) // merchants)


def round_rows(report: dict[str, Any]) -> list[str]:
    """Return one Markdown table row per round."""
    rows = []
    for entry in report["rounds"]:
        merchants = entry["merchants"]
        seconds = [sum(m["seconds"].values()) for m in merchants]
        rows.append(
            f"| {entry['round']} "
            f"| {_mean([m['hr10'] for m in merchants]):.4f} "
            f"| {_mean([m['ndcg10'] for m in merchants]):.4f} "
            f"| {entry.get('wall_seconds', max(seconds)):.1f} "
            f"| {_mean(seconds):.1f} "
            f"| {_mean([m['bytes_uploaded'] for m in merchants]) / 2**20:.2f} "
            f"| {_mean([m['gas_used'] for m in merchants]):,.0f} "
            f"| {max(m['gas_used'] for m in merchants):,} |"
        )
    return rows


def phase_rows(report: dict[str, Any]) -> list[str]:
    """Return the mean seconds per merchant of each phase over all rounds."""
    totals: dict[str, list[float]] = {}
    for entry in report["rounds"]:
        for merchant in entry["merchants"]:
            for phase, seconds in merchant["seconds"].items():
                totals.setdefault(phase, []).append(seconds)
    return [f"| {phase} | {_mean(values):.2f} |" for phase, values in totals.items()]


def last_round_rows(report: dict[str, Any]) -> list[str]:
    """Return per-merchant HR@10 and NDCG@10: last round, local, central."""
    last = {m["name"]: m for m in report["rounds"][-1]["merchants"]}
    local = {s["name"]: s for s in report["baselines"]["local"]}
    central = {s["name"]: s for s in report["baselines"]["central"]}
    rows = []
    for name, merchant in last.items():
        rows.append(
            f"| {name} | {merchant['hr10']:.4f} | {merchant['ndcg10']:.4f} "
            f"| {local[name]['hr10']:.4f} | {local[name]['ndcg10']:.4f} "
            f"| {central[name]['hr10']:.4f} | {central[name]['ndcg10']:.4f} |"
        )
    means = [
        _mean([m["hr10"] for m in last.values()]),
        _mean([m["ndcg10"] for m in last.values()]),
        _mean([s["hr10"] for s in local.values()]),
        _mean([s["ndcg10"] for s in local.values()]),
        _mean([s["hr10"] for s in central.values()]),
        _mean([s["ndcg10"] for s in central.values()]),
    ]
    rows.append("| mean | " + " | ".join(f"{value:.4f}" for value in means) + " |")
    return rows


def build_section(report: dict[str, Any], command: str, report_path: str) -> str:
    """Return the Markdown body of the simulation section."""
    rounds = len(report["rounds"])
    lines = [
        "## Simulation of a consortium",
        "",
        f"`merchant-app simulate` with one merchant per seed shop, {rounds} "
        "rounds, every merchant with its own Kubo node, SQLite store and key "
        "on one anvil chain. Merchants run concurrently, one thread each. "
        "Quality is measured after each round, once the final model is "
        "loaded and the customer factors refitted.",
        "",
        "| round | mean HR@10 | mean NDCG@10 | round wall s | merchant s "
        "| upload MiB per merchant | mean gas per merchant | max gas |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *round_rows(report),
        "",
        "Gas per merchant sums every transaction it sent in the round: its "
        "submission, its approval and, for the merchant whose turn it was, "
        "the proposal (members take turns to propose, docs/rounds.md). The "
        "approval that reaches the threshold also opens the next round and "
        "costs more.",
        "",
        "Last round against the baselines on the same split:",
        "",
        "| merchant | federated HR@10 | federated NDCG@10 | local HR@10 "
        "| local NDCG@10 | central HR@10 | central NDCG@10 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *last_round_rows(report),
        "",
        "Mean seconds per merchant and round of each phase:",
        "",
        "| phase | seconds |",
        "|---|---:|",
        *phase_rows(report),
        "",
        f"- Machine: {machine_description()} (the benchmark script's; the "
        f"simulation sets torch to {_torch_threads(report)} thread(s) per "
        "merchant thread)",
        f"- Command: `{command}`, then "
        "`.venv/bin/python benchmarks/simulation_report.py --report "
        f"{report_path}`",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, required=True, help="report JSON")
    parser.add_argument(
        "--command",
        default=DEFAULT_COMMAND,
        help="the simulate command that wrote the report, for the record",
    )
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    write_section("simulation", build_section(report, args.command, str(args.report)))
    print(f"simulation section written from {args.report}")


if __name__ == "__main__":
    main()
