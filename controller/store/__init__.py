"""State store: ``Store`` Protocol and the embedded SQLite backend."""

from __future__ import annotations

from controller.store.base import (
    Action,
    Change,
    Fence,
    JournalEntry,
    JournalQuery,
    Listener,
    QuarantinedRow,
    Store,
    StoreConflict,
    StoreDump,
    StoreError,
    StoreFenced,
    StoreUnavailable,
    Transaction,
    iter_changed,
)
from controller.store.sqlite import SqliteStore

__all__ = [
    "Action",
    "Change",
    "Fence",
    "JournalEntry",
    "JournalQuery",
    "Listener",
    "QuarantinedRow",
    "SqliteStore",
    "Store",
    "StoreConflict",
    "StoreDump",
    "StoreError",
    "StoreFenced",
    "StoreUnavailable",
    "Transaction",
    "iter_changed",
    "open_store",
]


def open_store(url: str, *, member: str = "", sync: str = "full") -> Store:
    """The store at ``url``: ``etcd://HOST:PORT,HOST:PORT[/prefix]`` for a cluster,
    else a SQLite file path (``sqlite:///path`` or a plain path). ``sync`` is the SQLite
    file's durability (``full``, ``commit`` or ``normal``: ``controller.store.sqlite``);
    an etcd commit is durable on a quorum either way."""
    if url.startswith("etcd://"):
        from controller.store.etcd import EtcdStore

        return EtcdStore.from_url(url, member=member)
    path = url.removeprefix("sqlite://")
    return SqliteStore(path, member=member, sync=sync)
