"""The round driver's own tables in the merchant's SQLite database.

The driver writes the step it is about to run before it acts, and the hash of
every transaction right after sending it, so a restarted driver resumes the
round where it stopped and never sends a transaction twice. The tables live
in the merchant's event store file but belong to the federation part: they
are created with ``CREATE TABLE IF NOT EXISTS`` on a separate connection, so
the store's schema version is not involved.
"""

from __future__ import annotations

import enum
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from merchant_app.errors import InputDataError

logger = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000

_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS federation_rounds (
        contract TEXT NOT NULL,
        round_id INTEGER NOT NULL,
        step TEXT NOT NULL,
        base_cid TEXT NOT NULL,
        update_cid TEXT,
        update_weight INTEGER,
        update_size INTEGER,
        aggregate_cid TEXT,
        final_cid TEXT,
        excluded TEXT NOT NULL DEFAULT '[]',
        phase_seconds TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL,
        PRIMARY KEY (contract, round_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS federation_transactions (
        contract TEXT NOT NULL,
        round_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        tx_hash TEXT,
        gas_used INTEGER,
        block_number INTEGER,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (contract, round_id, action)
    )
    """,
)


class RoundStep(enum.StrEnum):
    """Steps of one round, in the order the driver runs them."""

    FETCH_BASE = "fetch_base"
    TRAIN = "train"
    UPLOAD = "upload"
    SUBMIT = "submit"
    WAIT_CLOSED = "wait_closed"
    FETCH_UPDATES = "fetch_updates"
    VALIDATE = "validate"
    AGGREGATE = "aggregate"
    PROPOSE = "propose"
    APPROVE = "approve"
    WAIT_FINAL = "wait_final"
    LOAD_FINAL = "load_final"
    DONE = "done"

    def next(self) -> RoundStep:
        """Return the step after this one; DONE is last."""
        steps = list(RoundStep)
        index = steps.index(self)
        return steps[min(index + 1, len(steps) - 1)]


class TxAction(enum.StrEnum):
    """Transactions a member sends in a round, at most one of each."""

    SUBMIT = "submit"
    CLOSE = "close"
    PROPOSE = "propose"
    APPROVE = "approve"


@dataclass(frozen=True)
class Exclusion:
    """An update left out of the aggregate, and why."""

    member: str
    cid: str
    reason: str


@dataclass(frozen=True)
class RoundRecord:
    """The driver's saved state of one round of one contract."""

    contract: str
    round_id: int
    step: RoundStep
    base_cid: str
    update_cid: str | None = None
    update_weight: int | None = None
    update_size: int | None = None
    aggregate_cid: str | None = None
    final_cid: str | None = None
    excluded: tuple[Exclusion, ...] = ()
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def advanced(self, **changes: object) -> RoundRecord:
        """Return a copy at the next step, with ``changes`` applied."""
        return replace(self, step=self.step.next(), **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TxRecord:
    """One round transaction: sent when ``tx_hash`` is set, mined with gas."""

    action: TxAction
    tx_hash: str | None
    gas_used: int | None
    block_number: int | None

    @property
    def mined(self) -> bool:
        return self.gas_used is not None


class RoundStateStore:
    """Reads and writes the round tables of one merchant database.

    The store has its own connection (autocommit, WAL), so it works beside an
    open :class:`merchant_app.store.EventStore` on the same file. A lock
    makes it safe to share between threads, one call at a time.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> RoundStateStore:
        """Open the database at ``path`` and create the round tables if needed.

        Raises:
            InputDataError: when the file is not a usable SQLite database.
        """
        path = Path(path)
        try:
            connection = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            for statement in _TABLES:
                connection.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise InputDataError(
                f"cannot open the round state in {path}: {exc}",
                user_message="The merchant's data file cannot be opened.",
            ) from exc
        return cls(connection, path)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> RoundStateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- rounds ----------------------------------------------------------

    def load(self, contract: str, round_id: int) -> RoundRecord | None:
        """Return the record of ``round_id``, or None when it never started."""
        with self._lock:
            row = self._connection.execute(
                f"SELECT {_ROUND_COLUMNS} FROM federation_rounds "
                "WHERE contract = ? AND round_id = ?",
                (contract, round_id),
            ).fetchone()
        return None if row is None else _record_from_row(row)

    def unfinished(self, contract: str) -> RoundRecord | None:
        """Return the latest round of ``contract`` that is not done, if any."""
        with self._lock:
            row = self._connection.execute(
                f"SELECT {_ROUND_COLUMNS} FROM federation_rounds "
                "WHERE contract = ? AND step != ? ORDER BY round_id DESC LIMIT 1",
                (contract, RoundStep.DONE.value),
            ).fetchone()
        return None if row is None else _record_from_row(row)

    def save(self, record: RoundRecord) -> None:
        """Insert or replace the record; it is on disk when this returns."""
        excluded = json.dumps(
            [[item.member, item.cid, item.reason] for item in record.excluded]
        )
        values = (
            record.contract,
            record.round_id,
            record.step.value,
            record.base_cid,
            record.update_cid,
            record.update_weight,
            record.update_size,
            record.aggregate_cid,
            record.final_cid,
            excluded,
            json.dumps(record.phase_seconds, sort_keys=True),
            _now(),
        )
        with self._lock:
            self._connection.execute(
                f"INSERT OR REPLACE INTO federation_rounds ({_ROUND_COLUMNS}, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        logger.debug(
            "round %d of %s saved at step %s",
            record.round_id,
            record.contract,
            record.step,
        )

    # -- transactions ----------------------------------------------------

    def transaction(
        self, contract: str, round_id: int, action: TxAction
    ) -> TxRecord | None:
        """Return the stored transaction of ``action`` in the round, if any."""
        with self._lock:
            row = self._connection.execute(
                "SELECT action, tx_hash, gas_used, block_number "
                "FROM federation_transactions "
                "WHERE contract = ? AND round_id = ? AND action = ?",
                (contract, round_id, action.value),
            ).fetchone()
        if row is None:
            return None
        return TxRecord(TxAction(row[0]), row[1], row[2], row[3])

    def record_sent(
        self, contract: str, round_id: int, action: TxAction, tx_hash: str
    ) -> None:
        """Store the hash of a sent transaction before its receipt is awaited."""
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO federation_transactions (contract, "
                "round_id, action, tx_hash, gas_used, block_number, updated_at) "
                "VALUES (?, ?, ?, ?, NULL, NULL, ?)",
                (contract, round_id, action.value, tx_hash, _now()),
            )

    def record_mined(
        self,
        contract: str,
        round_id: int,
        action: TxAction,
        *,
        tx_hash: str,
        gas_used: int,
        block_number: int,
    ) -> None:
        """Store the receipt's gas and block of a mined transaction."""
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO federation_transactions (contract, "
                "round_id, action, tx_hash, gas_used, block_number, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    contract,
                    round_id,
                    action.value,
                    tx_hash,
                    gas_used,
                    block_number,
                    _now(),
                ),
            )

    def transactions(self, contract: str, round_id: int) -> list[TxRecord]:
        """Return every stored transaction of the round, in action order."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT action, tx_hash, gas_used, block_number "
                "FROM federation_transactions WHERE contract = ? AND round_id = ? "
                "ORDER BY action",
                (contract, round_id),
            ).fetchall()
        return [TxRecord(TxAction(row[0]), row[1], row[2], row[3]) for row in rows]

    def gas_used(self, contract: str, round_id: int) -> int:
        """Return the gas of every mined transaction of the round, summed."""
        return sum(
            record.gas_used or 0 for record in self.transactions(contract, round_id)
        )


_ROUND_COLUMNS = (
    "contract, round_id, step, base_cid, update_cid, update_weight, update_size, "
    "aggregate_cid, final_cid, excluded, phase_seconds"
)


def _record_from_row(row: tuple[Any, ...]) -> RoundRecord:
    excluded = json.loads(str(row[9]))
    return RoundRecord(
        contract=str(row[0]),
        round_id=int(row[1]),
        step=RoundStep(row[2]),
        base_cid=str(row[3]),
        update_cid=_text_or_none(row[4]),
        update_weight=None if row[5] is None else int(row[5]),
        update_size=None if row[6] is None else int(row[6]),
        aggregate_cid=_text_or_none(row[7]),
        final_cid=_text_or_none(row[8]),
        excluded=tuple(Exclusion(*item) for item in excluded),
        phase_seconds={
            str(name): float(value) for name, value in json.loads(str(row[10])).items()
        },
    )


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
