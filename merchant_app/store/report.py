"""What an import returns and reports while it runs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from merchant_app.store.layouts import Layout

# An import in skip mode keeps the details of at most this many rejected rows;
# ``ImportReport.rejected_count`` still counts all of them.
MAX_REJECTED_DETAILS = 1000


class ImportMode(enum.StrEnum):
    """What an import does with an invalid row."""

    # Any invalid row stops the import and leaves the database unchanged.
    STRICT = "strict"
    # Invalid rows are reported and skipped, and the valid rows are imported.
    SKIP_BAD_ROWS = "skip_bad_rows"


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """An invalid row: its line in the file, the first bad column and why."""

    line: int
    column: str
    value: str
    reason: str

    def describe(self) -> str:
        """Return a one-line description naming the line, column and value."""
        return f"line {self.line}, column {self.column!r}: value {self.value!r}: " + (
            self.reason
        )


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Progress of a running import, where ``bytes_done`` counts bytes read."""

    rows_done: int
    bytes_done: int
    bytes_total: int

    @property
    def fraction(self) -> float:
        """Return the share of the file read so far, from 0.0 to 1.0."""
        if self.bytes_total == 0:
            return 1.0
        return min(self.bytes_done / self.bytes_total, 1.0)


@dataclass(slots=True)
class ImportReport:
    """The result of importing one CSV file.

    ``rows_read`` counts data rows in the file (blank lines excluded);
    ``rows_added + duplicates + rejected_count`` equals it, except for a file
    imported before, where nothing is read.
    """

    file_name: str
    sha256: str
    layout: Layout | None
    mode: ImportMode
    already_imported: bool = False
    import_id: int | None = None
    rows_read: int = 0
    rows_added: int = 0
    duplicates: int = 0
    negative_prices: int = 0
    blank_lines: int = 0
    rejected_count: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def add_rejected(self, rows: list[RejectedRow]) -> None:
        """Count rejected rows and keep the details of the first ones."""
        self.rejected_count += len(rows)
        room = MAX_REJECTED_DETAILS - len(self.rejected)
        if room > 0:
            self.rejected.extend(rows[:room])
