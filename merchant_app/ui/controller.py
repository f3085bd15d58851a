"""Moves the app from the sign-in window to the main window of a profile."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QWidget

from merchant_app.profiles import OpenProfile
from merchant_app.ui.app import AppEnvironment, attach_profile_log, detach_log
from merchant_app.ui.main_window import MainWindow
from merchant_app.ui.signin import SignInWindow

logger = logging.getLogger(__name__)


class AppController(QObject):
    """Owns the top-level windows and the profile log of one app run."""

    def __init__(self, environment: AppEnvironment, parent: QObject | None = None):
        super().__init__(parent)
        self.environment = environment
        self.signin: SignInWindow | None = None
        self.main_window: MainWindow | None = None
        environment.funnel.window = self._active_window

    def start(self, profile_name: str | None = None) -> None:
        """Show the sign-in window; with ``profile_name``, open that profile."""
        self.signin = SignInWindow(self.environment)
        self.signin.profile_opened.connect(self.show_profile)
        self.signin.show()
        if profile_name is not None:
            self.signin.select_profile(profile_name)
            self.signin.open_profile(profile_name)

    @Slot(object)
    def show_profile(self, profile: OpenProfile) -> MainWindow:
        """Replace the sign-in window by the main window of ``profile``.

        The main window also starts the profile's local IPFS node when its
        settings name no Kubo API URL.
        """
        self.environment.log_handlers.append(attach_profile_log(profile))
        self.main_window = MainWindow(profile, self.environment)
        self.main_window.show()
        self.main_window.load()
        self.main_window.start_local_node()
        if self.signin is not None:
            self.signin.close()
            self.signin.deleteLater()
            self.signin = None
        return self.main_window

    def shutdown(self) -> None:
        """Close the windows, stop the workers and detach the profile log."""
        if self.main_window is not None:
            self.main_window.close()
            self.main_window.deleteLater()
            self.main_window = None
        if self.signin is not None:
            self.signin.close()
            self.signin.deleteLater()
            self.signin = None
        self.environment.runner.shutdown()
        for handler in self.environment.log_handlers:
            detach_log(handler)
        self.environment.log_handlers.clear()

    def _active_window(self) -> QWidget | None:
        return self.main_window or self.signin
