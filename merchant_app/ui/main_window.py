"""The main window of an opened profile: one tab per screen, and nothing else.

The tabs hold their own logic; the window connects their signals so that a
change in one tab refreshes the others, and on close it cancels the running
work, waits for the worker threads and closes the profile.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import QLabel, QMainWindow, QTabWidget, QWidget

from merchant_app.federation.driver import DriverSettings
from merchant_app.profiles import OpenProfile
from merchant_app.recommender.als import AlsConfig
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.contribute_tab import ContributeTab
from merchant_app.ui.federation_tab import FederationTab
from merchant_app.ui.home_tab import HomeTab
from merchant_app.ui.recommendations_tab import RecommendationsTab
from merchant_app.ui.resources import app_icon_path
from merchant_app.ui.transactions_tab import TransactionsTab
from merchant_app.ui.wallet_tab import WalletTab

logger = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Tabs for Home, Transactions, Recommendations, Contribute, Federation, Wallet."""

    closed = Signal()

    def __init__(
        self,
        profile: OpenProfile,
        environment: AppEnvironment,
        *,
        training_config: AlsConfig | None = None,
        driver_settings: DriverSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.profile = profile
        self.environment = environment
        self.setWindowTitle(f"Merchant App: {profile.settings.name}")
        self.setWindowIcon(QIcon(str(app_icon_path())))
        self.setObjectName("mainWindow")
        runner = environment.runner

        # Build the tabs.
        self.home_tab = HomeTab(profile, runner)
        self.transactions_tab = TransactionsTab(profile.store, runner)
        self.recommendations_tab = RecommendationsTab(
            profile, runner, training_config=training_config
        )
        self.contribute_tab = ContributeTab(
            profile, runner, driver_settings=driver_settings
        )
        self.federation_tab = FederationTab(profile, runner)
        self.wallet_tab = WalletTab(
            profile, runner, keyring_backend=environment.keyring_backend
        )
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.home_tab, "Home")
        self.tabs.addTab(self.transactions_tab, "Transactions")
        self.tabs.addTab(self.recommendations_tab, "Recommendations")
        self.tabs.addTab(self.contribute_tab, "Contribute")
        self.tabs.addTab(self.federation_tab, "Federation")
        self.tabs.addTab(self.wallet_tab, "Wallet")
        self.setCentralWidget(self.tabs)
        self.statusBar().addPermanentWidget(
            QLabel(f"{profile.settings.name} · {profile.wallet.address}")
        )
        self.resize(1180, 760)

        # Connect the tabs.
        self.transactions_tab.data_changed.connect(self.home_tab.refresh)
        self.transactions_tab.data_changed.connect(self.recommendations_tab.invalidate)
        self.recommendations_tab.model_trained.connect(self.home_tab.refresh)
        self.wallet_tab.settings_changed.connect(self.home_tab.refresh)
        self.wallet_tab.settings_changed.connect(self.contribute_tab.load)
        self.wallet_tab.settings_changed.connect(self.federation_tab.refresh)
        self.contribute_tab.model_applied.connect(self._model_applied)
        self.contribute_tab.round_changed.connect(self.federation_tab.refresh)

    def load(self) -> None:
        """Start the first reads of every tab."""
        self.home_tab.refresh()
        self.transactions_tab.load()
        self.recommendations_tab.load()
        self.contribute_tab.load()
        self.federation_tab.refresh()
        self.wallet_tab.load()

    def _model_applied(self, _result: object) -> None:
        # The round's model replaced the profile's model files.
        self.recommendations_tab.invalidate()
        self.recommendations_tab.load()
        self.home_tab.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel running work, wait for the workers, close the profile."""
        logger.info("main window closing: profile %s", self.profile.settings.name)
        self.environment.runner.shutdown()
        self.profile.close()
        super().closeEvent(event)
        self.closed.emit()
