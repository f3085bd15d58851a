"""A progress bar with a Cancel button that follows one running task."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from merchant_app.ui.worker import Task

# Maps a progress value a task reports to (fraction done, text to show).
ProgressDescriber = Callable[[object], tuple[float, str]]


class ProgressPanel(QWidget):
    """Shows the progress of a task and cancels it; hidden while idle.

    Progress values the task reports are turned into a fraction by the
    ``to_fraction`` function given to :meth:`follow`; without one, the bar is
    a busy indicator.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("progressPanel")
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)
        self.cancel_button.clicked.connect(self._cancel)
        self._task: Task | None = None
        self._describe: ProgressDescriber | None = None
        self.hide()

    def follow(
        self, task: Task, text: str, describe: ProgressDescriber | None = None
    ) -> None:
        """Show ``text`` and track ``task`` until it finishes.

        ``describe`` maps a progress value to ``(fraction, text)``, or None
        for a busy bar.
        """
        self._task = task
        self._describe = describe
        self.label.setText(text)
        if describe is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(0)
        self.cancel_button.setEnabled(True)
        self.show()
        task.progress.connect(self._progress)
        task.finished.connect(self._finished)

    @Slot(object)
    def _progress(self, value: object) -> None:
        if self._describe is None:
            return
        fraction, text = self._describe(value)
        self.bar.setValue(int(fraction * 1000))
        if text:
            self.label.setText(text)

    @Slot()
    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.cancel_button.setEnabled(False)
            self.label.setText("Cancelling…")

    @Slot()
    def _finished(self) -> None:
        self._task = None
        self.hide()
