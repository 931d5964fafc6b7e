"""etcd backend on a real etcd (Debian etcd-server): the shared ``Store`` contract, then
what only a replicated store has — replicas that see each other's commits, writers on
two replicas that never lose an update, fencing of a deposed leader, a member lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from controller.models import ComputeResource, Site
from controller.store import (
    Fence,
    JournalQuery,
    Store,
    StoreConflict,
    StoreError,
    StoreFenced,
    open_store,
)
from controller.store.etcd import Endpoints, EtcdStore
from labs.etcd import EtcdCluster, have_etcd
from tests.controller.store_contract import StoreContract, counter, site

pytestmark = pytest.mark.skipif(not have_etcd(), reason="needs etcd-server (bootstrap.sh)")


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    with EtcdCluster(3) as cluster:
        yield cluster


class TestEtcdStoreContract(StoreContract):
    @pytest.fixture(autouse=True)
    def _cluster(self, etcd: EtcdCluster) -> None:
        self.cluster = etcd

    def fresh(self) -> Store:
        return open_store(self.cluster.url(f"/t-{uuid.uuid4().hex[:12]}"), member="ctl-a")

    def reopen(self, store: Store) -> Store:
        store.close()
        return open_store(store.url, member="ctl-a")

    def _fence_token(self, s: Store) -> int:
        assert isinstance(s, EtcdStore)
        from aetcd.transactions import Put

        s.run(s.txn([], [Put(s.key("leader"), b"{}")], []))
        return int(s.run(s.range(s.key("leader"))).kvs[0].create_revision)


@pytest.fixture
def pair(etcd: EtcdCluster) -> Iterator[tuple[EtcdStore, EtcdStore]]:
    url = etcd.url(f"/p-{uuid.uuid4().hex[:12]}")
    a, b = EtcdStore.from_url(url, member="a"), EtcdStore.from_url(url, member="b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def wait(pred: object, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_url_parsing_and_refusals() -> None:
    e = Endpoints.parse("etcd://127.0.0.1:1,127.0.0.1:2,localhost:3/cluster-a")
    assert e.hosts == (("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3))
    assert e.prefix == "/cluster-a"
    assert e.target() == ("ipv4:127.0.0.1:1,127.0.0.1:2,127.0.0.1", 3)
    with pytest.raises(StoreError, match="HOST:PORT"):
        Endpoints.parse("etcd://127.0.0.1")
    with pytest.raises(StoreError, match="names no etcd member"):
        Endpoints.parse("etcd:///x")


def test_replicas_see_each_others_commits_with_context(
        pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = pair
    seen: list[tuple[list[str], str, str]] = []
    b.subscribe(lambda ch, actor, reason: seen.append(([c.key for c in ch], actor, reason)),
                with_context=True)
    with a.transaction("alice", "onboard") as txn:
        txn.put(site("A"))
        txn.put(site("B"))
    with a.transaction("alice", "retire") as txn:
        txn.delete(Site, "A")
    wait(lambda: len(seen) == 2)
    assert seen == [(["A", "B"], "alice", "onboard"), (["A"], "alice", "retire")]
    assert b.list(Site) == a.list(Site) and b.last_seq() == a.last_seq() == 3
    assert [e.member for e in b.journal()] == ["a", "a", "a"]


def test_writers_on_two_replicas_never_lose_an_update(
        pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = pair
    with a.transaction("init") as txn:
        txn.put(counter(0))
    wait(lambda: b.get(ComputeResource, "MEC-1/ctr") is not None)
    conflicts = [0]

    def bump(s: EtcdStore, n: int) -> None:
        for _ in range(n):
            while True:
                try:
                    with s.transaction(s.member) as txn:
                        cur = txn.get(ComputeResource, "MEC-1/ctr")
                        assert cur is not None
                        txn.put(counter(cur.value + 1))
                    break
                except StoreConflict:
                    conflicts[0] += 1
                    time.sleep(0.002)
    threads = [threading.Thread(target=bump, args=(s, 20)) for s in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wait(lambda: (b.get(ComputeResource, "MEC-1/ctr") or counter(0)).value == 80)
    entries = a.journal(JournalQuery(limit=1000))
    assert [e.seq for e in entries] == list(range(1, 82))
    assert sorted(e.value["value"] for e in entries[1:] if e.value) == [
        float(i) for i in range(1, 81)]
    assert conflicts[0] > 0  # the two replicas really raced


def test_a_deposed_leaders_write_is_fenced(pair: tuple[EtcdStore, EtcdStore]) -> None:
    from aetcd.transactions import Delete, Put

    a, b = pair
    a.run(a.txn([], [Put(a.key("leader"), b"a")], []))
    token = int(a.run(a.range(a.key("leader"))).kvs[0].create_revision)
    a.fence = Fence(epoch=1, member="a", token=token)
    with a.transaction("srv6", "programmed") as txn:
        txn.put(site("A"))
    # the lease ran out and b took over: the leader key is someone else's now
    b.run(b.txn([], [Delete(b.key("leader"))], []))
    b.run(b.txn([], [Put(b.key("leader"), b"b")], []))
    with pytest.raises(StoreFenced, match="no longer leads"), \
            a.transaction("srv6", "programmed") as txn:
        txn.put(site("B"))
    assert a.fence is None and a.get(Site, "B") is None
    assert [(e.key, e.epoch) for e in a.journal()] == [("A", 1)]


def test_a_lost_etcd_member_costs_no_acknowledged_write() -> None:
    with EtcdCluster(3) as cluster:
        s = EtcdStore.from_url(cluster.url("/lost"), member="a")
        other = EtcdStore.from_url(cluster.url("/lost"), member="b")
        try:
            acked: list[str] = []
            for i in range(60):
                if i == 20:
                    cluster.stop_member(0)
                if i == 40:
                    cluster.start_member(0)
                name = f"S{i}"
                with s.transaction("w") as txn:
                    txn.put(site(name))
                acked.append(name)
            wait(lambda: other.count(Site) == 60, 10)
            assert sorted(x.name for x in other.list(Site)) == sorted(acked)
            assert [e.seq for e in other.journal(JournalQuery(limit=100))] == list(
                range(1, 61))
        finally:
            s.close()
            other.close()


def test_a_transaction_too_big_for_etcd_is_refused_naming_the_fix(
        pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, _ = pair
    with pytest.raises(StoreError, match="max-txn-ops"), a.transaction("bulk") as txn:
        for i in range(2100):  # 4,201 operations > the fixture's --max-txn-ops 4096
            txn.put(site(f"S{i}"))
    assert a.count(Site) == 0 and a.last_seq() == 0


def test_blind_write_racing_a_remote_create_does_not_journal_a_second_create(
        pair: tuple[EtcdStore, EtcdStore]) -> None:
    """Regression (HA lab): the replica computed "create, previous None" from its index,
    then its watch applied another replica's create of the same site before the commit
    took the revision to compare — the compare passed and the journal had two creates."""
    from controller.store import Action

    a, b = pair
    held: list[object] = []
    b._apply_watch = held.append  # type: ignore[method-assign]
    with a.transaction("a") as txn:
        txn.put(site("X"))
    wait(lambda: bool(held))
    original = b._commit

    async def late(*args: object, **kw: object) -> None:
        del b._apply_watch  # the create reaches b's index between snapshot and commit
        for resp in held:
            EtcdStore._apply_watch(b, resp)
        await original(*args, **kw)  # type: ignore[arg-type]
    b._commit = late  # type: ignore[method-assign]
    with pytest.raises(StoreConflict), b.transaction("b") as txn:
        txn.put(site("X", region="elsewhere"))
    creates = [e for e in a.journal() if e.key == "X" and e.action is Action.CREATE]
    assert len(creates) == 1 and a.get(Site, "X") == site("X")


def test_a_row_that_no_longer_validates_is_quarantined_once(etcd: EtcdCluster) -> None:
    """#15 on etcd: a stored row that fails its model is set aside (verbatim, with the
    error), journaled as a delete by store:quarantine — by one replica only — and the
    rest loads and stays writable."""
    from aetcd.transactions import Put

    from controller.store import Action

    url = etcd.url(f"/q-{uuid.uuid4().hex[:12]}")
    a = EtcdStore.from_url(url, member="a")
    try:
        with a.transaction("a") as txn:
            txn.put(site("MEC-1"))
        bad = '{"name": "broken"}'
        a.run(a.txn([], [Put(a.key("o", "site", "broken"), bad.encode())], []))
    finally:
        a.close()
    b, c = EtcdStore.from_url(url, member="b"), EtcdStore.from_url(url, member="c")
    try:
        wait(lambda: len(b.quarantined()) == 1)
        time.sleep(0.3)
        [row] = b.quarantined()
        assert (row.kind, row.key, row.value) == ("site", "broken", bad)
        assert "kind" in row.error
        assert [s.name for s in b.list(Site)] == ["MEC-1"]
        gone = b.journal(JournalQuery(actor="store:quarantine"))
        assert [(e.action, e.key) for e in gone] == [(Action.DELETE, "broken")]
        assert [e.seq for e in b.journal()] == [1, 2]
        with c.transaction("ops") as txn:
            txn.put(site("broken"))
        assert c.drop_quarantined(row.id) and not c.drop_quarantined(row.id)
        wait(lambda: b.get(Site, "broken") is not None)
    finally:
        b.close()
        c.close()


def test_a_cluster_that_fails_to_start_leaves_no_member_running() -> None:
    """Regression: when one member could not start, start() raised with the other
    members still running and their data left behind (a with-block's __exit__ is not
    reached when __enter__ raises)."""
    cluster = EtcdCluster(2)
    cluster.root.mkdir(parents=True, exist_ok=True)
    cluster.members[1].data.write_text("not a directory")  # m1 cannot start; m0 does
    with pytest.raises(OSError):
        cluster.start(timeout=5)
    m0 = cluster.members[0].proc
    assert m0 is not None and m0.poll() is not None  # started, then stopped
    assert not cluster.root.exists()
