"""Leadership on a real etcd (issue 16): three runtimes, one leader running the
leader-only components; a graceful step-down hands over at once with a new epoch; every
device change is journaled under the epoch of the one controller that made it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli.main import app
from controller.cluster import SoleLeader, leader_only
from controller.models import Site, SiteKind
from controller.runtime import Runtime, Settings
from controller.store import JournalQuery
from controller.store.etcd import EtcdStore
from labs.etcd import EtcdCluster, have_etcd
from labs.netns import free_port

runner = CliRunner()
pytestmark = pytest.mark.skipif(not have_etcd(), reason="needs etcd-server (bootstrap.sh)")


class Programmer:
    """Stands for a component that programs devices: each start writes one status row
    (a "device change") through the store, as the real reconcilers do."""

    name = "programmer"
    leader_only = True

    def __init__(self, events: list[tuple[str, str, int]]) -> None:
        self.events = events
        self.rt: Runtime | None = None

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        epoch = rt.leadership.role.epoch
        self.events.append(("start", rt.member, epoch))
        with rt.store.transaction("programmer", "programmed") as txn:
            txn.put(Site(name=f"dev-{epoch}", kind=SiteKind.MEC, region=rt.member))

    async def stop(self) -> None:
        assert self.rt is not None
        self.events.append(("stop", self.rt.member, self.rt.leadership.role.epoch))


class Everywhere:
    name = "everywhere"

    def __init__(self) -> None:
        self.running = False

    async def start(self, rt: Runtime) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    with EtcdCluster(3) as cluster:
        yield cluster


def test_leader_only_is_a_declared_property() -> None:
    assert leader_only(Programmer([])) and not leader_only(Everywhere())
    assert SoleLeader("x").acting() and not SoleLeader.elected


def test_sqlite_runtime_runs_leader_only_components_in_place(tmp_path: Path) -> None:
    events: list[tuple[str, str, int]] = []

    async def go() -> None:
        rt = Runtime(None, Settings(state=tmp_path, member="solo"))
        await rt.start([Everywhere(), Programmer(events)])
        assert [c.name for c in rt.started] == ["everywhere", "programmer"]
        await rt.stop()
        rt.store.close()
    asyncio.run(go())
    assert events == [("start", "solo", 0), ("stop", "solo", 0)]


def test_one_leader_hands_over_with_a_new_epoch(etcd: EtcdCluster, tmp_path: Path) -> None:
    url = etcd.url(f"/ha-{uuid.uuid4().hex[:8]}")
    events: list[tuple[str, str, int]] = []

    async def until(pred: object, timeout: float = 8.0) -> None:
        end = time.monotonic() + timeout
        while not pred():  # type: ignore[operator]
            assert time.monotonic() < end, "timed out"
            await asyncio.sleep(0.02)

    async def go() -> None:
        rts = [Runtime(None, Settings(state=tmp_path / f"c{i}", store=url, member=f"c{i}",
                                      api=("127.0.0.1", free_port()))) for i in range(3)]
        every = [Everywhere() for _ in rts]
        for rt, ev in zip(rts, every, strict=True):
            await rt.start([ev, Programmer(events)])
        try:
            assert all(ev.running for ev in every)  # every replica runs the rest
            await until(lambda: sum(rt.leadership.role.leader for rt in rts) == 1)
            [first] = [rt for rt in rts if rt.leadership.role.leader]
            await until(lambda: [c.name for c in first.leading] == ["programmer"])
            e1 = first.leadership.role.epoch
            assert all(not rt.leading for rt in rts if rt is not first)
            await until(lambda: all(rt.leadership.local()["leader"] == first.member
                                    for rt in rts))
            t0 = time.monotonic()
            await first.stop()  # graceful: lease revoked, successor at once
            rest = [rt for rt in rts if rt is not first]
            await until(lambda: sum(rt.leadership.role.leader for rt in rest) == 1)
            [second] = [rt for rt in rest if rt.leadership.role.leader]
            await until(lambda: bool(second.leading))
            assert time.monotonic() - t0 < 2.0
            assert second.leadership.role.epoch == e1 + 1
            status = second.leadership.status()
            assert status["leader"] == second.member and status["epoch"] == e1 + 1
            assert {m["member"] for m in status["members"]} >= {r.member for r in rest}
            # a follower accepts writes: they go through the store
            [follower] = [rt for rt in rest if rt is not second]
            with follower.store.transaction("rest", "operator write") as txn:
                txn.put(Site(name="from-follower", kind=SiteKind.MEC, region="x"))
            assert isinstance(second.store, EtcdStore)
            await until(lambda: second.store.get(Site, "from-follower") is not None)
            journal = second.store.journal(JournalQuery(limit=100))
            device = [e for e in journal if e.actor == "programmer"]
            assert [(e.epoch, e.member) for e in device] == [(e1, first.member),
                                                             (e1 + 1, second.member)]
            [op] = [e for e in journal if e.actor == "rest"]
            assert op.epoch == 0 and op.member == follower.member
            out = await asyncio.to_thread(runner.invoke, app, ["cluster", "status",
                                                               "--store", url])
            assert out.exit_code == 0, out.output
            assert f"leader {second.member}, epoch {e1 + 1}" in out.output
            assert follower.member in out.output
        finally:
            for rt in rts:
                await rt.stop()
                rt.store.close()
    asyncio.run(go())
    starts = [(m, e) for kind, m, e in events if kind == "start"]
    assert len(starts) == 2 and len({e for _, e in starts}) == 2


def test_a_leader_stuck_on_etcd_steps_down_by_its_lease_deadline(
        etcd: EtcdCluster, tmp_path: Path) -> None:
    """Lease guard: when the leader's refresh hangs (etcd out of reach) it stops acting
    at ttl − margin after its last good refresh — before etcd can expire the lease and a
    successor start — even though the election loop itself is stuck in that call."""
    url = etcd.url(f"/guard-{uuid.uuid4().hex[:8]}")

    async def go() -> None:
        rt = Runtime(None, Settings(state=tmp_path, store=url, member="g1",
                                    api=("127.0.0.1", free_port())))
        await rt.start([Programmer([])])
        try:
            lead = rt.leadership
            end = time.monotonic() + 8
            while not lead.role.leader:
                assert time.monotonic() < end
                await asyncio.sleep(0.02)

            async def stuck() -> bool:
                await asyncio.sleep(30)
                return True
            lead._refresh = stuck  # type: ignore[union-attr,method-assign]
            t0 = time.monotonic()
            while lead.role.leader:
                assert time.monotonic() - t0 < 3.0, "still leading"
                await asyncio.sleep(0.02)
            took = time.monotonic() - t0
            assert took <= lead.ttl_s - lead.margin_s + 0.3  # type: ignore[union-attr]
            assert not lead.acting() and rt.store.fence is None
            end = time.monotonic() + 3
            while rt.leading:
                assert time.monotonic() < end
                await asyncio.sleep(0.02)
        finally:
            await rt.stop()
            rt.store.close()
    asyncio.run(go())
