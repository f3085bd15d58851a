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
    self_test = parser.add_argument_group("self-test")
    self_test.add_argument(
        "--self-test",
        action="store_true",
        help="check that Qt, torch, the keyring and the contract artifact load, "
        "print one line per check and exit non-zero on a failure",
    )
    self_test.add_argument(
        "--rpc-url",
        dest="self_test_rpc_url",
        metavar="URL",
        help="with --self-test: also read the chain id and block number here",
    )
    self_test.add_argument(
        "--ipfs-api",
        dest="self_test_ipfs_api",
        metavar="URL",
        help="with --self-test: also request the id and version of this Kubo RPC API",
    )
    self_test.add_argument(
        "--require-keyring",
        action="store_true",
        help="with --self-test: fail, not warn, when no OS keyring is usable",
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

    if args.self_test:
        from merchant_app.self_test import run_self_test

        return run_self_test(
            rpc_url=args.self_test_rpc_url,
            ipfs_api=args.self_test_ipfs_api,
            require_keyring=args.require_keyring,
        )

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
