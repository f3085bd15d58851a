"""The Transactions tab: the event table with search, edits, import and export."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from merchant_app.errors import InvalidRowError
from merchant_app.store import (
    Event,
    EventStore,
    ImportMode,
    ImportProgress,
    ImportReport,
)
from merchant_app.store.csv_import import DEFAULT_CHUNK_ROWS
from merchant_app.ui.errors_dialog import show_error
from merchant_app.ui.event_dialog import EventDialog
from merchant_app.ui.events_model import INCLUDED_COLUMN, EventsTableModel
from merchant_app.ui.progress import ProgressPanel
from merchant_app.ui.worker import Task, TaskContext, TaskRunner

logger = logging.getLogger(__name__)

SEARCH_DELAY_MS = 300
REPORT_DETAIL_ROWS = 5


def _count(number: int, noun: str) -> str:
    """Return ``number`` and ``noun``, in the plural unless the number is 1."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def describe_report(report: ImportReport) -> str:
    """Return a one-paragraph summary of an import for the merchant."""
    if report.already_imported:
        return f"{report.file_name} was imported before; nothing was added."
    text = (
        f"{report.file_name}: {_count(report.rows_added, 'event')} added, "
        f"{_count(report.duplicates, 'duplicate')} skipped, "
        f"{_count(report.rejected_count, 'invalid row')} skipped."
    )
    if report.negative_prices:
        text += (
            f" {_count(report.negative_prices, 'row')} with a negative price "
            "(kept and flagged)."
        )
    if report.ignored_columns:
        text += f" Ignored columns: {', '.join(report.ignored_columns)}."
    for rejected in report.rejected[:REPORT_DETAIL_ROWS]:
        text += f"\n• {rejected.describe()}"
    if report.rejected_count > REPORT_DETAIL_ROWS:
        text += f"\n• … and {report.rejected_count - REPORT_DETAIL_ROWS:,} more"
    return text


def _import_progress(value: object) -> tuple[float, str]:
    assert isinstance(value, ImportProgress)
    return value.fraction, f"Importing… {value.rows_done:,} rows read"


def _export_progress(value: object, *, total: int) -> tuple[float, str]:
    assert isinstance(value, int)
    return min(value / total, 1.0), f"Exporting… {value:,} of {total:,} rows"


class TransactionsTab(QWidget):
    """Lists the store's events and edits, imports and exports them.

    Emits :attr:`data_changed` after any change to the events, so other tabs
    refresh their counts.
    """

    data_changed = Signal()

    def __init__(
        self,
        store: EventStore,
        runner: TaskRunner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.runner = runner
        self.file_task: Task | None = None
        self.last_report: ImportReport | None = None
        # Rows per import transaction chunk; cancel is checked between chunks.
        self.import_chunk_rows = DEFAULT_CHUNK_ROWS
        # Asks the merchant to confirm a deletion; tests replace it.
        self.confirm_delete: Callable[[int], bool] = self._ask_delete

        # Build widgets.
        self.model = EventsTableModel(store, runner, parent=self)
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search category, brand, session or id…")
        self.search_edit.setClearButtonEnabled(True)
        self.search_timer = QTimer(self)
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(SEARCH_DELAY_MS)
        self.add_button = QPushButton("Add…")
        self.edit_button = QPushButton("Edit…")
        self.delete_button = QPushButton("Delete")
        self.include_button = QPushButton("Include")
        self.include_button.setToolTip("Use the selected rows in the next contribution")
        self.exclude_button = QPushButton("Exclude")
        self.exclude_button.setToolTip("Leave the selected rows out of contributions")
        self.import_button = QPushButton("Import CSV…")
        self.import_button.setObjectName("primaryButton")
        self.skip_bad_rows_check = QCheckBox("Skip invalid rows")
        self.export_button = QPushButton("Export CSV…")
        self.count_label = QLabel("Loading…")
        self.count_label.setObjectName("muted")
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in enumerate((44, 150, 90, 80, 220, 100, 70, 90)):
            self.table.setColumnWidth(column, width)
        self.progress = ProgressPanel()
        self.report_label = QLabel()
        self.report_label.setObjectName("report")
        self.report_label.setWordWrap(True)
        self.report_label.hide()

        # Lay out.
        toolbar = QHBoxLayout()
        toolbar.addWidget(self.search_edit, 1)
        for button in (
            self.add_button,
            self.edit_button,
            self.delete_button,
            self.include_button,
            self.exclude_button,
        ):
            toolbar.addWidget(button)
        files = QHBoxLayout()
        files.addWidget(self.count_label, 1)
        files.addWidget(self.skip_bad_rows_check)
        files.addWidget(self.import_button)
        files.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(toolbar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.report_label)
        layout.addLayout(files)

        # Connect signals.
        # Each keystroke restarts the timer, so the search runs once typing pauses.
        self.search_edit.textChanged.connect(lambda _text: self.search_timer.start())
        self.search_timer.timeout.connect(self._apply_search)
        self.add_button.clicked.connect(self.add_event)
        self.edit_button.clicked.connect(self.edit_selected)
        self.table.doubleClicked.connect(self._row_double_clicked)
        self.delete_button.clicked.connect(self.delete_selected)
        self.include_button.clicked.connect(lambda: self.set_selected_included(True))
        self.exclude_button.clicked.connect(lambda: self.set_selected_included(False))
        self.import_button.clicked.connect(self._choose_import)
        self.export_button.clicked.connect(self._choose_export)
        self.model.total_changed.connect(self._show_total)
        self.model.loading_changed.connect(self._loading_changed)
        self.model.failed.connect(self._failed)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self._update_buttons()

    # -- public actions --------------------------------------------------

    def load(self) -> None:
        """Load the first page; called when the tab is built."""
        self.model.reload()

    def selected_rows(self) -> list[int]:
        """Return the selected rows, in ascending order."""
        return sorted(
            index.row() for index in self.table.selectionModel().selectedRows()
        )

    def add_event(self) -> EventDialog:
        """Open the dialog that adds an event."""
        dialog = EventDialog(self.store, self.runner, parent=self)
        dialog.saved.connect(self._event_added)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def edit_selected(self) -> EventDialog | None:
        """Open the dialog that edits the first selected event."""
        rows = self.selected_rows()
        if not rows:
            return None
        row = rows[0]
        dialog = EventDialog(
            self.store, self.runner, event=self.model.event_at(row), parent=self
        )
        dialog.saved.connect(lambda event: self._event_edited(row, event))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def delete_selected(self) -> Task | None:
        """Delete the selected events after the merchant confirms."""
        rows = self.selected_rows()
        if not rows or not self.confirm_delete(len(rows)):
            return None
        store = self.store
        ids = [self.model.event_at(row).id for row in rows]

        def work(context: TaskContext) -> None:
            for event_id in ids:
                context.check_cancelled()
                store.delete_event(event_id)

        self.delete_button.setEnabled(False)
        task = self.runner.start(f"delete {len(ids)} events", work)
        task.succeeded.connect(lambda _result: self._rows_deleted(rows))
        task.failed.connect(self._failed)
        task.failed.connect(self.model.reload)
        task.finished.connect(self._update_buttons)
        return task

    def set_selected_included(self, included: bool) -> Task | None:
        """Include or exclude the selected rows in the next contribution."""
        rows = self.selected_rows()
        if not rows:
            return None
        return self.model.set_included(rows, included)

    def import_file(self, path: Path) -> Task:
        """Import a CSV file in the worker, with progress and Cancel."""
        mode = (
            ImportMode.SKIP_BAD_ROWS
            if self.skip_bad_rows_check.isChecked()
            else ImportMode.STRICT
        )
        store = self.store
        chunk_rows = self.import_chunk_rows

        def work(context: TaskContext) -> ImportReport:
            return store.import_csv(
                path,
                mode=mode,
                progress=context.report,
                cancel=context.cancel,
                chunk_rows=chunk_rows,
            )

        failed = (
            self._strict_import_failed if mode is ImportMode.STRICT else self._failed
        )
        task = self._start_file_task(f"import {path.name}", work, failed=failed)
        self.progress.follow(task, f"Importing {path.name}…", _import_progress)
        task.succeeded.connect(self._imported)
        return task

    def export_file(self, path: Path) -> Task:
        """Export the events that match the search to a CSV file."""
        store = self.store
        event_filter = self.model.event_filter

        def work(context: TaskContext) -> int:
            return store.export_csv(
                path,
                event_filter=event_filter,
                progress=context.report,
                cancel=context.cancel,
            )

        task = self._start_file_task(f"export {path.name}", work)
        # The row count of the search is known once the table has loaded;
        # until then the bar only shows that the export runs.
        total = self.model.total
        self.progress.follow(
            task,
            f"Exporting to {path.name}…",
            None if not total else partial(_export_progress, total=total),
        )
        task.succeeded.connect(
            lambda rows: self._show_report(f"{rows:,} events exported to {path}.")
        )
        return task

    # -- slots -----------------------------------------------------------

    def _start_file_task(
        self,
        name: str,
        work: Callable[[TaskContext], object],
        *,
        failed: Callable[[BaseException], None] | None = None,
    ) -> Task:
        self.import_button.setEnabled(False)
        self.export_button.setEnabled(False)
        self.report_label.hide()
        task = self.runner.start(name, work)
        self.file_task = task
        task.failed.connect(failed or self._failed)
        task.cancelled.connect(lambda: self._show_report("Cancelled. Nothing changed."))
        task.finished.connect(self._file_task_finished)
        return task

    @Slot()
    def _file_task_finished(self) -> None:
        self.file_task = None
        self.import_button.setEnabled(True)
        self.export_button.setEnabled(True)

    @Slot(object)
    def _imported(self, report: ImportReport) -> None:
        self.last_report = report
        self._show_report(describe_report(report))
        self.model.reload()
        self.data_changed.emit()

    def _show_report(self, text: str) -> None:
        self.report_label.setText(text)
        self.report_label.show()

    @Slot()
    def _choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import events", "", "CSV files (*.csv);;All files (*)"
        )
        if path:
            self.import_file(Path(path))

    @Slot()
    def _choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export events", "events.csv", "CSV files (*.csv)"
        )
        if path:
            self.export_file(Path(path))

    @Slot()
    def _apply_search(self) -> None:
        self.model.set_search(self.search_edit.text())

    @Slot(QModelIndex)
    def _row_double_clicked(self, index: QModelIndex) -> None:
        if index.column() != INCLUDED_COLUMN:
            self.edit_selected()

    def _event_added(self, _event: object) -> None:
        self.model.reload()
        self.data_changed.emit()

    def _event_edited(self, row: int, event: Event) -> None:
        if row < self.model.rowCount() and self.model.event_at(row).id == event.id:
            self.model.replace_event(row, event)
        else:
            self.model.reload()
        self.data_changed.emit()

    def _rows_deleted(self, rows: list[int]) -> None:
        for row in sorted(rows, reverse=True):
            self.model.remove_event_row(row)
        self.data_changed.emit()

    @Slot(int)
    def _show_total(self, total: int) -> None:
        self.count_label.setText(f"{total:,} events")

    @Slot(bool)
    def _loading_changed(self, loading: bool) -> None:
        if loading and self.model.total is None:
            self.count_label.setText("Loading…")

    @Slot(object)
    def _failed(self, error: BaseException) -> None:
        show_error(error, parent=self, context="transactions")

    @Slot(object)
    def _strict_import_failed(self, error: BaseException) -> None:
        message = None
        # The skip mode leaves out data rows with an invalid field (these
        # errors name a column and a line after the header), but not header
        # problems or lines that are not CSV at all.
        if (
            isinstance(error, InvalidRowError)
            and error.column is not None
            and error.line is not None
            and error.line > 1
        ):
            label = self.skip_bad_rows_check.text()
            message = (
                f"{error.user_message} Fix the row, or tick “{label}” to import "
                "the other rows."
            )
        show_error(error, parent=self, context="transactions", message=message)

    @Slot()
    def _update_buttons(self) -> None:
        selected = bool(self.table.selectionModel().selectedRows())
        for button in (
            self.edit_button,
            self.delete_button,
            self.include_button,
            self.exclude_button,
        ):
            button.setEnabled(selected)

    def _ask_delete(self, count: int) -> bool:
        answer = QMessageBox.question(
            self,
            "Delete events",
            f"Delete {count} selected event{'s' if count != 1 else ''}? "
            "This cannot be undone.",
        )
        return answer == QMessageBox.StandardButton.Yes
