"""``merchant-app gui``: open the desktop window."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``gui`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "gui",
        help="open the desktop window",
        description=(
            "Open the desktop window: the sign-in screen, or the main window "
            "of --profile."
        ),
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="open this profile at once instead of showing the sign-in screen",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder that contains the profile folders (default: "
        "$MERCHANT_APP_DATA_DIR, else ~/.local/share/merchant-app/profiles)",
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the GUI until its window closes and return the exit code."""
    # Qt is imported only when the window is wanted, so the other commands
    # start without loading it.
    from merchant_app.ui.app import run_app

    logger.info("starting the GUI")
    return run_app(profile_name=args.profile, data_root=args.data_dir)
