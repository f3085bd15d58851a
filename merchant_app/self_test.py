"""``merchant-app --self-test``: check that the app's parts load and run here.

The self-test exists for the packaged app, where a missing Qt plugin, shared
library, data file or entry-point metadata only shows when the part is used.
Each check imports what it needs inside its function, so one broken part is
reported as a failed check, not as a crash of the whole command. Importing
this module therefore imports neither Qt nor torch.

A missing OS keyring is reported as a warning and does not fail the run,
because the app then stores keys in a password-encrypted keystore file.
``require_keyring`` makes it a failure, for a machine known to have one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

logger = logging.getLogger(__name__)

OK = "OK"
WARNING = "WARNING"
FAILED = "FAILED"

# Functions that merchant_app.chain.consortium sends or calls. An artifact
# without one of them belongs to another contract version.
EXPECTED_CONTRACT_FUNCTIONS = frozenset(
    {
        "addMember",
        "removeMember",
        "openFirstRound",
        "submitUpdate",
        "closeRound",
        "proposeAggregate",
        "approveAggregate",
        "lowerApprovalThreshold",
        "setPeerAddress",
        "currentRound",
        "memberState",
        "parameters",
    }
)

NETWORK_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: its status and what it found or why it failed."""

    name: str
    status: str
    detail: str


def check_qt() -> CheckResult:
    """Create a QApplication on the offscreen platform and render a widget."""
    # The platform is read when the first QApplication is created, so it is
    # only set when no application exists yet (pytest-qt may have made one).
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QLabel

    from merchant_app.ui.resources import app_icon_path, style_sheet

    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)

    label = QLabel("merchant-app self-test")
    label.resize(240, 40)
    pixmap = label.grab()
    if pixmap.isNull() or pixmap.width() == 0:
        return CheckResult("qt", FAILED, "rendering a QLabel returned an empty image")

    # The icon is an SVG file, so this needs the svg image-format plugin.
    icon_path = app_icon_path()
    icon = QIcon(str(icon_path)).pixmap(64, 64)
    if icon.isNull():
        return CheckResult(
            "qt", FAILED, f"the app icon {icon_path} did not load (svg plugin?)"
        )
    if not style_sheet():
        return CheckResult("qt", FAILED, "the style sheet resources/style.qss is empty")

    from PySide6 import __version__ as pyside_version

    return CheckResult(
        "qt",
        OK,
        f"PySide6 {pyside_version} on platform {app.platformName()}, "
        f"rendered a {pixmap.width()}x{pixmap.height()} widget and the icon",
    )


def check_torch() -> CheckResult:
    """Multiply two small tensors on the CPU."""
    import torch

    left = torch.ones(2, 3)
    right = torch.full((3, 2), 2.0)
    total = float((left @ right).sum().item())
    # Each of the 4 entries is 3 * 1 * 2 = 6.
    if total != 24.0:
        return CheckResult(
            "torch", FAILED, f"ones(2,3) @ full(3,2,2) summed to {total}"
        )
    return CheckResult(
        "torch", OK, f"torch {torch.__version__}, a 2x3 @ 3x2 matmul summed to 24"
    )


def check_store() -> CheckResult:
    """Import three events into a new store in a temporary folder.

    Reports whether the import read them through the C module's
    merchant_rows function (native_rows.py) or had to bind them from
    Python, which works but is slower.
    """
    import tempfile
    from pathlib import Path

    from merchant_app.store import EventStore, native_rows

    rows = "\n".join(
        [
            "user_id,product_id,category_code,brand,price,event_type",
            "1,10,,acme,2.5,view",
            "1,11,,,3,cart",
            "2,10,,acme,2.5,purchase",
        ]
    )
    with tempfile.TemporaryDirectory(prefix="merchant-self-test-") as folder:
        source = Path(folder) / "events.csv"
        source.write_text(rows + "\n", encoding="utf-8")
        with EventStore.open(Path(folder) / "store.sqlite") as store:
            report = store.import_csv(source)
            native = native_rows.usable(store.connection)
            counts = store.counts()
    if report.rows_added != 3 or counts.events != 3:
        return CheckResult(
            "store",
            FAILED,
            f"imported {report.rows_added} of 3 events, store counts {counts.events}",
        )
    if not native:
        return CheckResult(
            "store",
            WARNING,
            "3 events imported, but merchant_rows is unavailable, so large "
            "imports bind values from Python and are slower (see the log)",
        )
    return CheckResult("store", OK, "3 events imported through merchant_rows")


def make_keyring_check(*, require: bool) -> Callable[[], CheckResult]:
    """Return the keyring check; ``require`` makes a missing keyring a failure."""

    def check_keyring() -> CheckResult:
        from merchant_app.wallet import describe_backend

        info = describe_backend()
        if info.usable:
            return CheckResult(
                "keyring", OK, f"{info.name} (backend {info.backend_class})"
            )
        status = FAILED if require else WARNING
        return CheckResult(
            "keyring",
            status,
            f"no usable OS keyring (backend {info.backend_class}): {info.reason}",
        )

    return check_keyring


def check_artifact() -> CheckResult:
    """Load the contract artifact and check its ABI has the app's functions."""
    from merchant_app.chain.artifact import load_artifact

    artifact = load_artifact()
    functions = {
        str(entry["name"]) for entry in artifact.abi if entry.get("type") == "function"
    }
    missing = sorted(EXPECTED_CONTRACT_FUNCTIONS - functions)
    if missing:
        return CheckResult(
            "contract",
            FAILED,
            f"{artifact.path} lacks the functions {', '.join(missing)}",
        )
    if len(artifact.bytecode) <= len("0x"):
        return CheckResult("contract", FAILED, f"{artifact.path} has no bytecode")
    return CheckResult(
        "contract",
        OK,
        f"{artifact.name} from {artifact.path}, {len(functions)} functions, "
        f"solc {artifact.compiler_version}",
    )


def make_chain_check(rpc_url: str) -> Callable[[], CheckResult]:
    """Return a check that reads the chain id and block number at ``rpc_url``."""

    def check_chain() -> CheckResult:
        from web3 import Web3

        w3 = Web3(
            Web3.HTTPProvider(
                rpc_url,
                request_kwargs={"timeout": NETWORK_TIMEOUT_SECONDS},
                exception_retry_configuration=None,
            )
        )
        chain_id = int(w3.eth.chain_id)
        block = int(w3.eth.block_number)
        return CheckResult(
            "chain", OK, f"{rpc_url}: chain id {chain_id}, block {block}"
        )

    return check_chain


def make_ipfs_check(api_url: str) -> Callable[[], CheckResult]:
    """Return a check that requests the Kubo node's id and version at ``api_url``."""

    def check_ipfs() -> CheckResult:
        from merchant_app.ipfs.client import KuboClient

        with KuboClient(api_url, timeout=NETWORK_TIMEOUT_SECONDS) as client:
            identity = client.id()
            version = client.version()
        return CheckResult(
            "ipfs", OK, f"{api_url}: Kubo {version}, peer {identity.peer_id}"
        )

    return check_ipfs


def run_check(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Run one check and turn any exception it raises into a failed result."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - every failure is reported as such
        logger.warning(
            "self-test check %s failed: %s",
            name,
            exc,
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )
        return CheckResult(name, FAILED, f"{type(exc).__name__}: {exc}")


def run_self_test(
    *,
    rpc_url: str | None = None,
    ipfs_api: str | None = None,
    require_keyring: bool = False,
    output: TextIO | None = None,
) -> int:
    """Run every check, print one line per check, and return the exit code.

    Returns 0 when no check failed and 1 otherwise. The chain and Kubo checks
    run only when their URL is given.
    """
    stream = output if output is not None else sys.stdout
    checks: list[tuple[str, Callable[[], CheckResult]]] = [
        ("qt", check_qt),
        ("torch", check_torch),
        ("keyring", make_keyring_check(require=require_keyring)),
        ("contract", check_artifact),
        ("store", check_store),
    ]
    if rpc_url is not None:
        checks.append(("chain", make_chain_check(rpc_url)))
    if ipfs_api is not None:
        checks.append(("ipfs", make_ipfs_check(ipfs_api)))

    failed = 0
    for name, check in checks:
        result = run_check(name, check)
        print(f"{result.status:<7} {result.name}: {result.detail}", file=stream)
        stream.flush()
        if result.status == FAILED:
            failed += 1

    frozen = "bundle" if getattr(sys, "frozen", False) else "source"
    if failed:
        print(f"self-test ({frozen}): {failed} check(s) failed", file=stream)
        return 1
    print(f"self-test ({frozen}): all {len(checks)} checks passed", file=stream)
    return 0
