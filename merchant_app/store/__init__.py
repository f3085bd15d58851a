"""The merchant's event store: SQLite tables, CSV import and export, paging.

Open a store with ``EventStore.open(path)``. The modules contain the parts:
``schema`` (tables, version, migrations), ``csv_import``, ``chunk_reader``,
``byte_parse``, ``chunk_parse`` and ``bulk_insert`` (import), ``validation``
(field rules), ``edits``, ``queries``, ``export``.
"""

from merchant_app.store.database import EventStore
from merchant_app.store.layouts import Layout
from merchant_app.store.queries import EventFilter
from merchant_app.store.report import (
    ImportMode,
    ImportProgress,
    ImportReport,
    RejectedRow,
)
from merchant_app.store.rows import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    Event,
    StoreCounts,
    event_weights,
    interaction_types,
)

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "Event",
    "EventFilter",
    "EventStore",
    "ImportMode",
    "ImportProgress",
    "ImportReport",
    "Layout",
    "RejectedRow",
    "StoreCounts",
    "event_weights",
    "interaction_types",
]
