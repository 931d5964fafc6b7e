"""State store: ``Store`` Protocol and the embedded SQLite backend."""

from __future__ import annotations

from controller.store.base import (
    Action,
    Change,
    JournalEntry,
    JournalQuery,
    Listener,
    QuarantinedRow,
    Store,
    Transaction,
    iter_changed,
)
from controller.store.sqlite import SqliteStore, StoreError

__all__ = [
    "Action",
    "Change",
    "JournalEntry",
    "JournalQuery",
    "Listener",
    "QuarantinedRow",
    "SqliteStore",
    "Store",
    "StoreError",
    "Transaction",
    "iter_changed",
]
