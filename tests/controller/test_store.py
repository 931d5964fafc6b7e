from __future__ import annotations

from pathlib import Path

import pytest

from controller.models import ComputeNode, ComputeResource, Site, SiteKind
from controller.store import Action, JournalQuery, SqliteStore


def site(name: str = "MEC-1") -> Site:
    return Site(name=name, kind=SiteKind.MEC, region="campus")


def test_put_get_list_and_journal(store: SqliteStore) -> None:
    with store.transaction("alice", "onboard") as txn:
        txn.put(site())
    assert store.get(Site, "MEC-1") == site()
    assert [s.name for s in store.list(Site)] == ["MEC-1"]
    [entry] = store.journal()
    assert (entry.actor, entry.reason, entry.action, entry.kind, entry.key) == (
        "alice", "onboard", Action.CREATE, "site", "MEC-1")
    assert entry.previous is None and entry.value is not None


def test_update_journals_previous_value(store: SqliteStore) -> None:
    with store.transaction("a") as txn:
        txn.put(site())
    with store.transaction("b", "move region") as txn:
        txn.put(site().model_copy(update={"region": "north"}))
    last = store.journal(JournalQuery(descending=True, limit=1))[0]
    assert last.action is Action.UPDATE
    assert last.previous is not None and last.previous["region"] == "campus"
    assert last.value is not None and last.value["region"] == "north"


def test_unchanged_put_is_not_journaled(store: SqliteStore) -> None:
    with store.transaction("a") as txn:
        txn.put(site())
    with store.transaction("a") as txn:
        txn.put(site())
    assert store.last_seq() == 1


def test_failed_multi_object_change_leaves_store_exactly_as_before(store: SqliteStore) -> None:
    with store.transaction("a") as txn:
        txn.put(site("A"))
    before = (store.list(Site), store.last_seq())
    with pytest.raises(RuntimeError), store.transaction("a") as txn:
        txn.put(site("B"))
        txn.put(ComputeNode(site="B", name="n1"))
        raise RuntimeError("boom half-way")
    assert (store.list(Site), store.last_seq()) == before
    assert store.get(ComputeNode, "B/n1") is None


def test_restart_restores_state_exactly(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s1 = SqliteStore(path)
    res = ComputeResource(site="MEC-1", name="cpu", description="cores", value=8,
                          scope=["srv"], extended={"topology": {"numa": 2}})
    with s1.transaction("a") as txn:
        txn.put(site())
        txn.put(res)
    with s1.transaction("a") as txn:
        txn.delete(Site, "MEC-1")
    seq = s1.last_seq()
    s1.close()
    s2 = SqliteStore(path)
    try:
        assert s2.get(Site, "MEC-1") is None
        assert s2.get(ComputeResource, "MEC-1/cpu") == res
        assert s2.last_seq() == seq
        with s2.transaction("a") as txn:
            txn.put(site("X"))
        assert s2.journal(JournalQuery(since=seq))[0].seq == seq + 1
    finally:
        s2.close()


def test_listeners_get_committed_changes_only(store: SqliteStore) -> None:
    seen: list[list[str]] = []
    store.subscribe(lambda changes: seen.append([c.key for c in changes]))
    with store.transaction("a") as txn:
        txn.put(site("A"))
        txn.put(site("B"))
    with pytest.raises(ValueError), store.transaction("a") as txn:
        txn.put(site("C"))
        raise ValueError
    assert seen == [["A", "B"]]


def test_journal_filters(store: SqliteStore) -> None:
    with store.transaction("ops") as txn:
        txn.put(site("A"))
    with store.transaction("bot") as txn:
        txn.put(ComputeNode(site="A", name="n"))
    assert [e.key for e in store.journal(JournalQuery(kind="node"))] == ["A/n"]
    assert [e.key for e in store.journal(JournalQuery(actor="ops"))] == ["A"]
    assert [e.key for e in store.journal(JournalQuery(since=1))] == ["A/n"]


def test_plugin_kinds_survive_a_restart_whatever_the_import_order(tmp_path: Path) -> None:
    """Plug-in packages register their kinds on import, which in ``cpn run`` happens
    after the store opened: a fresh process must still serve (and update, journaling
    the previous value) every stored SRv6 slice and accelerator card."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    db = tmp_path / "state.db"
    write = f"""
from controller.store import SqliteStore
from srv6.models import Slice
s = SqliteStore({str(db)!r})
with s.transaction("t", "seed") as txn:
    txn.put(Slice(name="gold", color=20, guaranteed_mbps=10))
"""
    check = f"""
from controller.store import SqliteStore
s = SqliteStore({str(db)!r})  # opened before srv6.models is imported
from controller.store import Action, JournalQuery
from srv6.models import Slice
assert [x.name for x in s.list(Slice)] == ["gold"], s.list(Slice)
with s.transaction("t", "raise") as txn:
    txn.put(Slice(name="gold", color=20, guaranteed_mbps=20))
last = s.journal(JournalQuery(key="gold"))[-1]
assert last.action is Action.UPDATE and last.previous is not None, last
print("ok")
"""
    for code in (write, check):
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
