"""The main window of an opened profile: one tab per screen, and nothing else.

The tabs hold their own logic; the window connects their signals so that a
change in one tab refreshes the others. It starts the profile's local IPFS
node when the settings ask for one. On close it cancels the running work,
waits for the worker threads, stops the node it started and closes the
profile.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import QLabel, QMainWindow, QTabWidget, QWidget

from merchant_app.federation.driver import DriverSettings
from merchant_app.profile_node import LocalNodeStatus, ProfileNode
from merchant_app.profiles import OpenProfile
from merchant_app.recommender.als import AlsConfig
from merchant_app.settings import Settings
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.contribute_tab import ContributeTab
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.federation_tab import FederationTab
from merchant_app.ui.home_tab import HomeTab
from merchant_app.ui.recommendations_tab import RecommendationsTab
from merchant_app.ui.resources import app_icon_path
from merchant_app.ui.transactions_tab import TransactionsTab
from merchant_app.ui.wallet_tab import WalletTab, describe_local_node
from merchant_app.ui.worker import Task, TaskContext

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
        self.profile_node = ProfileNode(profile.paths.folder)
        self.node_task: Task | None = None

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
        self.transactions_tab.data_changed.connect(self.contribute_tab.events_changed)
        self.recommendations_tab.model_trained.connect(self.home_tab.refresh)
        self.wallet_tab.settings_changed.connect(self.home_tab.refresh)
        self.wallet_tab.settings_changed.connect(self.contribute_tab.load)
        self.wallet_tab.settings_changed.connect(self.federation_tab.refresh)
        self.wallet_tab.settings_changed.connect(self._settings_changed)
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

    def start_local_node(self) -> Task | None:
        """Start the profile's local Kubo node in the worker, if its settings ask.

        Returns None when the settings name a Kubo API URL, or while the node
        runs or starts. A failure is shown in the error dialog and in the
        Wallet tab; the window stays usable without IPFS.
        """
        if not self.profile.settings.starts_local_kubo:
            return None
        if self.node_task is not None or self.profile.local_node is not None:
            return None
        node = self.profile_node

        def work(context: TaskContext) -> LocalNodeStatus:
            return node.start()

        self.wallet_tab.show_local_node("Starting…")
        task = self.environment.runner.start("start local IPFS node", work)
        self.node_task = task
        task.succeeded.connect(self._local_node_started)
        task.failed.connect(self._local_node_failed)
        task.finished.connect(self._node_task_finished)
        return task

    @Slot(object)
    def _local_node_started(self, status: LocalNodeStatus) -> None:
        self.profile.local_node = status
        self.wallet_tab.show_local_node(describe_local_node(status))
        # The tabs that need IPFS read again with the node's API URL.
        self.contribute_tab.load()
        self.federation_tab.refresh()

    @Slot(object)
    def _local_node_failed(self, error: BaseException) -> None:
        dialog = show_error(error, parent=self, context="local IPFS node")
        message = dialog.message_label.text() if dialog is not None else str(error)
        self.wallet_tab.show_local_node(f"Not running: {message}")

    @Slot()
    def _node_task_finished(self) -> None:
        self.node_task = None

    @Slot(object)
    def _settings_changed(self, settings: Settings) -> None:
        if settings.starts_local_kubo:
            self.start_local_node()
        elif self.profile.local_node is not None:
            # NOTE: the node keeps running until the window closes, so that a
            # blocking stop never runs on the GUI thread. The tabs use the
            # configured URL meanwhile.
            self.wallet_tab.show_local_node(
                "Not used: this profile now uses the Kubo API URL above. The "
                "local node stops when the window closes."
            )

    def _model_applied(self, _result: object) -> None:
        # The round's model replaced the profile's model files.
        self.recommendations_tab.invalidate()
        self.recommendations_tab.load()
        self.home_tab.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel running work, wait for the workers, stop the node, close the profile.

        The local node is stopped here, on the GUI thread, because the worker
        pool is shut down by then. KuboNode.stop waits at most its stop timeout
        (20 s by default) for each of its three steps.
        """
        logger.info("main window closing: profile %s", self.profile.settings.name)
        self.environment.runner.shutdown()
        self.profile_node.stop()
        self.profile.local_node = None
        self.profile.close()
        super().closeEvent(event)
        self.closed.emit()
