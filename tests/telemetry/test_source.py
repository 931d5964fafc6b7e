"""The ``MetricSource`` contract (``telemetry.source``): one suite, every source passes it
— the site-agent ingest, the BGP ingest and the link probes (DESIGN §2). Each
subclass says how to make the source, stage one observation of a value for a fixed
key, and read that value back from the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import ClassVar

import pytest

from controller.models import ComputeMetrics, Link, Service, Site, SiteKind
from controller.store import SqliteStore
from controller.store.base import JournalQuery
from telemetry.bgp.codec import ComputeMetadata
from telemetry.bgp.decoder import RouteAnnounced
from telemetry.bgp.ingest import BgpIngestCore
from telemetry.bgp.models import BgpConfig
from telemetry.ingest import IngestCore
from telemetry.probes import LinkSample, ProbeComponent
from telemetry.source import MetricSource


class MetricSourceContract:
    """Subclass and implement ``make``, ``observe``, ``read``, ``touch``, ``touched``."""

    kind: ClassVar[str]
    key: ClassVar[str]

    def make(self, store: SqliteStore) -> MetricSource:
        raise NotImplementedError

    def observe(self, src: MetricSource, value: float) -> None:
        raise NotImplementedError

    def read(self, store: SqliteStore) -> float:
        raise NotImplementedError

    def touch(self, store: SqliteStore) -> None:
        """Another writer changes the record (a field this source does not own)."""
        raise NotImplementedError

    def touched(self, store: SqliteStore) -> bool:
        raise NotImplementedError

    @pytest.fixture
    def world(self, store: SqliteStore) -> SqliteStore:
        with store.transaction("test", "seed") as txn:
            for s in ("MEC-1", "MEC-2"):
                txn.put(Site(name=s, kind=SiteKind.MEC, region="r"))
            txn.put(Service(name="video", anycast=[ip_address("198.51.100.10")]))
            txn.put(Link(a="MEC-1", b="MEC-2", delay_ms=50, jitter_ms=9, loss_pct=0))
        return store

    def _writes(self, store: SqliteStore) -> list[str]:
        return [e.actor for e in store.journal(JournalQuery(kind=self.kind, key=self.key,
                                                            limit=1000))]

    def test_is_a_metric_source(self, world: SqliteStore) -> None:
        src = self.make(world)
        assert isinstance(src, MetricSource) and src.actor

    def test_nothing_observed_writes_nothing(self, world: SqliteStore) -> None:
        src = self.make(world)
        before = self._writes(world)
        assert src.backlog() == 0 and src.flush() == 0
        assert self._writes(world) == before

    def test_an_observation_is_written_once_as_the_source(self, world: SqliteStore) -> None:
        src = self.make(world)
        before = len(self._writes(world))
        self.observe(src, 20.0)
        assert src.backlog() >= 1
        assert src.flush() >= 1 and src.backlog() == 0
        assert self.read(world) == pytest.approx(20.0)
        writes = self._writes(world)[before:]
        assert writes == [src.actor]
        assert src.flush() == 0 and len(self._writes(world)) == before + 1

    def test_observations_of_one_key_coalesce(self, world: SqliteStore) -> None:
        src = self.make(world)
        before = len(self._writes(world))
        self.observe(src, 20.0)
        self.observe(src, 30.0)
        src.flush()
        assert self.read(world) == pytest.approx(30.0)
        assert len(self._writes(world)) == before + 1

    def test_precedence_applies_at_commit_not_at_observation(self, world: SqliteStore
                                                             ) -> None:
        """What another writer stored between observation and flush is merged by the
        precedence rule, never clobbered by a stale copy."""
        src = self.make(world)
        self.observe(src, 20.0)
        self.touch(world)
        src.flush()
        assert self.touched(world)
        assert self.read(world) == pytest.approx(20.0)


# ------------------------------------------------------------------------ site agent
class TestAgentIngest(MetricSourceContract):
    kind, key = ComputeMetrics.KIND, "MEC-1/video"
    seq = 0

    def make(self, store: SqliteStore) -> MetricSource:
        return IngestCore(store)

    def observe(self, src: MetricSource, value: float) -> None:
        assert isinstance(src, IngestCore)
        self.seq += 1
        body = {"site": "MEC-1", "seq": self.seq, "sent_at": datetime.now(UTC).isoformat(),
                "interval_s": 1.0, "cpu_pct": 30.0,
                "services": [{"service": "video", "util_pct": value, "queue_depth": 1}]}
        src.admit(json.dumps(body).encode(), "MEC-1", "ab" * 32)

    def read(self, store: SqliteStore) -> float:
        m = store.get(ComputeMetrics, self.key)
        assert m is not None
        return m.l0["util_pct"]

    def touch(self, store: SqliteStore) -> None:  # BGP's route metadata meanwhile
        with store.transaction("bgp", "test") as txn:
            txn.put(ComputeMetrics(site="MEC-1", service="video", source="bgp",
                                   l0={"price_per_hour": 7.0, "route_up": 1.0}))

    def touched(self, store: SqliteStore) -> bool:
        m = store.get(ComputeMetrics, self.key)
        return m is not None and m.l0.get("price_per_hour") == 7.0


# ------------------------------------------------------------------------------- BGP
class TestBgpIngest(MetricSourceContract):
    kind, key = ComputeMetrics.KIND, "MEC-1/video"
    cfg = BgpConfig.model_validate({
        "local_as": 65000, "router_id": "10.0.0.1", "listen": {"address": "10.0.0.1"},
        "peers": [{"address": "10.0.0.2", "peer_as": 65001, "site": "MEC-1"}]})

    def make(self, store: SqliteStore) -> MetricSource:
        return BgpIngestCore(self.cfg, store)

    def observe(self, src: MetricSource, value: float) -> None:
        assert isinstance(src, BgpIngestCore)
        src.handle([RouteAnnounced(peer="10.0.0.2", prefix="198.51.100.10/32",
                                   next_hop="10.0.0.2",
                                   metrics=ComputeMetadata(l0={"cpu_pct": value}))])

    def read(self, store: SqliteStore) -> float:
        m = store.get(ComputeMetrics, self.key)
        assert m is not None
        return m.l0["cpu_pct"]

    def touch(self, store: SqliteStore) -> None:  # the site agent reported meanwhile
        with store.transaction("telemetry-ingest", "test") as txn:
            txn.put(ComputeMetrics(site="MEC-1", service="video", source="agent", l2=9.0,
                                   l0={"queue_depth": 3.0, "service_up": 1.0}))

    def touched(self, store: SqliteStore) -> bool:
        m = store.get(ComputeMetrics, self.key)  # the agent's fresher scores win too
        return m is not None and m.l0.get("queue_depth") == 3.0 and m.l2 == 9.0


# ------------------------------------------------------------------------ link probes
class TestLinkProbes(MetricSourceContract):
    kind, key = Link.KIND, "MEC-1~MEC-2"

    def make(self, store: SqliteStore) -> MetricSource:
        src = ProbeComponent([])
        src.store = store  # what start(rt) sets; no sockets needed for the contract
        return src

    def observe(self, src: MetricSource, value: float) -> None:
        assert isinstance(src, ProbeComponent)
        src.observe(self.key, LinkSample(value, 0.5, 0.0, 10, 10))

    def read(self, store: SqliteStore) -> float:
        link = store.get(Link, self.key)
        assert link is not None
        return link.delay_ms

    def touch(self, store: SqliteStore) -> None:  # the operator edits the capacity
        link = store.get(Link, self.key)
        assert link is not None
        with store.transaction("operator", "test") as txn:
            txn.put(link.model_copy(update={"capacity_mbps": 777.0}))

    def touched(self, store: SqliteStore) -> bool:
        link = store.get(Link, self.key)
        return link is not None and link.capacity_mbps == 777.0


def test_a_probe_never_creates_a_link_nor_rewrites_an_unmoved_one(store: SqliteStore
                                                                    ) -> None:
    from telemetry.precedence import merge

    link = Link(a="A", b="B", delay_ms=5.0)
    assert merge(None, link) is None
    assert merge(link, link.model_copy(update={"delay_ms": 5.004})) is None
    moved = merge(link.model_copy(update={"capacity_mbps": 10.0}),
                  link.model_copy(update={"delay_ms": 7.0}))
    assert isinstance(moved, Link) and moved.delay_ms == 7.0 and moved.capacity_mbps == 10.0


def test_a_commit_conflicting_with_another_controller_is_merged_again(
        store: SqliteStore) -> None:
    """Issue 16: on etcd a commit fails with StoreConflict when another controller wrote
    one of its records between read and commit; it is merged again against the newer
    value (never dropped, never overwriting it)."""
    from datetime import timedelta

    from controller.store import StoreConflict
    from telemetry.source import commit

    with store.transaction("test", "seed") as txn:
        txn.put(Site(name="MEC-1", kind=SiteKind.MEC, region="r"))
    mine = ComputeMetrics(site="MEC-1", service="video", source="agent", l2=5.0,
                          l0={"util_pct": 50.0})
    theirs = mine.model_copy(update={"l2": 2.0, "l0": {"util_pct": 80.0},
                                     "updated_at": mine.updated_at + timedelta(seconds=1)})
    real = store.transaction
    calls = []

    def racing(actor: str, reason: str = "") -> object:
        calls.append(actor)
        if len(calls) == 1:  # the other controller commits first: our txn conflicts
            with real("telemetry-ingest@c2", "site agent reports") as txn:
                txn.put(theirs)
            raise StoreConflict("metrics 'MEC-1/video' changed under this write")
        return real(actor, reason)

    store.transaction = racing  # type: ignore[method-assign]
    assert commit(store, "telemetry-ingest", "site agent reports", [mine]) == []
    assert len(calls) == 2 and store.get(ComputeMetrics, "MEC-1/video") == theirs
