"""BGP events → ComputeMetrics in the store; generated ExaBGP config (issue #3)."""

from __future__ import annotations

import itertools
from ipaddress import ip_address

import pytest

from controller.models import (
    ComputeMetrics,
    Service,
    ServiceContactInstance,
    Site,
    SiteKind,
)
from controller.store import SqliteStore
from telemetry.bgp.codec import ComputeMetadata
from telemetry.bgp.decoder import (
    PeerDown,
    PeerUp,
    Rejected,
    RouteAnnounced,
    RouteWithdrawn,
    SpeakerShutdown,
)
from telemetry.bgp.ingest import BgpIngestCore
from telemetry.bgp.models import BgpConfig
from telemetry.bgp.speaker import exabgp_env, render_config

CFG = BgpConfig.model_validate({
    "local_as": 65000, "router_id": "10.0.0.1", "listen": {"address": "10.0.0.1"},
    "peers": [{"address": "10.0.0.2", "peer_as": 65001, "site": "MEC-1"},
              {"address": "10.0.0.3", "peer_as": 65002, "site": "MEC-2"}]})
VIDEO = "198.51.100.10/32"


@pytest.fixture
def core(store: SqliteStore) -> BgpIngestCore:
    with store.transaction("test", "seed") as txn:
        for s in ("MEC-1", "MEC-2"):
            txn.put(Site(name=s, kind=SiteKind.MEC, region="r"))
        txn.put(Service(name="video", anycast=[ip_address("198.51.100.10")]))
        txn.put(Service(name="ai", anycast=[ip_address("2001:db8:a::1")]))
    return BgpIngestCore(CFG, store)


def _ann(peer: str, prefix: str = VIDEO, **md: object) -> RouteAnnounced:
    return RouteAnnounced(peer=peer, prefix=prefix, next_hop=peer,
                          metrics=ComputeMetadata(**md))  # type: ignore[arg-type]


def _get(store: SqliteStore, key: str) -> ComputeMetrics:
    m = store.get(ComputeMetrics, key)
    assert m is not None
    return m


def test_announce_withdraw_and_session_down(core: BgpIngestCore, store: SqliteStore) -> None:
    core.handle([_ann("10.0.0.2", l2=8.5, l0={"cpu_pct": 20.0}),
                 _ann("10.0.0.3", l0={"cpu_pct": 95.0, "util_pct": 90.0})])
    assert core.flush() == 2
    m1, m2 = _get(store, "MEC-1/video"), _get(store, "MEC-2/video")
    assert (m1.l2, m1.source, m1.available, m1.stale) == (8.5, "bgp", True, False)
    assert m2.overloaded and m2.l2 < 2.0  # computed by telemetry.cats from L0
    core.handle([RouteWithdrawn(peer="10.0.0.2", prefix=VIDEO)])
    core.flush()
    assert not _get(store, "MEC-1/video").available
    assert _get(store, "MEC-1/video").l2 == 8.5  # last scores kept
    core.handle([PeerDown(peer="10.0.0.3", reason="hold timer expired")])
    core.flush()
    assert _get(store, "MEC-2/video").stale and not _get(store, "MEC-1/video").stale


def test_updates_coalesce_per_site_service(core: BgpIngestCore, store: SqliteStore) -> None:
    seq0 = store.last_seq()
    core.handle([_ann("10.0.0.2", l2=float(i)) for i in range(10)])
    assert core.flush() == 1
    assert _get(store, "MEC-1/video").l2 == 9.0
    assert store.last_seq() == seq0 + 1


def test_bad_input_keeps_last_good_state(core: BgpIngestCore, store: SqliteStore) -> None:
    core.handle([_ann("10.0.0.2", l2=7.0)])
    core.flush()
    core.handle([Rejected(peer="10.0.0.2", reason="unknown metric id 77"),
                 _ann("10.9.9.9", l2=1.0),  # not a configured peer
                 _ann("10.0.0.2", prefix="203.0.113.0/24", l2=1.0)])  # no such service
    assert core.flush() == 0
    assert _get(store, "MEC-1/video").l2 == 7.0
    assert core.stats["rejected"] == 2 and core.stats["unmapped"] == 1


def _host_video_at(store: SqliteStore, *sites: str) -> None:
    with store.transaction("test", "instances") as txn:
        txn.put(Service(name="video", anycast=[ip_address("198.51.100.10")],
                        instances=[ServiceContactInstance(site=s, address=ip_address(
                            f"10.9.{i}.10")) for i, s in enumerate(sites)]))


def test_ipv6_and_covering_prefix_map_to_service(core: BgpIngestCore,
                                                 store: SqliteStore) -> None:
    _host_video_at(store, "MEC-2")
    core.services_changed()
    core.handle([_ann("10.0.0.2", prefix="2001:db8:a::1/128", l2=6.0),
                 _ann("10.0.0.3", prefix="198.51.100.0/24", l2=4.0)])
    core.flush()
    assert _get(store, "MEC-1/ai").l2 == 6.0 and _get(store, "MEC-2/video").l2 == 4.0


def test_covering_route_creates_no_metrics_for_services_not_hosted(
        core: BgpIngestCore, store: SqliteStore) -> None:
    """Issue #15: 0.0.0.0/0 with metadata from MEC-1 must not invent MEC-1/video (the
    site hosts no instance of it), nor MEC-1/ai."""
    core.handle([_ann("10.0.0.2", prefix="0.0.0.0/0", l2=9.0),
                 _ann("10.0.0.2", prefix="::/0", l2=9.0)])
    core.flush()
    assert store.list(ComputeMetrics) == []
    assert core.routes("10.0.0.2") == 2  # kept in the RIB all the same
    _host_video_at(store, "MEC-1")  # now MEC-1 hosts video: the default route speaks for it
    core.services_changed()
    core.flush()
    assert _get(store, "MEC-1/video").l2 == 9.0
    assert store.get(ComputeMetrics, "MEC-1/ai") is None


def test_covering_withdraw_keeps_still_advertised_host_route_available(
        core: BgpIngestCore, store: SqliteStore) -> None:
    """Issue #15: withdrawing a covering route must not make the site's /32 for the
    service unavailable (DNS moved away from the site)."""
    _host_video_at(store, "MEC-1")
    core.services_changed()
    core.handle([_ann("10.0.0.2", prefix="0.0.0.0/0", l2=2.0),
                 _ann("10.0.0.2", prefix=VIDEO, l2=8.0)])
    core.flush()
    assert _get(store, "MEC-1/video").l2 == 8.0  # the most specific route speaks
    core.handle([RouteWithdrawn(peer="10.0.0.2", prefix="0.0.0.0/0")])
    core.flush()
    m = _get(store, "MEC-1/video")
    assert m.available and m.l2 == 8.0
    # the host route goes while a covering route is there: the covering route (the
    # site hosts video) takes over; when it goes too, the instance is unavailable
    core.handle([_ann("10.0.0.2", prefix="0.0.0.0/0", l2=2.0),
                 RouteWithdrawn(peer="10.0.0.2", prefix=VIDEO)])
    core.flush()
    m = _get(store, "MEC-1/video")
    assert m.available and m.l2 == 2.0
    core.handle([RouteWithdrawn(peer="10.0.0.2", prefix="0.0.0.0/0")])
    core.flush()
    assert not _get(store, "MEC-1/video").available


def test_implicit_withdraw_replaces_the_whole_metric_set(core: BgpIngestCore,
                                                         store: SqliteStore) -> None:
    """Issue #15: a replacing UPDATE without gpu_free must not leave the old gpu_free."""
    core.handle([_ann("10.0.0.2", l0={"cpu_pct": 20.0, "gpu_free": 4.0})])
    core.flush()
    assert _get(store, "MEC-1/video").l0["gpu_free"] == 4.0
    core.handle([_ann("10.0.0.2", l0={"cpu_pct": 30.0})])
    core.flush()
    m = _get(store, "MEC-1/video")
    assert "gpu_free" not in m.l0 and m.l0["cpu_pct"] == 30.0 and m.l0["route_up"] == 1.0
    # coalesced: two replacements before one commit retract what the first carried
    core.handle([_ann("10.0.0.2", l0={"cpu_pct": 30.0, "mem_pct": 5.0}),
                 _ann("10.0.0.2", l0={"energy_w": 100.0})])
    core.flush()
    assert set(_get(store, "MEC-1/video").l0) == {"energy_w", "route_up"}


def test_advertised_l1_feeds_l2(core: BgpIngestCore, store: SqliteStore) -> None:
    """Issue #15: an L1-only route gave L2 = 0."""
    core.handle([_ann("10.0.0.2", l1={"compute_norm": 1.0, "service_norm": 1.0,
                                      "communication_norm": 1.0})])
    core.flush()
    assert _get(store, "MEC-1/video").l2 == 10.0


def test_duplicate_metric_id_is_a_warning(core: BgpIngestCore, store: SqliteStore,
                                          caplog: pytest.LogCaptureFixture) -> None:
    ann = RouteAnnounced(peer="10.0.0.2", prefix=VIDEO, next_hop="10.0.0.2",
                         metrics=ComputeMetadata(l2=5.0, warnings=("metric id 1 twice",)))
    with caplog.at_level("WARNING", logger="cpn.telemetry.bgp"):
        core.handle([ann])
    core.flush()
    assert _get(store, "MEC-1/video").l2 == 5.0 and core.stats["warnings"] == 1
    assert any("metric id 1 twice" in r.getMessage() for r in caplog.records)


def test_per_peer_counters(core: BgpIngestCore) -> None:
    core.handle([PeerUp(peer="10.0.0.2", peer_as=65001), _ann("10.0.0.2"),
                 _ann("10.0.0.2", prefix="203.0.113.0/24"),
                 RouteWithdrawn(peer="10.0.0.2", prefix="203.0.113.0/24"),
                 Rejected(peer="10.0.0.2", reason="x"), Rejected(peer="", reason="y")])
    st = core.peers["10.0.0.2"]
    assert (st.up, st.updates, st.rejected, core.routes("10.0.0.2")) == (True, 3, 1, 1)
    assert core.peers["unknown"].rejected == 1 and not core.peers["10.0.0.3"].up
    core.handle([PeerDown(peer="10.0.0.2", reason="hold timer expired")])
    assert not core.peers["10.0.0.2"].up and core.routes("10.0.0.2") == 0


def test_restart_marks_stored_bgp_records_stale(core: BgpIngestCore,
                                                store: SqliteStore) -> None:
    core.handle([_ann("10.0.0.2", l2=5.0)])
    core.flush()
    again = BgpIngestCore(CFG, store)
    again.flush()
    assert _get(store, "MEC-1/video").stale
    again.handle([_ann("10.0.0.2", l2=5.0)])
    again.flush()
    assert not _get(store, "MEC-1/video").stale
    again.handle([SpeakerShutdown()])
    again.flush()
    assert _get(store, "MEC-1/video").stale


def test_config_refuses_duplicates_and_unknown_codec() -> None:
    base = CFG.model_dump(mode="json")
    with pytest.raises(ValueError, match="listed twice"):
        BgpConfig.model_validate({**base, "peers": base["peers"] + base["peers"][:1]})
    with pytest.raises(ValueError, match="unknown codec"):
        BgpConfig.model_validate({**base, "codec": "nope"})
    with pytest.raises(ValueError, match="extra"):
        BgpConfig.model_validate({**base, "peer": []})


def test_rendered_exabgp_config() -> None:
    text = render_config(CFG, "/usr/bin/python3 /x/forward.py /tmp/s.sock")
    assert "run /usr/bin/python3 /x/forward.py /tmp/s.sock;" in text
    assert text.count("neighbor 10.0.0.") == 2
    assert "peer-as 65002;" in text and "local-address 10.0.0.1;" in text
    assert "receive { parsed; update; }" in text and "neighbor-changes;" in text
    env = exabgp_env(CFG)
    assert env["exabgp.daemon.user"] == "root" and env["exabgp.tcp.bind"] == "10.0.0.1"


def test_flood_flush_yields_to_the_loop_between_batches(store: SqliteStore) -> None:
    """A flood of updates is committed in batches with the loop free in between."""
    import asyncio

    from telemetry.plugin_bgp import BgpComponent

    with store.transaction("test", "seed") as txn:
        txn.put(Site(name="MEC-1", kind=SiteKind.MEC, region="r"))
        for i in range(50):
            txn.put(Service(name=f"s{i}", anycast=[ip_address(f"100.64.0.{i}")]))
    cfg = CFG.model_copy(update={"batch": 10, "flush_ms": 0.0})
    comp = BgpComponent(cfg)
    comp.core = BgpIngestCore(cfg, store)
    comp.core.handle([_ann("10.0.0.2", prefix=f"100.64.0.{i}/32", l2=1.0) for i in range(50)])
    trace: list[str] = []
    real_flush = comp.core.flush

    def flush(limit: int | None = None) -> int:
        n = real_flush(limit)
        trace.append(f"flush{n}")
        return n

    comp.core.flush = flush  # type: ignore[method-assign]

    async def main() -> None:
        comp._dirty = asyncio.Event()
        task = asyncio.create_task(comp._flush_loop())
        comp._dirty.set()
        for _ in range(12):
            trace.append("tick")
            await asyncio.sleep(0)
        task.cancel()

    asyncio.run(main())
    flushes = [i for i, t in enumerate(trace) if t == "flush10"]
    assert len(flushes) == 5
    # another coroutine ran between every two batch commits
    assert all("tick" in trace[a:b] for a, b in itertools.pairwise(flushes))
    assert len(store.list(ComputeMetrics)) == 50


def test_bgp_section_in_controller_config() -> None:
    from controller.config import parse_config
    from controller.errors import ValidationError

    text = """
zone: cpn.example
sites:
  - {name: MEC-1, kind: mec, region: r}
bgp:
  local_as: 65000
  router_id: 10.0.0.1
  peers:
    - {address: 10.0.0.2, peer_as: 65001, site: MEC-1}
"""
    cfg = parse_config(text)
    sec = cfg.sections["bgp"]
    assert isinstance(sec, BgpConfig) and sec.site_of("10.0.0.2") == "MEC-1"
    with pytest.raises(ValidationError, match="peer_as"):
        parse_config(text.replace("peer_as: 65001", "peer_as: 0"))


def test_rejection_flood_does_not_flood_the_log(core: BgpIngestCore,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="cpn.telemetry.bgp"):
        core.handle([Rejected(peer="10.0.0.2", reason=f"bad {i}", ts=100.0) for i in range(50)])
        core.handle([Rejected(peer="10.0.0.2", reason="later", ts=111.0)])
    texts = [r.getMessage() for r in caplog.records]
    assert core.stats["rejected"] == 51
    assert sum(t.startswith("bgp input rejected") for t in texts) == 21
    assert "bgp: 30 further rejections not logged" in texts


def test_in_a_cluster_only_the_leader_commits_bgp_followers_stay_warm(
        core: BgpIngestCore, store: SqliteStore) -> None:
    """Issue 16: every controller keeps its BGP sessions and RIB, only the leader
    commits (BGP has no timestamps: two replicas committing one announce/withdraw
    sequence interleaved could bring a withdrawn route back). On election the replica
    commits what its sessions derived at once; on step-down it stops."""
    import asyncio
    from types import SimpleNamespace
    from typing import Any

    from telemetry.plugin_bgp import BgpComponent

    duties: list[tuple[str, Any, Any]] = []
    rt = SimpleNamespace(leadership=SimpleNamespace(elected=True),
                         when_leading=lambda n, a, b: duties.append((n, a, b)))
    comp = BgpComponent(CFG.model_copy(update={"flush_ms": 0.0}))
    comp.core = core

    async def main() -> None:
        comp.join_cluster(rt)  # what start() does about leadership (no ExaBGP here)
        comp._dirty = asyncio.Event()
        task = asyncio.create_task(comp._flush_loop())
        core.handle([PeerUp(peer="10.0.0.2"), _ann("10.0.0.2", l2=8.0)])
        comp._dirty.set()
        await asyncio.sleep(0.05)
        assert store.get(ComputeMetrics, "MEC-1/video") is None, "a follower committed"
        assert core.backlog() == 1
        name, lead, follow = duties[0]
        assert name == "bgp-ingest"
        await lead()
        await asyncio.sleep(0.05)
        assert _get(store, "MEC-1/video").l2 == 8.0 and core.backlog() == 0
        await follow()
        core.handle([RouteWithdrawn(peer="10.0.0.2", prefix=VIDEO)])
        comp._dirty.set()
        await asyncio.sleep(0.05)
        assert _get(store, "MEC-1/video").available, "stepped down, yet committed"
        task.cancel()

    asyncio.run(main())
