"""The staging half of a transaction shared by the SQLite and etcd backends: the last
wish per object wins, reads see own writes, no-op writes are no change."""

from __future__ import annotations

import pytest

from controller.errors import NotFoundError
from controller.models import Site
from controller.models.base import Entity
from controller.store import Action
from controller.store.staging import StagedWrites
from tests.controller.store_contract import site


class _Over(StagedWrites):
    def __init__(self, committed: dict[tuple[str, str], Entity]) -> None:
        super().__init__()
        self.committed = committed

    def _read(self, kind: type[Entity], key: str) -> Entity | None:  # type: ignore[override]
        return self.committed.get((kind.KIND, key))


def test_last_wish_wins_and_no_op_writes_are_no_change() -> None:
    a, b = site("A"), site("B")
    t = _Over({("site", "A"): a, ("site", "B"): b})
    t.put(site("A", region="north"))
    t.put(b)                      # equal to the stored value: no change
    t.delete(Site, "B")           # ... then deleted: the delete wins
    t.put(site("C"))
    t.delete(Site, "C")           # created and deleted in one txn: nothing
    assert t.get(Site, "A") == site("A", region="north") and t.get(Site, "C") is None
    got = list(t.changes_of(lambda kind, key: t.committed.get((kind, key))))
    assert [(c.action, c.key) for c in got] == [(Action.UPDATE, "A"), (Action.DELETE, "B")]
    assert got[0].previous == a and got[1].previous == b
    assert t.kinds() == {"site"}


def test_delete_of_something_absent_names_it() -> None:
    with pytest.raises(NotFoundError, match="Z"):
        _Over({}).delete(Site, "Z")
