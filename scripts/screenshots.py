"""Save a PNG of each screen into docs/screenshots, from a real run of the demo.

Run it under Xvfb, so real fonts and a real window system render the window:

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshots.py

It runs ``merchant-app demo --data ml_model/sample`` (the project's generated
sample shops, never the shared data) with a temporary data folder: anvil,
three Kubo nodes, the contract, two headless merchants and the window of the
first. Once the window is up, a tour clicks through it as a merchant would
and saves each screen: the window as the demo opens it (demo.png), two
Contribute rounds, Federation, Home, Transactions after importing a week of
events (written from the sample in the nine-column layout),
Recommendations, Wallet after Test connection, and the sign-in window over
the demo's profiles. Then it closes the window, and the demo stops every
service it started. Xvfb sessions have no keyring, so the demo merchant signs
with a throwaway key held in memory.

Options: ``--only NAME`` (repeatable) saves only those screens.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import logging
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QWidget

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from merchant_app.cli import main as cli_main  # noqa: E402 (after the path setup)
from merchant_app.demo import SAMPLE_SHOPS  # noqa: E402
from merchant_app.store import EVENT_COLUMNS  # noqa: E402
from merchant_app.ui.app import create_application  # noqa: E402
from merchant_app.ui.events_model import EventsTableModel  # noqa: E402
from merchant_app.ui.main_window import MainWindow  # noqa: E402
from merchant_app.ui.signin import SignInWindow  # noqa: E402

logger = logging.getLogger("screenshots")

OUTPUT = PROJECT_ROOT / "docs" / "screenshots"
# The tour imports a week of new events in the nine-column layout, made from
# the first rows of the demo shop's sample file (see write_recent_events).
RECENT_ROWS = 400
RECENT_START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
WINDOW_SIZE = (1180, 760)
SCREENS = (
    "demo",
    "contribute",
    "federation",
    "home",
    "transactions",
    "recommendations",
    "wallet",
    "signin",
)
ROUNDS = 2
STEP_TIMEOUT = 300.0


async def until(predicate: Callable[[], bool], timeout: float = STEP_TIMEOUT) -> None:
    """Wait on the running loop until ``predicate()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("the screen did not reach the expected state")
        await asyncio.sleep(0.05)


def write_recent_events(source: Path, destination: Path) -> Path:
    """Write the first ``RECENT_ROWS`` rows of a slim sample file as new events.

    The rows get the REES46 columns the slim layout lacks: a time in the week
    from ``RECENT_START``, a category id and one session per customer, so the
    Transactions screenshot shows every column. The output is the same on
    every run.
    """
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(itertools.islice(csv.DictReader(handle), RECENT_ROWS))
    step = timedelta(days=7) / max(len(rows), 1)
    with destination.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        # The store's export columns are the REES46 layout, in its order.
        writer.writerow(EVENT_COLUMNS)
        for index, row in enumerate(rows):
            time = RECENT_START + index * step
            category = row["category_code"]
            writer.writerow(
                [
                    time.strftime("%Y-%m-%d %H:%M:%S UTC"),
                    row["event_type"],
                    row["product_id"],
                    2_053_013_552_226_107_000 + sum(map(ord, category)),
                    category,
                    row["brand"],
                    row["price"],
                    row["user_id"],
                    uuid.uuid5(uuid.NAMESPACE_URL, f"session/{row['user_id']}"),
                ]
            )
    return destination


class Tour:
    """Clicks through the demo's window and saves the screens asked for."""

    def __init__(self, requested: set[str], import_file: Path) -> None:
        self.requested = requested
        self.import_file = import_file
        self.saved: list[Path] = []
        self.error: BaseException | None = None

    async def grab(self, widget: QWidget, name: str) -> None:
        """Let the window paint, then save it as ``name``.png if requested."""
        if name not in self.requested:
            return
        await asyncio.sleep(0.4)
        path = OUTPUT / f"{name}.png"
        if not widget.grab().save(str(path)):
            raise OSError(f"cannot write {path}")
        print(f"wrote {path}", flush=True)
        self.saved.append(path)

    async def run(self, window: MainWindow) -> None:
        """Run the tour, then close the window, which ends the demo."""
        try:
            await self._visit(window)
        except BaseException as exc:
            self.error = exc
            logger.exception("the screenshot tour failed")
        finally:
            window.close()

    async def _visit(self, window: MainWindow) -> None:
        window.resize(*WINDOW_SIZE)
        contribute = window.contribute_tab
        await until(lambda: contribute.check_task is None)
        await until(lambda: contribute.preview is not None)
        await self.grab(window, "demo")

        finished: list[object] = []
        contribute.model_applied.connect(finished.append)
        for rounds_done in range(1, ROUNDS + 1):
            await until(lambda: contribute.check_task is None)
            await until(lambda: contribute.preview is not None)
            contribute.contribute()
            await until(lambda: contribute.round_task is None)
            if len(finished) != rounds_done:
                raise RuntimeError(f"round {rounds_done} did not finish")
        await until(lambda: contribute.check_task is None)
        await self.grab(window, "contribute")

        federation = window.federation_tab
        window.tabs.setCurrentWidget(federation)
        federation.refresh()
        await until(lambda: federation.task is None)
        await until(
            lambda: (
                federation.overview is not None
                and len(federation.overview.metrics) == ROUNDS
            )
        )
        await self.grab(window, "federation")

        home = window.home_tab
        window.tabs.setCurrentWidget(home)
        home.refresh()
        await until(
            lambda: (
                home.local_task is None
                and home.chain_task is None
                and home.promote_table.rowCount() > 0
            )
        )
        await self.grab(window, "home")

        transactions = window.transactions_tab
        window.tabs.setCurrentWidget(transactions)
        await until(lambda: transactions.model.total is not None)
        transactions.import_file(self.import_file)
        await until(lambda: transactions.last_report is not None)
        await until(lambda: transactions.model.rowCount() > 0)
        # Newest first, as a merchant checks what the import brought.
        transactions.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        await until(lambda: _first_row_has_time(transactions.model))
        transactions.table.selectRow(2)
        await self.grab(window, "transactions")

        recommendations = window.recommendations_tab
        window.tabs.setCurrentWidget(recommendations)
        await until(lambda: recommendations.task is None)
        customer = transactions.model.event_at(0).user_id
        recommendations.customer_edit.setText(str(customer))
        recommendations.recommend()
        await until(lambda: bool(recommendations.last_results))
        await until(lambda: recommendations.task is None)
        await self.grab(window, "recommendations")

        wallet = window.wallet_tab
        window.tabs.setCurrentWidget(wallet)
        await until(lambda: "ETH" in wallet.balance_label.text())
        wallet.test_connection()
        await until(lambda: wallet.check_task is None and bool(wallet.last_checks))
        await self.grab(window, "wallet")

        signin = SignInWindow(window.environment)
        signin.resize(*WINDOW_SIZE)
        signin.show()
        signin.form.name_edit.setText("new-shop")
        await self.grab(signin, "signin")
        signin.close()


def _first_row_has_time(model: EventsTableModel) -> bool:
    # Rows arrive from the worker after a sort; until then there are none.
    try:
        return model.event_at(0).event_time is not None
    except IndexError:
        return False


def main() -> int:
    """Run the demo with the tour and return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=SCREENS, default=None)
    args = parser.parse_args()
    OUTPUT.mkdir(parents=True, exist_ok=True)

    app = create_application(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="merchant-shots-") as folder:
        recent = write_recent_events(
            SAMPLE_SHOPS / "shop_0.csv", Path(folder) / "recent-week.csv"
        )
        tour = Tour(set(args.only or SCREENS), import_file=recent)
        started: list[asyncio.Task[None]] = []

        def start_when_shown() -> None:
            if started:
                return
            for widget in QApplication.topLevelWidgets():
                if isinstance(widget, MainWindow) and widget.isVisible():
                    # The demo's qasync loop is running: the tour joins it.
                    started.append(asyncio.ensure_future(tour.run(widget)))
                    return

        timer = QTimer(app)
        timer.setInterval(300)
        timer.timeout.connect(start_when_shown)
        timer.start()
        code = cli_main(
            [
                "demo",
                "--data",
                str(SAMPLE_SHOPS),
                "--data-dir",
                str(Path(folder) / "profiles"),
                "--rounds",
                str(ROUNDS),
            ]
        )
        timer.stop()
    if tour.error is not None:
        print(f"screenshot tour failed: {tour.error}", file=sys.stderr)
        return 1
    if not started:
        print("the demo window never appeared", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
