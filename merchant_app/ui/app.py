"""The QApplication, the qasync event loop and the hook that reports uncaught errors.

:func:`run_app` is what ``merchant-app gui`` calls. It builds the
application, installs one :class:`ErrorFunnel` for uncaught exceptions from
GUI slots (``sys.excepthook``), worker threads (``threading.excepthook``) and
coroutines on the loop (the loop's exception handler), shows the sign-in
window and, once a profile opens, the main window. On exit it shuts the
worker pool down and closes the qasync loop; a loop left open makes the
process abort with ``QThread: Destroyed while thread is still running``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import qasync
from keyring.backend import KeyringBackend
from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QDialog, QWidget

from merchant_app.logging_setup import LOG_FORMAT
from merchant_app.profiles import OpenProfile, default_data_root
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.resources import app_icon_path, style_sheet
from merchant_app.ui.worker import TaskRunner

logger = logging.getLogger(__name__)

APP_NAME = "Merchant App"


@dataclass
class AppEnvironment:
    """The objects the screens share: data root, worker pool, error funnel, keyring.

    ``keyring_backend`` None means the one ``keyring`` selects; tests pass the
    backend of their private Secret Service.
    """

    data_root: Path
    runner: TaskRunner
    funnel: ErrorFunnel
    keyring_backend: KeyringBackend | None = None
    log_handlers: list[logging.Handler] = field(default_factory=list)


class ErrorFunnel(QObject):
    """Receives uncaught exceptions from any thread and shows them in the GUI.

    ``window`` (a callable) returns the widget to parent the dialog to.
    """

    error_raised = Signal(object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.window: Callable[[], QWidget | None] = lambda: None
        self._previous_excepthook: Any = None
        self._previous_thread_hook: Any = None
        self._dialogs: list[QDialog] = []
        self.error_raised.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Route sys, threading and the loop's uncaught errors here."""
        self._previous_excepthook = sys.excepthook
        self._previous_thread_hook = threading.excepthook
        sys.excepthook = self._excepthook
        threading.excepthook = self._thread_excepthook
        if loop is not None:
            loop.set_exception_handler(self._loop_exception_handler)

    def uninstall(self) -> None:
        """Restore the hooks that were in place before :meth:`install`."""
        if self._previous_excepthook is not None:
            sys.excepthook = self._previous_excepthook
            threading.excepthook = self._previous_thread_hook
            self._previous_excepthook = None
            self._previous_thread_hook = None

    def report(self, error: BaseException, context: str) -> None:
        """Show ``error`` in the GUI thread; callable from any thread."""
        self.error_raised.emit(error, context)

    def _excepthook(
        self,
        error_type: type[BaseException],
        error: BaseException,
        traceback: TracebackType | None,
    ) -> None:
        if issubclass(error_type, KeyboardInterrupt):
            self._previous_excepthook(error_type, error, traceback)
            return
        self.report(error.with_traceback(traceback), "GUI action")

    def _thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        thread = args.thread.name if args.thread is not None else "unknown"
        self.report(args.exc_value, f"thread {thread}")

    def _loop_exception_handler(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        error = context.get("exception")
        if isinstance(error, BaseException):
            self.report(error, "async task")
        else:
            logger.error("event loop error: %s", context.get("message"))

    @Slot(object, str)
    def _show(self, error: BaseException, context: str) -> None:
        dialog = show_error(error, parent=self.window(), context=context)
        if dialog is not None and dialog.parent() is None:
            # Without a parent, only this reference keeps the dialog alive.
            self._dialogs.append(dialog)
            dialog.finished.connect(lambda _result: self._dialogs.remove(dialog))


def create_application(argv: list[str] | None = None) -> QApplication:
    """Return the QApplication, creating it with the app's name, icon and style."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv or [])
    # Fusion looks the same on every platform, so the style sheet fits it.
    app.setStyle("Fusion")
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("merchant-app")
    app.setWindowIcon(QIcon(str(app_icon_path())))
    app.setStyleSheet(style_sheet())
    return app


def attach_profile_log(profile: OpenProfile) -> logging.Handler:
    """Log INFO and above, with tracebacks, to the profile's ``app.log``."""
    handler = logging.FileHandler(profile.paths.log, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def detach_log(handler: logging.Handler) -> None:
    """Remove and close a handler from :func:`attach_profile_log`."""
    logging.getLogger().removeHandler(handler)
    handler.close()


def run_app(
    *,
    profile_name: str | None = None,
    data_root: Path | None = None,
    keyring_backend: KeyringBackend | None = None,
) -> int:
    """Run the GUI until its last window closes; return the exit code."""
    # Imported here: the windows import this module for AppEnvironment.
    from merchant_app.ui.controller import AppController

    app = create_application(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    funnel = ErrorFunnel()
    funnel.install(loop)
    runner = TaskRunner()
    environment = AppEnvironment(
        data_root=data_root or default_data_root(),
        runner=runner,
        funnel=funnel,
        keyring_backend=keyring_backend,
    )
    controller = AppController(environment)
    closed = asyncio.Event()
    app.lastWindowClosed.connect(closed.set)
    try:
        controller.start(profile_name)
        with loop:
            loop.run_until_complete(closed.wait())
    finally:
        controller.shutdown()
        funnel.uninstall()
        if not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)
    return 0
