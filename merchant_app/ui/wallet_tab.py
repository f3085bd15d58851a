"""The Wallet tab: address, balance, keyring, keystore export and service settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from keyring.backend import KeyringBackend
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from merchant_app.connectivity import (
    ServiceCheck,
    check_chain,
    check_kubo,
    read_balance,
)
from merchant_app.errors import AppError, ConfigError
from merchant_app.profile_node import SWARM_KEY_FILE, LocalNodeStatus
from merchant_app.profiles import OpenProfile, profile_wallet
from merchant_app.settings import Settings, save_settings
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.worker import Task, TaskContext, TaskRunner
from merchant_app.wallet import MEMORY_STORAGE, BackendInfo, KeyStorage

logger = logging.getLogger(__name__)

WEI_PER_ETHER = Decimal(10) ** 18


@dataclass(frozen=True)
class WalletOverview:
    """The wallet facts read in the worker."""

    backend: BackendInfo
    balance_wei: int | None
    balance_problem: str | None


def describe_check(check: ServiceCheck) -> str:
    """Return one result line of Test connection."""
    mark = {True: "✔", False: "✘", None: "–"}[check.ok]
    return f"{mark} {check.service}: {check.detail}"


def describe_local_node(status: LocalNodeStatus) -> str:
    """Return the Wallet tab's line about the running local IPFS node."""
    text = f"Running at {status.api_url}, peer id {status.peer_id}."
    if status.pid is None:
        text += " It was already running, so closing the window leaves it running."
    if status.private_network:
        return f"{text} It uses the consortium's swarm key ({SWARM_KEY_FILE})."
    return (
        f"{text} The profile folder has no consortium swarm key "
        f"({SWARM_KEY_FILE}), so the node connects to no other node."
    )


class SettingsForm(QGroupBox):
    """The chain, contract and Kubo settings of the profile."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__("Consortium services", parent)
        self.rpc_edit = QLineEdit(settings.chain_rpc_url)
        self.chain_id_spin = QSpinBox()
        self.chain_id_spin.setRange(1, 2**31 - 1)
        self.chain_id_spin.setMaximumWidth(160)
        self.chain_id_spin.setValue(min(settings.chain_id, 2**31 - 1))
        self.contract_edit = QLineEdit(settings.contract_address)
        self.contract_edit.setPlaceholderText("0x… (empty until you join a consortium)")
        self.local_kubo_check = QCheckBox("Start a local IPFS node")
        self.local_kubo_check.setChecked(settings.starts_local_kubo)
        self.kubo_edit = QLineEdit(settings.kubo_api_url or "http://127.0.0.1:5001")
        self.kubo_edit.setEnabled(not settings.starts_local_kubo)
        self.local_node_label = QLabel(
            "Not started yet." if settings.starts_local_kubo else "Not used."
        )
        self.local_node_label.setObjectName("localNodeStatus")
        self.local_node_label.setWordWrap(True)
        self.local_node_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.error_label = QLabel()
        self.error_label.setObjectName("inlineError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.save_button = QPushButton("Save")
        self.test_button = QPushButton("Test connection")
        self.test_button.setObjectName("primaryButton")
        self.results_label = QLabel()
        self.results_label.setObjectName("checkResults")
        self.results_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )

        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        form = QFormLayout(self)
        form.addRow("Chain RPC URL", self.rpc_edit)
        form.addRow("Chain id", self.chain_id_spin)
        form.addRow("Contract address", self.contract_edit)
        form.addRow("IPFS", self.local_kubo_check)
        form.addRow("Kubo API URL", self.kubo_edit)
        form.addRow("Local node", self.local_node_label)
        form.addRow(self.error_label)
        form.addRow(buttons)
        form.addRow(self.results_label)

        self.local_kubo_check.toggled.connect(
            lambda checked: self.kubo_edit.setEnabled(not checked)
        )

    def settings(self, current: Settings) -> Settings:
        """Return ``current`` with the form's values; raise ConfigError if invalid."""
        kubo = None if self.local_kubo_check.isChecked() else self.kubo_edit.text()
        return current.replace(
            chain_rpc_url=self.rpc_edit.text().strip(),
            chain_id=self.chain_id_spin.value(),
            contract_address=self.contract_edit.text().strip(),
            kubo_api_url=None if kubo is None else kubo.strip(),
        )

    def show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()


class WalletTab(QWidget):
    """Shows the wallet and edits the consortium settings.

    Emits :attr:`settings_changed` with the new :class:`Settings` after a save.
    """

    settings_changed = Signal(object)

    def __init__(
        self,
        profile: OpenProfile,
        runner: TaskRunner,
        *,
        keyring_backend: KeyringBackend | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.profile = profile
        self.runner = runner
        self.keyring_backend = keyring_backend
        self.check_task: Task | None = None
        self.export_task: Task | None = None
        self.last_checks: list[ServiceCheck] = []

        # Build widgets.
        self.address_label = QLabel(profile.wallet.address)
        self.address_label.setObjectName("address")
        self.address_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.balance_label = QLabel("Checking…")
        self.storage_label = QLabel(_storage_text(profile.wallet.storage))
        self.backend_label = QLabel("Checking…")
        self.backend_label.setWordWrap(True)
        self.export_button = QPushButton("Export keystore file…")
        self.export_label = QLabel()
        self.export_label.setWordWrap(True)
        if not self._can_export():
            self.export_button.setEnabled(False)
            self.export_label.setText(
                "The demo's throwaway key is not saved, so there is nothing to export."
            )
        self.settings_form = SettingsForm(profile.settings)

        # Lay out.
        wallet_box = QGroupBox("Wallet")
        wallet_form = QFormLayout(wallet_box)
        wallet_form.addRow("Address", self.address_label)
        wallet_form.addRow("Balance", self.balance_label)
        wallet_form.addRow("Key storage", self.storage_label)
        wallet_form.addRow("Keyring backend", self.backend_label)
        export_row = QHBoxLayout()
        export_row.addWidget(self.export_button)
        export_row.addWidget(self.export_label, 1)
        wallet_form.addRow(export_row)
        layout = QVBoxLayout(self)
        layout.addWidget(wallet_box)
        layout.addWidget(self.settings_form)
        layout.addStretch(1)

        # Connect signals.
        self.export_button.clicked.connect(self._choose_export)
        self.settings_form.save_button.clicked.connect(self.save_settings)
        self.settings_form.test_button.clicked.connect(self.test_connection)

    def load(self) -> Task:
        """Read the keyring backend and the balance in the worker."""
        profile = self.profile
        backend = self.keyring_backend

        def work(context: TaskContext) -> WalletOverview:
            info = profile_wallet(profile, keyring_backend=backend).keyring_backend()
            try:
                balance = read_balance(profile.settings, profile.wallet.address)
            except AppError as exc:
                logger.info("balance of %s not read: %s", profile.wallet.address, exc)
                return WalletOverview(info, None, exc.user_message)
            return WalletOverview(info, balance, None)

        task = self.runner.start("wallet overview", work)
        task.succeeded.connect(self._show_overview)
        task.failed.connect(self._failed)
        return task

    @Slot()
    def save_settings(self) -> Settings | None:
        """Validate and save the settings form; return the new settings."""
        self.settings_form.error_label.hide()
        try:
            settings = self.settings_form.settings(self.profile.settings)
            save_settings(self.profile.paths.settings, settings)
        except ConfigError as exc:
            self.settings_form.show_error(exc.user_message)
            return None
        self.profile.settings = settings
        self.settings_form.results_label.setText("Settings saved.")
        self.settings_changed.emit(settings)
        return settings

    @Slot()
    def test_connection(self) -> Task | None:
        """Test the chain and the Kubo node of the form's values, in the worker."""
        self.settings_form.error_label.hide()
        try:
            settings = self.settings_form.settings(self.profile.settings)
        except ConfigError as exc:
            self.settings_form.show_error(exc.user_message)
            return None

        settings = self.profile.connection_settings(settings)

        def work(context: TaskContext) -> list[ServiceCheck]:
            results = [check_chain(settings)]
            context.report(results[0])
            context.check_cancelled()
            results.append(check_kubo(settings))
            return results

        self.settings_form.test_button.setEnabled(False)
        self.settings_form.results_label.setText("Testing…")
        task = self.runner.start("test connection", work)
        self.check_task = task
        task.progress.connect(self._show_partial_check)
        task.succeeded.connect(self._show_checks)
        task.failed.connect(self._failed)
        task.finished.connect(self._check_finished)
        return task

    def show_local_node(self, status: str) -> None:
        """Show the state of the profile's local IPFS node."""
        self.settings_form.local_node_label.setText(status)

    def export_keystore(
        self, destination: Path, export_password: str, password: str | None = None
    ) -> Task:
        """Write the key, encrypted with ``export_password``, to ``destination``."""
        profile = self.profile
        backend = self.keyring_backend

        def work(context: TaskContext) -> Path:
            wallet = profile_wallet(profile, keyring_backend=backend)
            return wallet.export_keystore(
                destination, export_password, password=password
            )

        self.export_button.setEnabled(False)
        self.export_label.setText("Encrypting…")
        task = self.runner.start("export keystore", work)
        self.export_task = task
        task.succeeded.connect(
            lambda path: self.export_label.setText(f"Saved to {path}")
        )
        task.failed.connect(self._export_failed)
        task.finished.connect(self._export_finished)
        return task

    # -- slots -----------------------------------------------------------

    @Slot(object)
    def _show_overview(self, overview: WalletOverview) -> None:
        backend = overview.backend
        self.backend_label.setText(
            backend.name if backend.usable else f"{backend.name}: {backend.reason}"
        )
        if overview.balance_wei is None:
            self.balance_label.setText(f"Not connected: {overview.balance_problem}")
        else:
            ether = Decimal(overview.balance_wei) / WEI_PER_ETHER
            self.balance_label.setText(f"{ether:,.6f} ETH")

    @Slot(object)
    def _show_partial_check(self, check: ServiceCheck) -> None:
        self.settings_form.results_label.setText(describe_check(check) + "\nIPFS: …")

    @Slot(object)
    def _show_checks(self, checks: list[ServiceCheck]) -> None:
        self.last_checks = checks
        self.settings_form.results_label.setText(
            "\n".join(describe_check(check) for check in checks)
        )

    @Slot()
    def _check_finished(self) -> None:
        self.check_task = None
        self.settings_form.test_button.setEnabled(True)

    @Slot(object)
    def _export_failed(self, error: BaseException) -> None:
        if isinstance(error, AppError):
            self.export_label.setText(error.user_message)
        else:
            show_error(error, parent=self, context="keystore export")

    @Slot()
    def _export_finished(self) -> None:
        self.export_task = None
        self.export_button.setEnabled(self._can_export())

    @Slot(object)
    def _failed(self, error: BaseException) -> None:
        show_error(error, parent=self, context="wallet")

    def _can_export(self) -> bool:
        # A key held in memory (the demo's, without a keyring) is never stored.
        return self.profile.wallet.storage != MEMORY_STORAGE

    @Slot()
    def _choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export keystore", "keystore.json", "Keystore files (*.json)"
        )
        if not path:
            return
        export_password, accepted = QInputDialog.getText(
            self,
            "Keystore password",
            "Password for the exported file (at least 8 characters)",
            QLineEdit.EchoMode.Password,
        )
        if not accepted:
            return
        password = None
        if self.profile.settings.wallet_storage is KeyStorage.KEYSTORE_FILE:
            password, accepted = QInputDialog.getText(
                self,
                "Wallet password",
                "Password of this profile's wallet",
                QLineEdit.EchoMode.Password,
            )
            if not accepted:
                return
        self.export_keystore(Path(path), export_password, password)


def _storage_text(storage: str) -> str:
    """Describe where the opened wallet's key is: a ``Wallet.storage`` value."""
    if storage == KeyStorage.KEYRING:
        return "System keyring"
    if storage == KeyStorage.KEYSTORE_FILE:
        return "Password-protected keystore file in the profile folder"
    if storage == MEMORY_STORAGE:
        # Only the demo builds such a wallet, when no OS keyring is usable.
        return "Throwaway key in memory for this demo run; it is not saved"
    return f"Unknown key storage {storage!r}"
