"""The sign-in window: the profiles on this computer, and a form for a new one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from merchant_app.errors import AppError, ConfigError, InvalidSettingError
from merchant_app.profiles import (
    OpenProfile,
    ProfileEntry,
    WalletSetup,
    create_profile,
    list_profiles,
    new_settings,
    open_profile,
)
from merchant_app.services.anvil import DEFAULT_CHAIN_ID
from merchant_app.settings import DEFAULT_CHAIN_RPC_URL, Settings
from merchant_app.ui.app import AppEnvironment
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.resources import app_icon_path
from merchant_app.ui.worker import Task, TaskContext
from merchant_app.wallet import KeyStorage

logger = logging.getLogger(__name__)

WALLET_CHOICES = (
    ("create", "Create a new key"),
    ("import_key", "Import a private key (hex)"),
    ("import_keystore", "Import a keystore file"),
)
STORAGE_CHOICES = (
    (KeyStorage.KEYRING, "System keyring"),
    (KeyStorage.KEYSTORE_FILE, "Password-protected keystore file"),
)


@dataclass(frozen=True)
class NewProfileRequest:
    """The new-profile form's values, taken on the GUI thread."""

    settings: Settings
    wallet_setup: WalletSetup
    keystore_path: Path | None


class NewProfileForm(QGroupBox):
    """The form that collects a new profile's settings and wallet choice."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("New profile", parent)

        # Build widgets.
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("for example my-shop")
        self.rpc_edit = QLineEdit(DEFAULT_CHAIN_RPC_URL)
        self.chain_id_spin = QSpinBox()
        self.chain_id_spin.setRange(1, 2**31 - 1)
        self.chain_id_spin.setMaximumWidth(160)
        self.chain_id_spin.setValue(DEFAULT_CHAIN_ID)
        self.contract_edit = QLineEdit()
        self.contract_edit.setPlaceholderText("0x… (empty until you join a consortium)")
        self.local_kubo_check = QCheckBox("Start a local IPFS node")
        self.local_kubo_check.setChecked(True)
        self.kubo_edit = QLineEdit("http://127.0.0.1:5001")
        self.kubo_edit.setEnabled(False)
        self.wallet_combo = QComboBox()
        for kind, label in WALLET_CHOICES:
            self.wallet_combo.addItem(label, kind)
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("64 hexadecimal digits, with or without 0x")
        self.keystore_edit = QLineEdit()
        self.keystore_edit.setPlaceholderText("path of a keystore JSON file")
        self.keystore_browse = QPushButton("Browse…")
        self.keystore_password_edit = QLineEdit()
        self.keystore_password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.storage_combo = QComboBox()
        for storage, label in STORAGE_CHOICES:
            self.storage_combo.addItem(label, storage.value)
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setPlaceholderText("at least 8 characters")
        self.error_label = QLabel()
        self.error_label.setObjectName("inlineError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.create_button = QPushButton("Create profile")
        self.create_button.setObjectName("primaryButton")

        # Lay out.
        self.keystore_row = QWidget()
        keystore_layout = QHBoxLayout(self.keystore_row)
        keystore_layout.setContentsMargins(0, 0, 0, 0)
        keystore_layout.addWidget(self.keystore_edit)
        keystore_layout.addWidget(self.keystore_browse)
        self.form = QFormLayout(self)
        self.form.addRow("Name", self.name_edit)
        self.form.addRow("Chain RPC URL", self.rpc_edit)
        self.form.addRow("Chain id", self.chain_id_spin)
        self.form.addRow("Contract address", self.contract_edit)
        self.form.addRow("IPFS", self.local_kubo_check)
        self.form.addRow("Kubo API URL", self.kubo_edit)
        self.form.addRow("Wallet", self.wallet_combo)
        self.form.addRow("Private key", self.key_edit)
        self.form.addRow("Keystore file", self.keystore_row)
        self.form.addRow("Keystore password", self.keystore_password_edit)
        self.form.addRow("Key storage", self.storage_combo)
        self.form.addRow("Storage password", self.password_edit)
        self.form.addRow(self.error_label)
        self.form.addRow(self.create_button)

        # Connect signals.
        self.local_kubo_check.toggled.connect(self._update_fields)
        self.wallet_combo.currentIndexChanged.connect(self._update_fields)
        self.storage_combo.currentIndexChanged.connect(self._update_fields)
        self.keystore_browse.clicked.connect(self._choose_keystore)
        self._update_fields()

    def request(self) -> NewProfileRequest:
        """Return the form's values; raise ConfigError for an invalid field."""
        storage = KeyStorage(self.storage_combo.currentData())
        kubo_url = None
        if not self.local_kubo_check.isChecked():
            kubo_url = self.kubo_edit.text().strip()
        settings = new_settings(
            self.name_edit.text().strip(),
            chain_rpc_url=self.rpc_edit.text().strip(),
            chain_id=self.chain_id_spin.value(),
            contract_address=self.contract_edit.text().strip(),
            kubo_api_url=kubo_url,
            wallet_storage=storage,
        )
        kind = str(self.wallet_combo.currentData())
        keystore_path = None
        if kind == "import_keystore":
            text = self.keystore_edit.text().strip()
            if not text:
                raise InvalidSettingError(
                    "no keystore file chosen",
                    field="keystore",
                    user_message="Choose the keystore file to import.",
                )
            keystore_path = Path(text)
        password = None
        if storage is KeyStorage.KEYSTORE_FILE:
            password = self.password_edit.text()
        setup = WalletSetup(
            kind=kind,
            private_key=self.key_edit.text().strip(),
            keystore_password=self.keystore_password_edit.text(),
            password=password,
        )
        return NewProfileRequest(settings, setup, keystore_path)

    def show_error(self, message: str) -> None:
        """Show ``message`` under the form."""
        self.error_label.setText(message)
        self.error_label.show()

    def clear_error(self) -> None:
        self.error_label.clear()
        self.error_label.hide()

    @Slot()
    def _update_fields(self) -> None:
        kind = self.wallet_combo.currentData()
        storage = self.storage_combo.currentData()
        self.kubo_edit.setEnabled(not self.local_kubo_check.isChecked())
        self.form.setRowVisible(self.key_edit, kind == "import_key")
        self.form.setRowVisible(self.keystore_row, kind == "import_keystore")
        self.form.setRowVisible(self.keystore_password_edit, kind == "import_keystore")
        self.form.setRowVisible(
            self.password_edit, storage == KeyStorage.KEYSTORE_FILE.value
        )

    @Slot()
    def _choose_keystore(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a keystore file", "", "Keystore files (*.json);;All (*)"
        )
        if path:
            self.keystore_edit.setText(path)


class SignInWindow(QWidget):
    """Lists the profiles on this computer; creates and opens them.

    Emits :attr:`profile_opened` with the :class:`OpenProfile` once a profile's
    store and wallet are open.
    """

    profile_opened = Signal(object)

    def __init__(self, environment: AppEnvironment, parent: QWidget | None = None):
        super().__init__(parent)
        self.environment = environment
        self.setWindowTitle("Merchant App: sign in")
        self.setWindowIcon(QIcon(str(app_icon_path())))
        self.setObjectName("signInWindow")
        self.task: Task | None = None

        # Build widgets.
        title = QLabel("Merchant App")
        title.setObjectName("title")
        subtitle = QLabel(
            "Train one product recommender with other shops. Your customers' "
            "data stays on this computer."
        )
        subtitle.setWordWrap(True)
        self.profile_list = QListWidget()
        self.profile_list.setObjectName("profileList")
        self.open_button = QPushButton("Open")
        self.open_button.setObjectName("primaryButton")
        self.open_button.setEnabled(False)
        self.status_label = QLabel()
        self.status_label.setObjectName("inlineError")
        self.status_label.setWordWrap(True)
        self.status_label.hide()
        self.empty_label = QLabel("No profiles yet. Create one on the right.")
        self.form = NewProfileForm()

        # Lay out.
        profiles_box = QGroupBox("Profiles on this computer")
        profiles_layout = QVBoxLayout(profiles_box)
        self.list_stack = QStackedWidget()
        self.list_stack.addWidget(self.profile_list)
        self.list_stack.addWidget(self.empty_label)
        profiles_layout.addWidget(self.list_stack)
        profiles_layout.addWidget(self.status_label)
        profiles_layout.addWidget(self.open_button)
        columns = QHBoxLayout()
        columns.addWidget(profiles_box, 1)
        columns.addWidget(self.form, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addLayout(columns)
        self.resize(900, 560)

        # Connect signals.
        self.profile_list.currentItemChanged.connect(self._selection_changed)
        self.profile_list.itemDoubleClicked.connect(self._open_selected)
        self.open_button.clicked.connect(self._open_selected)
        self.form.create_button.clicked.connect(self.create_profile)
        self.refresh()

    def refresh(self) -> None:
        """Reload the profile list from the data root."""
        self.profile_list.clear()
        entries = list_profiles(self.environment.data_root)
        for entry in entries:
            item = QListWidgetItem(self._entry_text(entry))
            item.setData(Qt.ItemDataRole.UserRole, entry)
            if entry.problem is not None:
                item.setToolTip(entry.problem)
            self.profile_list.addItem(item)
        self.list_stack.setCurrentIndex(0 if entries else 1)
        if entries:
            self.profile_list.setCurrentRow(0)

    def select_profile(self, name: str) -> None:
        """Select the list entry of profile ``name``."""
        for row in range(self.profile_list.count()):
            entry = self.profile_list.item(row).data(Qt.ItemDataRole.UserRole)
            if entry.name == name:
                self.profile_list.setCurrentRow(row)
                return
        raise KeyError(f"profile {name!r} is not in the list")

    @Slot()
    def create_profile(self) -> None:
        """Validate the form and create and open the profile in the worker."""
        self.form.clear_error()
        try:
            request = self.form.request()
        except ConfigError as exc:
            self.form.show_error(exc.user_message)
            return
        data_root = self.environment.data_root
        backend = self.environment.keyring_backend

        def work(context: TaskContext) -> OpenProfile:
            setup = request.wallet_setup
            if request.keystore_path is not None:
                setup = _with_keystore(setup, request.keystore_path)
            create_profile(data_root, request.settings, setup, keyring_backend=backend)
            context.check_cancelled()
            return open_profile(
                data_root,
                request.settings.name,
                password=setup.password,
                keyring_backend=backend,
            )

        self._start(f"create profile {request.settings.name}", work)
        assert self.task is not None
        self.task.failed.connect(self._create_failed)

    def open_profile(self, name: str, *, password: str | None = None) -> None:
        """Open profile ``name`` in the worker."""
        self.status_label.hide()
        data_root = self.environment.data_root
        backend = self.environment.keyring_backend

        def work(context: TaskContext) -> OpenProfile:
            return open_profile(
                data_root, name, password=password, keyring_backend=backend
            )

        self._start(f"open profile {name}", work)
        assert self.task is not None
        self.task.failed.connect(self._open_failed)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.task is not None:
            self.task.cancel()
        super().closeEvent(event)

    def _start(self, name: str, work: Callable[[TaskContext], OpenProfile]) -> None:
        self._set_busy(True)
        self.task = self.environment.runner.start(name, work)
        self.task.succeeded.connect(self._opened)
        self.task.finished.connect(self._task_finished)

    @Slot()
    def _open_selected(self) -> None:
        item = self.profile_list.currentItem()
        if item is None:
            return
        entry: ProfileEntry = item.data(Qt.ItemDataRole.UserRole)
        if entry.settings is None:
            self._show_status(f"{entry.name} cannot be opened: {entry.problem}")
            return
        password = None
        if entry.settings.wallet_storage is KeyStorage.KEYSTORE_FILE:
            password, accepted = QInputDialog.getText(
                self,
                "Wallet password",
                f"Password of the wallet of {entry.name}",
                QLineEdit.EchoMode.Password,
            )
            if not accepted:
                return
        self.open_profile(entry.name, password=password)

    @Slot(object)
    def _opened(self, profile: OpenProfile) -> None:
        self.profile_opened.emit(profile)

    @Slot(object)
    def _create_failed(self, error: BaseException) -> None:
        if isinstance(error, AppError):
            self.form.show_error(error.user_message)
        else:
            show_error(error, parent=self, context="profile creation")
        self.refresh()

    @Slot(object)
    def _open_failed(self, error: BaseException) -> None:
        item = self.profile_list.currentItem()
        name = item.data(Qt.ItemDataRole.UserRole).name if item else "The profile"
        if isinstance(error, AppError):
            self._show_status(f"{name} cannot be opened: {error.user_message}")
        else:
            show_error(error, parent=self, context="opening a profile")

    @Slot()
    def _task_finished(self) -> None:
        self.task = None
        self._set_busy(False)

    @Slot()
    def _selection_changed(self) -> None:
        self.status_label.hide()
        self.open_button.setEnabled(
            self.task is None and self.profile_list.currentItem() is not None
        )

    def _set_busy(self, busy: bool) -> None:
        self.form.create_button.setEnabled(not busy)
        self.open_button.setEnabled(
            not busy and self.profile_list.currentItem() is not None
        )
        self.form.create_button.setText("Working…" if busy else "Create profile")

    def _show_status(self, message: str) -> None:
        self.status_label.setText(message)
        self.status_label.show()

    @staticmethod
    def _entry_text(entry: ProfileEntry) -> str:
        if entry.settings is None:
            return f"{entry.name}  (cannot be opened)"
        consortium = "in a consortium" if entry.settings.has_contract else "local"
        return f"{entry.name}  ·  {consortium}"


def _with_keystore(setup: WalletSetup, path: Path) -> WalletSetup:
    from merchant_app.wallet.keystore import read_keystore_file

    return WalletSetup(
        kind=setup.kind,
        keystore_json=read_keystore_file(path),
        keystore_password=setup.keystore_password,
        password=setup.password,
    )
