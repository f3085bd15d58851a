"""``merchant-app simulate``: a whole consortium on this computer.

Starts anvil and one Kubo node per merchant, deploys the contract, runs the
given number of rounds with one merchant per CSV file of the data folder,
prints a table per round and writes a JSON report. Every service is stopped
at the end, also after an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any

from merchant_app.errors import Cancelled
from merchant_app.simulation.runner import SimulationOptions, run_simulation

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` sub-command to ``subparsers``."""
    defaults = SimulationOptions(data=Path("."), rounds=1, report=Path("."))
    parser = subparsers.add_parser(
        "simulate",
        help="run federated rounds with one local merchant per CSV file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder with one event CSV file per merchant, in file-name order",
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="number of rounds (default 10)"
    )
    parser.add_argument(
        "--report", type=Path, required=True, help="JSON file to write the report to"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the chain state, Kubo repositories and merchant "
        "databases; kept after the run (default: a temporary folder, deleted)",
    )
    parser.add_argument(
        "--round-seconds",
        type=int,
        default=defaults.round_seconds,
        help="round duration on the contract, in seconds; a round closes "
        "earlier when every member submitted (default "
        f"{defaults.round_seconds})",
    )
    parser.add_argument(
        "--min-customers",
        type=int,
        default=defaults.min_customers,
        help="leave items with fewer distinct customers out of each update "
        f"(privacy option, default {defaults.min_customers})",
    )
    parser.add_argument(
        "--dimension",
        type=int,
        default=defaults.dimension,
        help=f"factor dimension of the shared model (default {defaults.dimension})",
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the simulation and return the exit code."""
    options = SimulationOptions(
        data=args.data,
        rounds=args.rounds,
        report=args.report,
        workdir=args.workdir,
        round_seconds=args.round_seconds,
        min_customers=args.min_customers,
        dimension=args.dimension,
    )
    cancel = threading.Event()
    try:
        run_simulation(options, cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise Cancelled("simulation interrupted") from None
    print(f"Report written to {args.report}")
    return 0
