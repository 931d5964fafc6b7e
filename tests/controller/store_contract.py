"""The ``Store`` contract (issue 16): every backend subclasses ``StoreContract`` and
provides ``fresh()`` (a store on new, empty state) and ``reopen(store)`` (close it, open
the same state again — a restart). Nothing here names a backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.models import ComputeNode, ComputeResource, Site, SiteKind
from controller.store import (
    Action,
    Fence,
    JournalQuery,
    Store,
    StoreConflict,
    StoreError,
)


def site(name: str = "MEC-1", region: str = "campus") -> Site:
    return Site(name=name, kind=SiteKind.MEC, region=region)


def counter(value: float) -> ComputeResource:
    return ComputeResource(site="MEC-1", name="ctr", description="counter", value=value,
                           scope=["srv"])


class StoreContract:
    tmp: Path

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp = tmp_path

    def fresh(self) -> Store:
        raise NotImplementedError

    def reopen(self, store: Store) -> Store:
        raise NotImplementedError

    @pytest.fixture
    def s(self) -> Iterator[Store]:
        st = self.fresh()
        try:
            yield st
        finally:
            st.close()

    # -- transactions -------------------------------------------------------------------
    def test_put_get_list_and_journal(self, s: Store) -> None:
        with s.transaction("alice", "onboard") as txn:
            txn.put(site())
        assert s.get(Site, "MEC-1") == site()
        assert [x.name for x in s.list(Site)] == ["MEC-1"] and s.count(Site) == 1
        [entry] = s.journal()
        assert (entry.actor, entry.reason, entry.action, entry.kind, entry.key) == (
            "alice", "onboard", Action.CREATE, "site", "MEC-1")
        assert entry.previous is None and entry.value == site().model_dump(mode="json")

    def test_transaction_sees_its_own_writes_readers_do_not(self, s: Store) -> None:
        with s.transaction("a") as txn:
            txn.put(site("A"))
            assert txn.get(Site, "A") == site("A")
            assert s.get(Site, "A") is None

    def test_list_nowait_is_list_when_no_writer_holds_the_index(self, s: Store) -> None:
        """The event loop's read (issue #19): the same objects in the same order as
        ``list``, or None — never a partial commit."""
        assert s.list_nowait(Site) == []
        with s.transaction("a") as txn:
            for name in ("B", "A", "C"):
                txn.put(site(name))
        assert s.list_nowait(Site) == s.list(Site) and len(s.list(Site)) == 3
        done = threading.Event()
        seen: list[list[Site] | None] = []

        def writer() -> None:
            with s.transaction("w") as txn:
                txn.put(site("D"))
                txn.put(site("E"))
                seen.append(s.list_nowait(Site))  # from the writer's own thread
                done.wait(5)

        th = threading.Thread(target=writer)
        th.start()
        try:
            for _ in range(200):
                got = s.list_nowait(Site)
                assert got is None or [x.name for x in got] in (
                    ["A", "B", "C"], ["A", "B", "C", "D", "E"])
                if seen:
                    break
                time.sleep(0.005)
        finally:
            done.set()
            th.join(10)
        assert [x.name for x in seen[0] or []] == ["A", "B", "C"]  # staged: not yet
        assert [x.name for x in s.list_nowait(Site) or []] == ["A", "B", "C", "D", "E"]

    def test_all_or_nothing(self, s: Store) -> None:
        with s.transaction("a") as txn:
            txn.put(site("A"))
        before = (s.list(Site), s.last_seq(), s.journal())
        with pytest.raises(RuntimeError), s.transaction("a") as txn:
            txn.put(site("B"))
            txn.put(ComputeNode(site="B", name="n1"))
            txn.delete(Site, "A")
            raise RuntimeError("boom half-way")
        assert (s.list(Site), s.last_seq(), s.journal()) == before
        assert s.get(ComputeNode, "B/n1") is None

    def test_multi_object_commit_is_one_txid_consecutive_seqs(self, s: Store) -> None:
        with s.transaction("a") as txn:
            txn.put(site("A"))
            txn.put(site("B"))
            txn.put(ComputeNode(site="A", name="n"))
        entries = s.journal()
        assert [e.seq for e in entries] == [1, 2, 3]
        assert len({e.txid for e in entries}) == 1

    def test_update_and_delete_journal_previous_values_in_order(self, s: Store) -> None:
        with s.transaction("a") as txn:
            txn.put(site())
        with s.transaction("b", "move region") as txn:
            txn.put(site(region="north"))
        with s.transaction("c", "retire") as txn:
            txn.delete(Site, "MEC-1")
        e = s.journal()
        assert [x.action for x in e] == [Action.CREATE, Action.UPDATE, Action.DELETE]
        assert e[1].previous is not None and e[1].previous["region"] == "campus"
        assert e[1].value is not None and e[1].value["region"] == "north"
        assert e[2].value is None and e[2].previous == e[1].value
        assert [x.seq for x in s.journal(JournalQuery(descending=True, limit=2))] == [3, 2]
        assert s.get(Site, "MEC-1") is None

    def test_unchanged_put_is_not_journaled(self, s: Store) -> None:
        with s.transaction("a") as txn:
            txn.put(site())
        with s.transaction("a") as txn:
            txn.put(site())
        assert s.last_seq() == 1

    def test_journal_filters(self, s: Store) -> None:
        with s.transaction("ops") as txn:
            txn.put(site("A"))
        with s.transaction("bot") as txn:
            txn.put(ComputeNode(site="A", name="n"))
        assert [e.key for e in s.journal(JournalQuery(kind="node"))] == ["A/n"]
        assert [e.key for e in s.journal(JournalQuery(actor="ops"))] == ["A"]
        assert [e.key for e in s.journal(JournalQuery(since=1))] == ["A/n"]
        assert [e.key for e in s.journal(JournalQuery(action=Action.CREATE, limit=1))] == ["A"]
        assert [e.key for e in s.journal(JournalQuery(since=2, descending=True))] == ["A"]

    # -- subscriptions --------------------------------------------------------------------
    def test_listeners_get_committed_changes_only_in_order(self, s: Store) -> None:
        seen: list[tuple[list[str], str, str]] = []
        unsub = s.subscribe(lambda ch, actor, reason: seen.append(
            ([c.key for c in ch], actor, reason)), with_context=True)
        with s.transaction("a", "first") as txn:
            txn.put(site("A"))
            txn.put(site("B"))
        with pytest.raises(ValueError), s.transaction("a") as txn:
            txn.put(site("C"))
            raise ValueError
        with s.transaction("b", "second") as txn:
            txn.delete(Site, "A")
        unsub()
        with s.transaction("c") as txn:
            txn.put(site("D"))
        assert seen == [(["A", "B"], "a", "first"), (["A"], "b", "second")]

    # -- restart --------------------------------------------------------------------------
    def test_restart_restores_state_exactly(self) -> None:
        s1 = self.fresh()
        res = ComputeResource(site="MEC-1", name="cpu", description="cores", value=8,
                              scope=["srv"], extended={"topology": {"numa": 2}})
        with s1.transaction("a") as txn:
            txn.put(site())
            txn.put(res)
        with s1.transaction("a") as txn:
            txn.delete(Site, "MEC-1")
        s1.set_meta("applied", "abc")
        seq, journal = s1.last_seq(), s1.journal()
        s2 = self.reopen(s1)
        try:
            assert s2.get(Site, "MEC-1") is None
            assert s2.get(ComputeResource, "MEC-1/cpu") == res
            assert (s2.last_seq(), s2.journal()) == (seq, journal)
            assert s2.get_meta("applied") == "abc"
            with s2.transaction("a") as txn:
                txn.put(site("X"))
            assert s2.journal(JournalQuery(since=seq))[0].seq == seq + 1
        finally:
            s2.close()

    # -- concurrency ----------------------------------------------------------------------
    def test_concurrent_writers_lose_no_update(self, s: Store) -> None:
        with s.transaction("init") as txn:
            txn.put(counter(0))
        conflicts = [0]

        def bump(n: int) -> None:
            for _ in range(n):
                while True:
                    try:
                        with s.transaction("w") as txn:
                            cur = txn.get(ComputeResource, "MEC-1/ctr")
                            assert cur is not None
                            txn.put(counter(cur.value + 1))
                        break
                    except StoreConflict:
                        conflicts[0] += 1
        threads = [threading.Thread(target=bump, args=(15,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        got = s.get(ComputeResource, "MEC-1/ctr")
        assert got is not None and got.value == 60
        entries = s.journal(JournalQuery(limit=1000))
        assert [e.seq for e in entries] == list(range(1, 62))
        values = [e.value["value"] for e in entries[1:] if e.value]
        assert values == [float(i) for i in range(1, 61)]

    # -- fencing epoch, meta, tokens, dump ----------------------------------------------
    def test_leader_epoch_and_member_recorded_in_the_journal(self, s: Store) -> None:
        with s.transaction("a") as txn:
            txn.put(site("A"))
        s.fence = Fence(epoch=7, member="ctl-1", token=self._fence_token(s))
        with s.transaction("srv6", "programmed") as txn:
            txn.put(site("B"))
        s.fence = None
        a, b = s.journal()
        assert (a.epoch, b.epoch, b.member) == (0, 7, "ctl-1")

    def _fence_token(self, s: Store) -> int:
        return 0

    def test_tokens_and_meta(self, s: Store) -> None:
        s.add_token("ab" * 32, "dash", "viewer", None)
        with pytest.raises(StoreError, match="already exists"):
            s.add_token("cd" * 32, "dash", "viewer", None)
        assert s.find_token("ab" * 32) == ("dash", "viewer", None)
        assert [t["name"] for t in s.list_tokens()] == ["dash"]
        assert s.revoke_token("dash") and not s.revoke_token("nobody")
        assert s.find_token("ab" * 32) is None
        assert s.get_meta("x") is None
        s.set_meta("x", "1")
        s.set_meta("x", "2")
        assert s.get_meta("x") == "2"

    def test_dump_restores_into_an_empty_store_exactly(self, s: Store) -> None:
        with s.transaction("a", "seed") as txn:
            txn.put(site("A"))
            txn.put(ComputeNode(site="A", name="n"))
        with s.transaction("b") as txn:
            txn.put(site("A", region="north"))
        s.set_meta("applied", "h")
        s.add_token("ef" * 32, "ops", "operator", None)
        dump = s.dump()
        other = self.fresh()
        try:
            other.load_dump(dump)
            assert other.list(Site) == s.list(Site)
            assert other.get(ComputeNode, "A/n") == s.get(ComputeNode, "A/n")
            assert other.journal() == s.journal() and other.last_seq() == s.last_seq()
            assert other.get_meta("applied") == "h"
            assert other.find_token("ef" * 32) == ("ops", "operator", None)
            assert other.dump() == dump
            with other.transaction("c") as txn:
                txn.put(site("Z"))
            assert other.last_seq() == s.last_seq() + 1
            with pytest.raises(StoreError, match="not empty"):
                other.load_dump(dump)
        finally:
            other.close()
