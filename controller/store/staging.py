"""The staging half of a transaction, shared by every ``Store`` backend.

Rules:
- ``put``/``delete`` only record the wish, in order, keyed ``(kind, key)``: the last
  wish for an object wins; nothing is read or written until the backend commits.
- ``get`` inside a transaction sees the transaction's own staged value first, then the
  committed one (the backend's ``_read``, which may also remember what it read).
- ``delete`` of an object that is neither staged nor committed raises ``NotFoundError``.
- ``changes_of`` turns the staged wishes into the ``Change`` list a commit journals,
  against the committed values ``previous`` returns: a delete of something absent and
  a put equal to the stored value are no change (never journaled).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from typing import TypeVar

from controller.errors import NotFoundError
from controller.models.base import Entity
from controller.store.base import Action, Change

E = TypeVar("E", bound=Entity)


class StagedWrites:
    """Writes of one transaction, staged in memory (``Transaction`` Protocol's writes)."""

    def __init__(self) -> None:
        #: (kind, key) -> new value, or None for a delete; insertion order kept
        self._staged: dict[tuple[str, str], Entity | None] = {}

    def _read(self, kind: type[E], key: str) -> E | None:
        """The committed value (the backend's index)."""
        raise NotImplementedError

    def get(self, kind: type[E], key: str) -> E | None:
        ident = (kind.KIND, key)
        if ident in self._staged:
            return self._staged[ident]  # type: ignore[return-value]
        return self._read(kind, key)

    def put(self, obj: Entity) -> None:
        if not obj.KIND:
            raise TypeError(f"{type(obj).__name__} is not a storable entity")
        self._staged[(obj.KIND, obj.key)] = obj

    def delete(self, kind: type[Entity], key: str) -> None:
        if self.get(kind, key) is None:
            raise NotFoundError(kind.KIND, key)
        self._staged[(kind.KIND, key)] = None

    def kinds(self) -> builtins.set[str]:
        """The kinds this transaction writes (a backend decodes them before diffing)."""
        return {kind for kind, _ in self._staged}

    def changes_of(self, previous: Callable[[str, str], Entity | None]) -> Iterator[Change]:
        """The changes the staged writes make to the committed values ``previous``."""
        for (kind, key), value in self._staged.items():
            before = previous(kind, key)
            if value is None:
                if before is not None:
                    yield Change(Action.DELETE, kind, key, None, before)
            elif before is None:
                yield Change(Action.CREATE, kind, key, value, None)
            elif before != value:
                yield Change(Action.UPDATE, kind, key, value, before)
