"""BGP events → ComputeMetrics in the store; generated ExaBGP config (issue #3)."""

from __future__ import annotations

import itertools
from ipaddress import ip_address

import pytest

from controller.models import ComputeMetrics, Service, Site, SiteKind
from controller.store import SqliteStore
from telemetry.bgp.codec import ComputeMetadata
from telemetry.bgp.decoder import (
    PeerDown,
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


def test_ipv6_and_covering_prefix_map_to_service(core: BgpIngestCore,
                                                 store: SqliteStore) -> None:
    core.handle([_ann("10.0.0.2", prefix="2001:db8:a::1/128", l2=6.0),
                 _ann("10.0.0.3", prefix="198.51.100.0/24", l2=4.0)])
    core.flush()
    assert _get(store, "MEC-1/ai").l2 == 6.0 and _get(store, "MEC-2/video").l2 == 4.0


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
