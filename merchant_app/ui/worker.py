"""Blocking core calls run in a thread pool, with results delivered as Qt signals.

The GUI thread snapshots its inputs, starts a :class:`Task` with
:meth:`TaskRunner.start`, and applies the result in a slot connected to
:attr:`Task.succeeded`. The function runs in a
``concurrent.futures.ThreadPoolExecutor`` and receives a :class:`TaskContext`:
``context.cancel`` is a ``threading.Event`` to pass to the core call, and
``context.report(value)`` sends progress to the GUI.

Worker threads never touch widgets. They emit private signals of the task,
and Qt queues those to the GUI thread because the task lives there. The task
then emits its public signals in the GUI thread. A task can also be awaited from a
coroutine on the qasync loop with :meth:`Task.outcome`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from merchant_app.errors import Cancelled

logger = logging.getLogger(__name__)

WORKER_THREAD_PREFIX = "merchant-worker"
DEFAULT_WORKERS = 4


class TaskContext:
    """The cancel event and the progress reporter passed to a task's function."""

    def __init__(self, cancel: threading.Event, report: Callable[[object], None]):
        self.cancel = cancel
        self._report = report

    def report(self, value: object) -> None:
        """Send ``value`` to the GUI through :attr:`Task.progress`."""
        self._report(value)

    def check_cancelled(self) -> None:
        """Raise Cancelled when the task was cancelled."""
        if self.cancel.is_set():
            raise Cancelled("task cancelled")


class Task(QObject):
    """One function running in the pool.

    Exactly one of :attr:`succeeded`, :attr:`failed` (with the exception) or
    :attr:`cancelled` is emitted, then :attr:`finished`, all in the GUI thread.
    """

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal()

    _progress_from_worker = Signal(object)
    _done_in_worker = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.cancel_event = threading.Event()
        self.future: concurrent.futures.Future[Any] | None = None
        self.is_finished = False
        # Queued even when emitted in the GUI thread (a future that is done
        # before its callback is added), so callers connect first.
        queued = Qt.ConnectionType.QueuedConnection
        self._progress_from_worker.connect(self._emit_progress, queued)
        self._done_in_worker.connect(self._emit_outcome, queued)

    def cancel(self) -> None:
        """Ask the function to stop; it ends at its next cancel check."""
        if not self.is_finished:
            logger.info("task %s: cancel requested", self.name)
        self.cancel_event.set()

    async def outcome(self) -> Any:
        """Wait on the running asyncio loop for the function's return value."""
        assert self.future is not None, "the task was not started"
        return await asyncio.wrap_future(self.future)

    def _run(self, function: Callable[[TaskContext], Any]) -> Any:
        context = TaskContext(self.cancel_event, self._progress_from_worker.emit)
        context.check_cancelled()
        return function(context)

    def _future_done(self, _future: concurrent.futures.Future[Any]) -> None:
        self._done_in_worker.emit()

    @Slot(object)
    def _emit_progress(self, value: object) -> None:
        if not self.is_finished:
            self.progress.emit(value)

    @Slot()
    def _emit_outcome(self) -> None:
        assert self.future is not None
        if self.is_finished:
            return
        self.is_finished = True
        error = None if self.future.cancelled() else self.future.exception()
        if self.future.cancelled():
            logger.info("task %s cancelled before it started", self.name)
            self.cancelled.emit()
        elif error is None:
            logger.debug("task %s succeeded", self.name)
            self.succeeded.emit(self.future.result())
        elif isinstance(error, Cancelled) or self.cancel_event.is_set():
            logger.info("task %s cancelled", self.name)
            self.cancelled.emit()
        else:
            # The slot that handles the failure logs it (with the traceback
            # when it shows the error dialog), so this record stays out of
            # the console.
            logger.info("task %s failed: %s", self.name, error)
            self.failed.emit(error)
        self.finished.emit()


class TaskRunner(QObject):
    """The app's pool of worker threads and the tasks running in it."""

    def __init__(
        self, *, max_workers: int = DEFAULT_WORKERS, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=WORKER_THREAD_PREFIX
        )
        self._tasks: set[Task] = set()
        self._closed = False

    @property
    def running(self) -> list[Task]:
        """The tasks that have not finished yet."""
        return [task for task in self._tasks if not task.is_finished]

    def start(self, name: str, function: Callable[[TaskContext], Any]) -> Task:
        """Run ``function(context)`` in the pool; connect to the task's signals.

        Connect before control returns to the event loop: the signals are
        queued, so none is delivered before then.
        """
        if self._closed:
            raise RuntimeError(f"cannot start task {name}: the runner is shut down")
        task = Task(name, self)
        self._tasks.add(task)
        task.finished.connect(self._forget)
        task.future = self._executor.submit(task._run, function)
        task.future.add_done_callback(task._future_done)
        logger.debug("task %s started", name)
        return task

    def cancel_all(self) -> None:
        """Ask every running task to stop."""
        for task in self.running:
            task.cancel()

    def shutdown(self) -> None:
        """Cancel all tasks and wait for the worker threads to end.

        Called when the window closes. Results that arrive later are dropped
        with the task objects.
        """
        if self._closed:
            return
        self._closed = True
        self.cancel_all()
        self._executor.shutdown(wait=True, cancel_futures=True)
        for task in list(self._tasks):
            task.is_finished = True
        self._tasks.clear()
        logger.info("worker pool shut down")

    @Slot()
    def _forget(self) -> None:
        task = self.sender()
        if isinstance(task, Task):
            self._tasks.discard(task)
            task.deleteLater()
