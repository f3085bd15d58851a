"""A table model over the event store that loads rows lazily, one page at a time.

The model never loads the whole table: it starts with the row count and the
first page, and the view asks for the next page (``canFetchMore`` and
``fetchMore``) when the merchant scrolls near the end. Every store call runs
in the worker pool; a page that arrives after the sort or the search changed
is dropped, because its generation number is stale.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from merchant_app.store import Event, EventFilter, EventStore
from merchant_app.store.export import format_time
from merchant_app.ui.worker import Task, TaskContext, TaskRunner

logger = logging.getLogger(__name__)

PAGE_ROWS = 200

# (store column, header); the first column is the `included` check box.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("included", "Use"),
    ("event_time", "Time (UTC)"),
    ("event_type", "Type"),
    ("product_id", "Product"),
    ("category_code", "Category"),
    ("brand", "Brand"),
    ("price", "Price"),
    ("user_id", "Customer"),
    ("user_session", "Session"),
)
INCLUDED_COLUMN = 0
_NUMERIC = {"product_id", "price", "user_id"}

AnyIndex = QModelIndex | QPersistentModelIndex
# The invalid index, which is the table's root, as a default argument.
_ROOT = QModelIndex()


class EventsTableModel(QAbstractTableModel):
    """The events of one store, filtered and sorted, fetched in pages."""

    loading_changed = Signal(bool)
    total_changed = Signal(int)
    failed = Signal(object)

    def __init__(
        self,
        store: EventStore,
        runner: TaskRunner,
        *,
        page_rows: int = PAGE_ROWS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._runner = runner
        self.page_rows = page_rows
        self._rows: list[Event] = []
        self._total: int | None = None
        self._sort_column = "id"
        self._descending = False
        self._filter = EventFilter()
        self._generation = 0
        self._page_task: Task | None = None

    # -- state -----------------------------------------------------------

    @property
    def fetched_rows(self) -> int:
        """The number of rows loaded so far."""
        return len(self._rows)

    @property
    def total(self) -> int | None:
        """The number of matching events, or None until it is counted."""
        return self._total

    @property
    def event_filter(self) -> EventFilter:
        """The filter of the rows shown."""
        return self._filter

    @property
    def is_loading(self) -> bool:
        return self._page_task is not None

    def event_at(self, row: int) -> Event:
        """Return the event shown in ``row``."""
        return self._rows[row]

    def set_search(self, text: str) -> None:
        """Show only events that match ``text`` (see ``EventFilter.search``)."""
        search = text.strip() or None
        if search == self._filter.search:
            return
        self._filter = dataclasses.replace(self._filter, search=search)
        self.reload()

    def reload(self) -> None:
        """Drop the loaded rows and load the count and the first page again."""
        self._generation += 1
        self.beginResetModel()
        self._rows = []
        self._total = None
        self.endResetModel()
        if self._page_task is not None:
            self._page_task.cancel()
            self._page_task = None
        self._load_page(count=True)

    def replace_event(self, row: int, event: Event) -> None:
        """Show ``event`` in ``row`` after an edit."""
        self._rows[row] = event
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1), [])

    def remove_event_row(self, row: int) -> None:
        """Remove ``row`` after its event was deleted."""
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        if self._total is not None:
            self._total -= 1
        self.endRemoveRows()
        if self._total is not None:
            self.total_changed.emit(self._total)

    # -- QAbstractTableModel ---------------------------------------------

    def rowCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        event = self._rows[index.row()]
        column = COLUMNS[index.column()][0]
        if column == "included":
            if role == Qt.ItemDataRole.CheckStateRole:
                return (
                    Qt.CheckState.Checked if event.included else Qt.CheckState.Unchecked
                )
            if role == Qt.ItemDataRole.ToolTipRole:
                return "Take part in the next contribution"
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return _display(event, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and index.column() == INCLUDED_COLUMN:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def setData(
        self, index: AnyIndex, value: Any, role: int = Qt.ItemDataRole.EditRole
    ) -> bool:
        if (
            not index.isValid()
            or index.column() != INCLUDED_COLUMN
            or role != Qt.ItemDataRole.CheckStateRole
        ):
            return False
        included = Qt.CheckState(value) == Qt.CheckState.Checked
        self.set_included([index.row()], included)
        return True

    def canFetchMore(self, parent: AnyIndex = _ROOT) -> bool:
        if parent.isValid() or self._total is None or self._page_task is not None:
            return False
        return len(self._rows) < self._total

    def fetchMore(self, parent: AnyIndex = _ROOT) -> None:
        if self.canFetchMore(parent):
            self._load_page(count=False)

    def sort(
        self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder
    ) -> None:
        # Column -1 (no sort indicator) and the check box column mean id order.
        name = COLUMNS[column][0] if 0 <= column < len(COLUMNS) else "id"
        sort_column = "id" if name == "included" else name
        descending = order == Qt.SortOrder.DescendingOrder
        if (sort_column, descending) == (self._sort_column, self._descending):
            return
        self._sort_column = sort_column
        self._descending = descending
        if self._generation > 0:
            self.reload()

    # -- writes ----------------------------------------------------------

    def set_included(self, rows: list[int], included: bool) -> Task:
        """Mark the events of ``rows`` as taking part in the next contribution."""
        store = self._store
        ids = [self._rows[row].id for row in rows]
        generation = self._generation

        def work(context: TaskContext) -> int:
            return store.set_included(ids, included)

        task = self._runner.start(f"set included on {len(ids)} events", work)
        task.succeeded.connect(_bound(self._apply_included, generation, ids, included))
        task.failed.connect(self.failed)
        return task

    # -- loading ---------------------------------------------------------

    def _load_page(self, *, count: bool) -> None:
        store = self._store
        event_filter = self._filter
        sort = self._sort_column
        descending = self._descending
        limit = self.page_rows
        offset = len(self._rows)
        after_id = self._rows[-1].id if self._rows and sort == "id" else None
        generation = self._generation

        def work(context: TaskContext) -> tuple[int | None, list[Event]]:
            total = store.count_events(event_filter) if count else None
            context.check_cancelled()
            if after_id is not None:
                page = store.fetch_events(
                    limit=limit,
                    after_id=after_id,
                    descending=descending,
                    event_filter=event_filter,
                )
            else:
                page = store.fetch_events(
                    limit=limit,
                    offset=offset,
                    sort=sort,
                    descending=descending,
                    event_filter=event_filter,
                )
            return total, page

        task = self._runner.start(f"load events from row {offset}", work)
        self._page_task = task
        task.succeeded.connect(_bound(self._apply_page, generation))
        task.failed.connect(_bound(self._page_failed, generation))
        task.cancelled.connect(_bound(self._page_failed, generation, None))
        self.loading_changed.emit(True)

    def _apply_page(
        self, generation: int, result: tuple[int | None, list[Event]]
    ) -> None:
        if generation != self._generation:
            return
        self._page_task = None
        total, page = result
        if total is not None:
            self._total = total
            self.total_changed.emit(total)
        if page:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
            self._rows.extend(page)
            self.endInsertRows()
        elif self._total is not None and len(self._rows) < self._total:
            # Rows were deleted after the count, so stop requesting pages.
            self._total = len(self._rows)
            self.total_changed.emit(self._total)
        logger.debug("events model loaded %d of %s rows", len(self._rows), self._total)
        self.loading_changed.emit(False)

    def _page_failed(self, generation: int, error: BaseException | None) -> None:
        if generation != self._generation:
            return
        self._page_task = None
        self.loading_changed.emit(False)
        if error is not None:
            self.failed.emit(error)

    def _apply_included(
        self, generation: int, ids: list[int], included: bool, _changed: int
    ) -> None:
        if generation != self._generation:
            return
        wanted = set(ids)
        for row, event in enumerate(self._rows):
            if event.id in wanted:
                self.replace_event(row, dataclasses.replace(event, included=included))


def _bound(method: Callable[..., None], *arguments: Any) -> Callable[..., None]:
    """Return a slot that calls ``method`` with ``arguments`` first.

    The returned function is a plain Python function; it runs in the thread
    that emits, which is the GUI thread for :class:`Task` signals.
    """

    def slot(*values: Any) -> None:
        method(*arguments, *values)

    return slot


def _display(event: Event, column: str) -> str:
    value = getattr(event, column)
    if value is None:
        return ""
    if column == "event_time":
        return format_time(value).removesuffix(" UTC")
    if column == "price":
        return f"{value:.2f}"
    return str(value)
