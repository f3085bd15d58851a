"""The ``merchant-app`` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from merchant_app import __version__
from merchant_app.errors import AppError, Cancelled
from merchant_app.logging_setup import configure_logging

logger = logging.getLogger(__name__)

# Modules under merchant_app.commands, in the order their commands are listed.
COMMAND_MODULES = [
    "merchant_app.commands.demo",
    "merchant_app.commands.chain",
    "merchant_app.commands.evaluate",
    "merchant_app.commands.simulate",
    "merchant_app.commands.gui",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every sub-command of :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(
        prog="merchant-app",
        description=(
            "Train one shared product recommender with other merchants, "
            "without sharing your data."
        ),
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages to stderr"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    Exit codes: 0 success, 1 an error the app reports, 2 invalid usage,
    130 cancelled.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)

    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2

    try:
        return int(handler(args))
    except Cancelled:
        print("Cancelled.", file=sys.stderr)
        return 130
    except AppError as exc:
        logger.error("%s failed: %s", args.command, exc, exc_info=args.verbose)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
