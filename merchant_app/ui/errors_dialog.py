"""The error dialog: a plain message, with the technical details behind a button.

The dialog never shows a traceback: :func:`show_error` writes it to the log
(the profile's ``app.log`` once a profile is open) and the dialog offers the
technical message only.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from merchant_app.errors import AppError, Cancelled, InputDataError

logger = logging.getLogger(__name__)

UNEXPECTED_MESSAGE = (
    "Something unexpected went wrong. The app logged the details; you can keep working."
)


def user_message(error: BaseException) -> str:
    """Return the sentence the dialog shows a merchant for ``error``."""
    if isinstance(error, AppError):
        return error.user_message
    return UNEXPECTED_MESSAGE


def technical_details(error: BaseException) -> str:
    """Return the exception's type and message, and those of its causes."""
    lines = []
    current: BaseException | None = error
    while current is not None:
        lines.append(f"{type(current).__name__}: {current}")
        current = current.__cause__
        if current is not None:
            lines.append("caused by")
    return "\n".join(lines)


class ErrorDialog(QDialog):
    """Shows one error: its user message, and details on request."""

    def __init__(
        self,
        error: BaseException,
        *,
        title: str,
        message: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("errorDialog")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        # Build widgets.
        icon = QLabel()
        style = self.style()
        icon.setPixmap(
            style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(40)
        )
        self.message_label = QLabel(message or user_message(error))
        self.message_label.setWordWrap(True)
        self.message_label.setObjectName("errorMessage")
        self.details_text = QPlainTextEdit(technical_details(error))
        self.details_text.setReadOnly(True)
        self.details_text.setVisible(False)
        self.details_button = QPushButton("Show details")
        self.details_button.setCheckable(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.details_button, QDialogButtonBox.ButtonRole.ActionRole)

        # Lay out.
        top = QHBoxLayout()
        top.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.message_label, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.details_text)
        layout.addWidget(buttons)
        self.setMinimumWidth(420)

        # Connect signals.
        buttons.rejected.connect(self.reject)
        self.details_button.toggled.connect(self._toggle_details)

    def _toggle_details(self, shown: bool) -> None:
        self.details_text.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Show details")
        self.adjustSize()


def show_error(
    error: BaseException,
    *,
    parent: QWidget | None = None,
    title: str = "Error",
    context: str = "operation",
    message: str | None = None,
) -> ErrorDialog | None:
    """Log ``error`` with its traceback and open the error dialog for it.

    ``message`` replaces the error's user message, for a caller that knows
    what the merchant can do next.

    Returns None for :class:`Cancelled`, which needs no dialog. The dialog is
    window-modal and opened without a nested event loop.
    """
    if isinstance(error, Cancelled):
        logger.info("%s cancelled", context)
        return None
    # Bad input is the merchant's to fix, not a fault of the app.
    level = logging.WARNING if isinstance(error, InputDataError) else logging.ERROR
    logger.log(
        level,
        "%s failed: %s",
        context,
        error,
        exc_info=(type(error), error, error.__traceback__),
    )
    dialog = ErrorDialog(error, title=title, message=message, parent=parent)
    dialog.open()
    return dialog
