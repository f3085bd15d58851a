"""The dialog that adds or edits one event, with validation errors shown inline."""

from __future__ import annotations

import logging

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from merchant_app.errors import InputDataError, InvalidRowError
from merchant_app.store import EVENT_COLUMNS, EVENT_TYPES, Event, EventStore
from merchant_app.store.export import format_time
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.worker import Task, TaskContext, TaskRunner

logger = logging.getLogger(__name__)

FIELD_LABELS = {
    "event_time": "Time",
    "event_type": "Type",
    "product_id": "Product id",
    "category_id": "Category id",
    "category_code": "Category",
    "brand": "Brand",
    "price": "Price",
    "user_id": "Customer id",
    "user_session": "Session",
}
PLACEHOLDERS = {
    "event_time": "2019-10-01 00:00:00 UTC (empty for slim rows)",
    "product_id": "required",
    "user_id": "required",
}


class EventDialog(QDialog):
    """Adds a new event (``event`` is None) or edits ``event``.

    The dialog stays open and marks the field when the store rejects a value;
    it emits :attr:`saved` with the stored event and closes on success.
    """

    saved = Signal(object)

    def __init__(
        self,
        store: EventStore,
        runner: TaskRunner,
        *,
        event: Event | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.runner = runner
        self.edited_event = event
        self.task: Task | None = None
        self.setWindowTitle("Edit event" if event else "Add event")
        self.setObjectName("eventDialog")

        # Build widgets.
        self.fields: dict[str, QLineEdit | QComboBox] = {}
        for column in EVENT_COLUMNS:
            if column == "event_type":
                combo = QComboBox()
                combo.addItems(list(EVENT_TYPES))
                self.fields[column] = combo
            else:
                edit = QLineEdit()
                edit.setPlaceholderText(PLACEHOLDERS.get(column, ""))
                self.fields[column] = edit
        self.error_label = QLabel()
        self.error_label.setObjectName("inlineError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save
            | QDialogButtonBox.StandardButton.Cancel
        )

        # Lay out.
        form = QFormLayout()
        for column, widget in self.fields.items():
            form.addRow(FIELD_LABELS[column], widget)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(460)

        # Connect signals.
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        if event is not None:
            self._fill(event)

    def set_value(self, column: str, text: str) -> None:
        """Set the text of one field, as if typed."""
        widget = self.fields[column]
        if isinstance(widget, QComboBox):
            widget.setCurrentText(text)
        else:
            widget.setText(text)

    def values(self) -> dict[str, str]:
        """Return the fields' texts by column."""
        result = {}
        for column, widget in self.fields.items():
            if isinstance(widget, QComboBox):
                result[column] = widget.currentText()
            else:
                result[column] = widget.text().strip()
        return result

    @Slot()
    def save(self) -> None:
        """Validate and store the event in the worker."""
        self._clear_error()
        values = self.values()
        store = self.store
        event_id = self.edited_event.id if self.edited_event is not None else None

        def work(context: TaskContext) -> Event:
            if event_id is None:
                new_id = store.add_event(values)
                stored = store.get_event(new_id)
                assert stored is not None
                return stored
            return store.update_event(event_id, values)

        self.buttons.setEnabled(False)
        self.task = self.runner.start("save event", work)
        self.task.succeeded.connect(self._saved)
        self.task.failed.connect(self._failed)
        self.task.finished.connect(self._finished)

    def reject(self) -> None:
        if self.task is not None:
            # NOTE: a save already running still lands, and the table shows it
            # only after its next reload.
            self.task.cancel()
        super().reject()

    @Slot(object)
    def _saved(self, event: Event) -> None:
        self.saved.emit(event)
        self.accept()

    @Slot(object)
    def _failed(self, error: BaseException) -> None:
        if isinstance(error, InvalidRowError):
            self._show_error(error.user_message, error.column)
        elif isinstance(error, InputDataError):
            self._show_error(error.user_message, None)
        else:
            show_error(error, parent=self, context="saving an event")

    @Slot()
    def _finished(self) -> None:
        self.task = None
        self.buttons.setEnabled(True)

    def _fill(self, event: Event) -> None:
        for column in EVENT_COLUMNS:
            value = getattr(event, column)
            if value is None:
                text = ""
            elif column == "event_time":
                text = format_time(value)
            else:
                text = str(value)
            self.set_value(column, text)

    def _show_error(self, message: str, column: str | None) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        if column in self.fields:
            widget = self.fields[column]
            widget.setProperty("invalid", True)
            widget.style().unpolish(widget)
            widget.style().polish(widget)
            widget.setFocus()

    def _clear_error(self) -> None:
        self.error_label.hide()
        for widget in self.fields.values():
            if widget.property("invalid"):
                widget.setProperty("invalid", False)
                widget.style().unpolish(widget)
                widget.style().polish(widget)
