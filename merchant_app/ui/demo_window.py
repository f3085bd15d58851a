"""The window ``merchant-app demo`` opens on the demo consortium's first merchant.

It builds what :func:`merchant_app.ui.app.run_app` builds (the application,
the qasync loop, the error funnel, the worker pool), opens the main window of
the demo profile on its Contribute tab and runs until the window closes.
Ctrl-C in the terminal closes the window too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from types import FrameType

import qasync
from keyring.backend import KeyringBackend
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from merchant_app.federation.driver import DriverSettings
from merchant_app.profiles import OpenProfile
from merchant_app.ui.app import (
    AppEnvironment,
    ErrorFunnel,
    attach_profile_log,
    create_application,
    detach_log,
)
from merchant_app.ui.main_window import MainWindow
from merchant_app.ui.worker import TaskRunner

logger = logging.getLogger(__name__)

# Qt's event loop does not run Python's signal handlers; a timer gives the
# interpreter a chance every this many milliseconds.
SIGNAL_CHECK_MS = 200


def run_demo_window(
    profile: OpenProfile,
    *,
    keyring_backend: KeyringBackend | None = None,
    driver_settings: DriverSettings | None = None,
) -> int:
    """Show the main window of ``profile`` until it closes; return the exit code."""
    app = create_application(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    funnel = ErrorFunnel()
    funnel.install(loop)
    runner = TaskRunner()
    environment = AppEnvironment(
        data_root=profile.data_root,
        runner=runner,
        funnel=funnel,
        keyring_backend=keyring_backend,
    )
    log_handler = attach_profile_log(profile)
    window = MainWindow(profile, environment, driver_settings=driver_settings)
    funnel.window = lambda: window
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    wake_timer = QTimer()
    wake_timer.setInterval(SIGNAL_CHECK_MS)
    wake_timer.timeout.connect(lambda: None)

    def close_on_interrupt(_signum: int, _frame: FrameType | None) -> None:
        logger.info("interrupted: closing the demo window")
        window.close()

    previous_handler = signal.signal(signal.SIGINT, close_on_interrupt)
    try:
        window.tabs.setCurrentWidget(window.contribute_tab)
        window.show()
        window.load()
        wake_timer.start()
        with loop:
            loop.run_until_complete(closed.wait())
    finally:
        wake_timer.stop()
        signal.signal(signal.SIGINT, previous_handler)
        window.close()
        window.deleteLater()
        runner.shutdown()
        funnel.uninstall()
        detach_log(log_handler)
        if not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)
        QApplication.sendPostedEvents()
    return 0
