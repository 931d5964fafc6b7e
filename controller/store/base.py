"""The state store interface: current objects plus an append-only journal.

Rules:
- Objects are ``Entity`` values addressed by ``(KIND, key)``.
- All writes happen in a ``Transaction``; a transaction commits all of its
  changes or none (multi-object changes are atomic).
- Every committed change appends one ``JournalEntry`` (who, what, when, why, the
  previous value): the traceability of WP-3.3.4 / GBA-6.8.
- Listeners get the committed changes after the commit, in commit order.
- Readers see only committed state; a transaction sees its own writes.
- A stored row that no longer matches its model (written by an older version, edited
  by hand) never stops the store from opening: it is moved to quarantine (kept
  verbatim with the validation error, journaled as a delete by ``store:quarantine``,
  logged with the fix) and everything else loads. ``quarantined()`` lists such rows;
  ``drop_quarantined(id)`` forgets one once the operator has dealt with it (#15).
- Code names only ``Store`` (never a backend class): ``open_store`` picks the
  backend from a URL — a SQLite file for one machine, ``etcd://h:p,h:p`` for a
  cluster of controllers (issue 16).
- A replica that leads the cluster sets ``fence``: every journal entry it commits
  carries the leader ``epoch`` and its ``member`` name, and a backend that can (etcd)
  commits only while that leadership still stands — a deposed leader's write fails
  with ``StoreFenced`` instead of landing in a newer epoch.
- Two writers never lose an update: a transaction whose reads changed underneath it
  fails with ``StoreConflict`` (retry it) rather than overwriting.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from controller.errors import ConflictError, ConnectionError, CpnError
from controller.models.base import Entity

E = TypeVar("E", bound=Entity)


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change: ``value`` is None for a delete, ``previous`` for a create."""

    action: Action
    kind: str
    key: str
    value: Entity | None
    previous: Entity | None


class StoreError(CpnError):
    """The store could not be opened, read or written."""


class StoreUnavailable(StoreError, ConnectionError):
    """The store cannot be reached now (etcd quorum lost, timeout); nothing known applied."""


class StoreConflict(ConflictError):
    """Something this transaction read was changed by another writer; nothing applied."""


class StoreFenced(StoreConflict):
    """This replica's leadership ended before the write; nothing applied."""


@dataclass(frozen=True, slots=True)
class Fence:
    """Leadership a replica holds: ``epoch`` (grows by one per election), ``member``
    (the replica's name), ``token`` (backend's proof of the lease, etcd: the leader
    key's create revision; 0 where there is nothing to compare)."""

    epoch: int
    member: str
    token: int = 0


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal line. ``seq`` grows by one per change; ``txid`` groups a transaction."""

    seq: int
    txid: int
    ts: datetime
    actor: str
    reason: str
    action: Action
    kind: str
    key: str
    value: dict[str, Any] | None
    previous: dict[str, Any] | None
    epoch: int = 0
    member: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "txid": self.txid,
            "ts": self.ts.isoformat(),
            "actor": self.actor,
            "reason": self.reason,
            "action": self.action.value,
            "kind": self.kind,
            "key": self.key,
            "value": self.value,
            "previous": self.previous,
            "epoch": self.epoch,
            "member": self.member,
        }


@dataclass(frozen=True, slots=True)
class QuarantinedRow:
    """A stored row set aside at load because it no longer validates: ``id``, ``kind``,
    ``key``, ``value`` (the stored text, verbatim), ``error`` (why it was refused),
    ``ts`` (when it was set aside)."""

    id: int
    kind: str
    key: str
    value: str
    error: str
    ts: datetime

    def to_json_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "key": self.key, "value": self.value,
                "error": self.error, "ts": self.ts.isoformat()}


class Transaction(Protocol):
    """Staged writes; committed when the ``with`` block exits without an exception."""

    def get(self, kind: type[E], key: str) -> E | None: ...

    def put(self, obj: Entity) -> None: ...

    def delete(self, kind: type[Entity], key: str) -> None: ...

    def changes(self) -> builtins.list[Change]: ...


@dataclass(frozen=True, slots=True)
class JournalQuery:
    """Filter for the journal; ``since`` is exclusive (seq > since)."""

    since: int = 0
    kind: str | None = None
    key: str | None = None
    actor: str | None = None
    action: Action | None = None
    limit: int = 100
    descending: bool = False


Listener = Callable[[builtins.list[Change]], None]


#: A consistent copy of everything a store holds (``dump``/``load_dump``, backups):
#: ``objects`` [[kind, key, json]], ``journal`` [JournalEntry.to_json_dict()],
#: ``meta`` {k: v}, ``tokens`` [{sha256, name, role, tenant, created, revoked}],
#: ``quarantine`` [QuarantinedRow.to_json_dict()] (rows set aside at load, verbatim: a
#: restore brings them back as quarantined, so nothing is lost).
StoreDump = dict[str, Any]


class Store(Protocol):
    """Current objects + journal. Backends: ``SqliteStore`` (embedded), ``EtcdStore``
    (replicated). ``url`` says where the state lives; ``backend`` is its scheme."""

    url: str
    backend: str
    member: str
    fence: Fence | None

    def get(self, kind: type[E], key: str) -> E | None: ...

    def list(self, kind: type[E]) -> builtins.list[E]: ...

    def list_nowait(self, kind: type[E]) -> builtins.list[E] | None:
        """``list(kind)`` if it can be had without waiting for a writer, else None (a
        commit holds the index: call ``list`` from a thread that may wait). Lets the
        event loop answer a read without blocking and without a worker-thread hop."""
        ...

    def count(self, kind: type[Entity]) -> int: ...

    def transaction(
        self, actor: str, reason: str = ""
    ) -> AbstractContextManager[Transaction]: ...

    def journal(self, query: JournalQuery = ...) -> builtins.list[JournalEntry]: ...

    def last_seq(self) -> int: ...

    def subscribe(self, listener: Callable[..., None], *,
                  with_context: bool = False) -> Callable[[], None]: ...

    def quarantined(self) -> builtins.list[QuarantinedRow]: ...

    def drop_quarantined(self, row_id: int) -> bool: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def add_token(self, sha256: str, name: str, role: str, tenant: str | None) -> None: ...

    def find_token(self, sha256: str) -> tuple[str, str, str | None] | None: ...

    def revoke_token(self, name: str) -> bool: ...

    def list_tokens(self) -> builtins.list[dict[str, Any]]: ...

    def dump(self) -> StoreDump:
        """A consistent snapshot of objects, journal, meta and tokens (online)."""
        ...

    def load_dump(self, dump: StoreDump) -> None:
        """Bring a snapshot into this store, which must be empty (else ``StoreError``)."""
        ...

    def close(self) -> None: ...


def iter_changed(changes: builtins.list[Change], kind: type[E]) -> Iterator[E]:
    """The new values of ``kind`` in ``changes`` (deletes skipped)."""
    for ch in changes:
        if ch.kind == kind.KIND and ch.value is not None:
            yield ch.value  # type: ignore[misc]
