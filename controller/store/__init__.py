"""State store: ``Store`` Protocol and the embedded SQLite backend."""

from __future__ import annotations

from controller.store.base import (
    Action,
    Change,
    JournalEntry,
    JournalQuery,
    Listener,
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
    "SqliteStore",
    "Store",
    "StoreError",
    "Transaction",
    "iter_changed",
]
