"""``merchant-app demo``: three merchants on this computer, one in the window.

Starts anvil and one Kubo node per merchant, deploys the consortium
contract and creates three merchants from the seed shops (or the generated
sample when they are absent, or --data). The window opens on the first
merchant, whose key is kept in the OS keyring; the other two take part in
the rounds it contributes to, headless. Without a display, or with
--headless, the demo runs the simulation instead and prints its table.
Every service the demo started is stopped when the window closes or on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from merchant_app.demo import (
    DEFAULT_ROUNDS,
    DemoConsortium,
    DemoOptions,
    has_display,
    resolve_demo_data,
)
from merchant_app.errors import Cancelled
from merchant_app.profiles import default_data_root
from merchant_app.simulation.runner import SimulationOptions, run_simulation

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``demo`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "demo",
        help="run a three-merchant consortium on this computer, one in the window",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with at least three event CSV files, one per merchant, "
        "in file-name order (default: the seed shops, else ml_model/sample)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="number of rounds the simulation runs without a window; with a "
        "window, the maximum number of rounds the headless merchants take part "
        f"in (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="run the simulation and print its table instead of opening a window",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder of profiles that contains the demo profile (default: "
        "$MERCHANT_APP_DATA_DIR, else ~/.local/share/merchant-app/profiles)",
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the demo with or without a window and return the exit code."""
    data = resolve_demo_data(args.data)
    if args.headless or not has_display():
        if not args.headless:
            print("No display found: running the simulation without a window.")
        return run_headless(data.folder, data.description, rounds=args.rounds)
    options = DemoOptions(
        data=data,
        data_root=args.data_dir or default_data_root(),
        rounds=args.rounds,
    )
    return run_window(options)


def run_headless(folder: Path, description: str, *, rounds: int) -> int:
    """Run the simulation on ``folder`` and print its tables."""
    print(f"Demo data: {description}")
    cancel = threading.Event()
    with tempfile.TemporaryDirectory(prefix="merchant-demo-") as workdir:
        options = SimulationOptions(
            data=folder, rounds=rounds, report=Path(workdir) / "report.json"
        )
        try:
            run_simulation(options, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise Cancelled("demo interrupted") from None
    print("Demo finished; every service it started is stopped.")
    return 0


def run_window(options: DemoOptions) -> int:
    """Start the demo consortium, show the window, stop everything after."""
    # Qt is imported only when the window is wanted.
    from merchant_app.ui.demo_window import run_demo_window

    try:
        with DemoConsortium(options) as demo:
            assert demo.profile is not None
            code = run_demo_window(
                demo.profile, driver_settings=options.driver_settings
            )
    except KeyboardInterrupt:
        raise Cancelled("demo interrupted") from None
    print("Demo stopped; every service it started is stopped.")
    return code
