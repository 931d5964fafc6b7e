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
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

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


class Store(Protocol):
    """Current objects + journal. Backends: ``SqliteStore`` (embedded); etcd later."""

    def get(self, kind: type[E], key: str) -> E | None: ...

    def list(self, kind: type[E]) -> builtins.list[E]: ...

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

    def close(self) -> None: ...


def iter_changed(changes: builtins.list[Change], kind: type[E]) -> Iterator[E]:
    """The new values of ``kind`` in ``changes`` (deletes skipped)."""
    for ch in changes:
        if ch.kind == kind.KIND and ch.value is not None:
            yield ch.value  # type: ignore[misc]
