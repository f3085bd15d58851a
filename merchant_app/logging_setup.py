"""Logging configuration shared by the command line and the GUI."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"


class ConsoleFormatter(logging.Formatter):
    """One line per record: tracebacks are for the log file, not the terminal.

    A record with a traceback gets a note that the log file contains it.
    """

    def format(self, record: logging.LogRecord) -> str:
        if not record.exc_info and not record.exc_text:
            return super().format(record)
        brief = logging.makeLogRecord(record.__dict__)
        brief.exc_info = None
        brief.exc_text = None
        return super().format(brief) + " (traceback in the log file)"


def configure_logging(*, verbose: bool = False, log_file: Path | None = None) -> None:
    """Send the app's log records to stderr and, if given, to a rotating file.

    The console shows warnings, one line each (with ``verbose``, everything
    with tracebacks); the file always gets INFO and above, with tracebacks,
    for bug reports.
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)

    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(
        logging.Formatter(CONSOLE_FORMAT)
        if verbose
        else ConsoleFormatter(CONSOLE_FORMAT)
    )
    root.addHandler(console)

    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
        file_handler.setLevel(logging.INFO)
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(file_handler)

    # web3 and urllib3 log every request at DEBUG; keep them quiet unless asked.
    for noisy in ("urllib3", "web3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
