"""Save a PNG of each screen into docs/screenshots, for the docs and for review.

Run it under Xvfb, so real fonts and a real window system render the window:

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshots.py

It builds a throwaway profile in a temporary folder from
``ml_model/sample/shop_0.csv`` (key in a password-protected keystore file,
because Xvfb sessions have no keyring), trains the model, starts a local anvil
for the Wallet tab's Test connection, and grabs each screen. For the
Contribute and Federation screens it starts the demo consortium on the
generated sample (anvil, three Kubo nodes, two headless merchants) and runs
two rounds. The window's key is held in memory and never written to a keyring.

With ``--demo`` it runs ``merchant-app demo --data ml_model/sample`` instead,
with a temporary data root, and saves the window as the demo opens it:

    xvfb-run -a -s "-screen 0 1280x800x24" \\
        .venv/bin/python scripts/screenshots.py --demo
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import qasync
from keyring.backends import fail
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from merchant_app.cli import main as cli_main  # noqa: E402 (after the path setup)
from merchant_app.demo import (  # noqa: E402
    SAMPLE_SHOPS,
    DemoConsortium,
    DemoOptions,
    resolve_demo_data,
)
from merchant_app.profiles import (  # noqa: E402
    WalletSetup,
    create_profile,
    new_settings,
    open_profile,
)
from merchant_app.services.anvil import AnvilChain  # noqa: E402
from merchant_app.ui.app import (  # noqa: E402
    AppEnvironment,
    ErrorFunnel,
    create_application,
)
from merchant_app.ui.main_window import MainWindow  # noqa: E402
from merchant_app.ui.signin import SignInWindow  # noqa: E402
from merchant_app.ui.worker import TaskRunner  # noqa: E402
from merchant_app.wallet import KeyStorage  # noqa: E402

logger = logging.getLogger("screenshots")

OUTPUT = PROJECT_ROOT / "docs" / "screenshots"
SAMPLE = PROJECT_ROOT / "ml_model" / "sample" / "shop_0.csv"
PASSWORD = "screenshot-password"
WINDOW_SIZE = (1180, 760)


async def until(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait on the running loop until ``predicate()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("the screen did not reach the expected state")
        await asyncio.sleep(0.05)


async def grab(widget: QWidget, name: str) -> None:
    """Let the window paint, then save it as ``name``.png."""
    await asyncio.sleep(0.3)
    path = OUTPUT / f"{name}.png"
    if not widget.grab().save(str(path)):
        raise OSError(f"cannot write {path}")
    print(f"wrote {path}")


async def take(environment: AppEnvironment, chain: AnvilChain) -> None:
    """Build the profile and grab every screen."""
    root = environment.data_root
    settings = new_settings(
        "corner-shop",
        chain_rpc_url=chain.rpc_url,
        wallet_storage=KeyStorage.KEYSTORE_FILE,
    )
    create_profile(root, settings, WalletSetup(kind="create", password=PASSWORD))
    create_profile(
        root,
        new_settings("bakery", wallet_storage=KeyStorage.KEYSTORE_FILE),
        WalletSetup(kind="create", password=PASSWORD),
    )

    signin = SignInWindow(environment)
    signin.resize(*WINDOW_SIZE)
    signin.show()
    signin.form.name_edit.setText("new-shop")
    await grab(signin, "signin")
    signin.close()

    profile = open_profile(root, "corner-shop", password=PASSWORD)
    window = MainWindow(profile, environment)
    window.resize(*WINDOW_SIZE)
    window.show()
    window.load()
    transactions = window.transactions_tab
    await until(lambda: transactions.model.total is not None)
    transactions.import_file(SAMPLE)
    await until(lambda: transactions.last_report is not None)
    await until(lambda: transactions.model.rowCount() > 0)

    recommendations = window.recommendations_tab
    await until(lambda: recommendations.task is None)
    recommendations.train()
    await until(lambda: "Model trained" in recommendations.model_label.text())
    await until(lambda: recommendations.task is None)

    home = window.home_tab
    home.refresh()
    await until(lambda: home.local_task is None and home.promote_table.rowCount() > 0)
    window.tabs.setCurrentWidget(home)
    await grab(window, "home")

    window.tabs.setCurrentWidget(transactions)
    transactions.table.selectRow(2)
    await grab(window, "transactions")

    window.tabs.setCurrentWidget(recommendations)
    customer = transactions.model.event_at(0).user_id
    recommendations.customer_edit.setText(str(customer))
    recommendations.recommend()
    await until(lambda: bool(recommendations.last_results))
    await until(lambda: recommendations.task is None)
    await grab(window, "recommendations")

    wallet = window.wallet_tab
    window.tabs.setCurrentWidget(wallet)
    await until(lambda: "ETH" in wallet.balance_label.text())
    wallet.test_connection()
    await until(lambda: wallet.check_task is None and bool(wallet.last_checks))
    await grab(window, "wallet")
    window.close()


async def take_rounds(environment: AppEnvironment, folder: Path) -> None:
    """Run two rounds of the demo consortium and grab Contribute and Federation."""
    options = DemoOptions(
        data=resolve_demo_data(SAMPLE_SHOPS), data_root=folder / "demo", rounds=2
    )
    with DemoConsortium(options, keyring_backend=fail.Keyring()) as demo:
        assert demo.profile is not None
        window = MainWindow(demo.profile, environment)
        window.resize(*WINDOW_SIZE)
        window.show()
        window.load()
        contribute = window.contribute_tab
        window.tabs.setCurrentWidget(contribute)
        finished: list[object] = []
        contribute.model_applied.connect(finished.append)
        for rounds_done in (1, 2):
            await until(lambda: contribute.check_task is None)
            await until(lambda: contribute.preview is not None)
            contribute.contribute()
            await until(lambda: contribute.round_task is None)
            if len(finished) != rounds_done:
                raise RuntimeError(f"round {rounds_done} did not finish")
            contribute.load()
        await until(lambda: contribute.check_task is None)
        await grab(window, "contribute")

        federation = window.federation_tab
        window.tabs.setCurrentWidget(federation)
        federation.refresh()
        await until(lambda: federation.task is None)
        await until(
            lambda: (
                federation.overview is not None
                and len(federation.overview.metrics) == 2
            )
        )
        await grab(window, "federation")
        window.close()


def take_demo() -> int:
    """Run ``merchant-app demo`` on the sample and grab its window once ready."""
    app = create_application(sys.argv[:1])
    shots: list[str] = []

    def grab_when_ready() -> None:
        for widget in QApplication.topLevelWidgets():
            if not isinstance(widget, MainWindow) or not widget.isVisible():
                continue
            tab = widget.contribute_tab
            if tab.preview is None or tab.check_task is not None or shots:
                return
            path = OUTPUT / "demo.png"
            if not widget.grab().save(str(path)):
                raise OSError(f"cannot write {path}")
            print(f"wrote {path}")
            shots.append(str(path))
            widget.close()

    timer = QTimer(app)
    timer.setInterval(300)
    timer.timeout.connect(grab_when_ready)
    timer.start()
    with tempfile.TemporaryDirectory(prefix="merchant-shots-") as folder:
        code = cli_main(
            ["demo", "--data", str(SAMPLE_SHOPS), "--data-dir", folder + "/profiles"]
        )
    timer.stop()
    return code if shots else 1


def main() -> int:
    """Take the screenshots and return the exit code."""
    logging.basicConfig(level=logging.WARNING)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    if "--demo" in sys.argv[1:]:
        return take_demo()
    app = create_application(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    funnel = ErrorFunnel()
    funnel.install(loop)
    runner = TaskRunner()
    with tempfile.TemporaryDirectory(prefix="merchant-shots-") as folder:
        environment = AppEnvironment(
            data_root=Path(folder) / "profiles", runner=runner, funnel=funnel
        )
        with AnvilChain(Path(folder) / "anvil-state.json") as chain:
            try:
                with loop:
                    loop.run_until_complete(take(environment, chain))
                    # Closing a main window shuts its worker pool down.
                    rounds_runner = TaskRunner()
                    environment.runner = rounds_runner
                    try:
                        loop.run_until_complete(take_rounds(environment, Path(folder)))
                    finally:
                        rounds_runner.shutdown()
            finally:
                runner.shutdown()
                funnel.uninstall()
                if not loop.is_closed():
                    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
