"""DNS answers follow placements (issue 14, GBA-6.5h): pins, per-placement names,
release, and a failed network part that is not half-applied through DNS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.models import Entity, Job, JobSpec, JobState
from controller.store.base import Action, Change
from dns_compute.keeper import ZoneKeeper
from dns_compute.models import Placement
from dns_compute.ranking import placed_first, placement_of
from dns_compute.zone import build_zone
from scheduler.decisions import NetworkPart, SchedulingDecision
from tests.dns_compute.test_zone import zone_input
from tests.dns_compute.topo import ZONE, dns_section, entities

BASE = "video.svc.cpn.example."


def ch(kind: str, key: str, value: Entity | None) -> Change:
    return Change(Action.DELETE if value is None else Action.UPDATE, kind, key, value, None)


def answers(placements: list[Placement]) -> dict[str, tuple[str, ...]]:
    inp = zone_input(entities())
    z = build_zone(type(inp)(**{**inp.__dict__, "placements": placements}))
    stg = z.steering[BASE]
    out = {str(s.prefix): b["A"].rdatas for s, b in zip(stg.subnets, stg.buckets,
                                                         strict=True)}
    out["default"] = z.rrsets[(BASE, "A")].rdatas
    for (name, rdtype), rr in z.rrsets.items():
        if ".place." in name and rdtype == "A":
            out[name] = rr.rdatas
    return out


def decision(site: str | None = "MEC-2", network: str | None = None,
             **kw: object) -> SchedulingDecision:
    return SchedulingDecision.model_validate({
        "subject_kind": "flow", "subject": "cam-1", "code": "success", "site": site,
        "service": "video", "inputs": {"origin": "R2"},
        "network": {"state": network} if network else None, **kw})


def test_placement_pins_the_origins_subnet_and_names_itself() -> None:
    before = answers([])
    assert before["10.0.0.0/24"] == ("10.0.1.10",)  # ranking: R2 is next to MEC-1
    p = placement_of(decision("MEC-2"))
    assert p is not None
    after = answers([p])
    assert after["10.0.0.0/24"] == ("10.0.2.10",)  # behind the origin: the placed site
    assert after["10.0.1.0/24"] == before["10.0.1.0/24"]  # other origins: ranking
    assert after["default"] == before["default"]  # no location (and Knot): ranking
    assert after["cam-1.flow.place.cpn.example."] == ("10.0.2.10",)
    # released (no placement any more): back to the ranking, the name is gone
    assert answers([]) == before


def test_failed_network_part_is_not_followed_and_no_service_no_pin() -> None:
    assert placement_of(decision(network="failed")) is None
    assert placement_of(decision(network="pending")) is not None
    assert placement_of(decision(service=None)) is None
    assert placement_of(decision(site=None, code="unschedulable")) is None
    assert placement_of(decision(inputs={})) is None


def test_latest_placement_of_a_service_and_origin_wins() -> None:
    now = datetime.now(UTC)
    a = placement_of(decision("MEC-1", decided_at=now))
    b = placement_of(decision("MEC-2", subject="cam-2", decided_at=now + timedelta(seconds=1)))
    assert a is not None and b is not None
    got = answers([a, b])
    assert got["10.0.0.0/24"] == ("10.0.2.10",)
    assert got["cam-1.flow.place.cpn.example."] == ("10.0.1.10",)  # each its own name
    assert got["cam-2.flow.place.cpn.example."] == ("10.0.2.10",)


def test_unknown_site_or_bad_label_changes_nothing() -> None:
    before = answers([])
    p = Placement("flow", "cam 1/x", "video", "R2", "NOWHERE")
    assert answers([p]) == before


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["MEC-1", "MEC-2", "X"]), max_size=6), st.sampled_from(
    ["MEC-1", "MEC-2", "X"]))
def test_property_placed_first_keeps_every_candidate(sites: list[str], site: str) -> None:
    from scheduler.ranking import Candidate

    ranked = [Candidate(s, f"10.0.0.{i}", 1.0, None, None, eligible=i % 2 == 0)
              for i, s in enumerate(sites)]
    got = placed_first(ranked, site, "flow:x")
    assert sorted(c.address for c in got) == sorted(c.address for c in ranked)
    n = sum(1 for c in ranked if c.site == site)
    assert all(c.site == site and c.eligible for c in got[:n])
    assert [c.address for c in got[n:]] == [c.address for c in ranked if c.site != site]


def test_keeper_follows_decisions_and_job_holding_without_needless_rebuilds() -> None:
    keeper = ZoneKeeper(ZONE, dns_section())
    keeper.load(entities())
    keeper.rebuild()
    dec = decision("MEC-2", subject_kind="job", subject="j1")
    job = Job(id="j1", tenant="t", owner="o", spec=JobSpec(name="j1"),
              state=JobState.QUEUED)
    assert keeper.apply([ch("scheduling-decision", dec.key, dec)])
    assert keeper.placements() == []  # a job's placement counts while it holds its place
    assert not keeper.apply([ch("job", "j1", job)])
    running = job.model_copy(update={"state": JobState.RUNNING})
    assert keeper.apply([ch("job", "j1", running)])
    v = keeper.rebuild()
    assert v is not None and "j1.job.place.cpn.example." in v.changed
    assert not keeper.apply([ch("job", "j1", running)])  # no change: no rebuild
    done = job.model_copy(update={"state": JobState.FINISHED})
    assert keeper.apply([ch("job", "j1", done)])
    assert keeper.placements() == []
    v = keeper.rebuild()
    assert v is not None and "j1.job.place.cpn.example." in v.changed
    assert keeper.apply([ch("scheduling-decision", dec.key, None)])
    failed = dec.model_copy(update={"network": NetworkPart(state="failed")})
    assert not keeper.apply([ch("scheduling-decision", dec.key, failed)])


def test_knot_gets_the_placement_name_and_loses_it_on_release(tmp_path: Path) -> None:
    """The per-placement name reaches the external primary (RFC 2136 to a real Knot):
    answered there while the placement holds, NXDOMAIN after it is released."""
    import asyncio

    import dns.message
    import dns.query
    import dns.rcode

    from labs.knot import KnotServer, free_port, knotd_path
    from tests.dns_compute.test_publisher import knot_publisher

    if knotd_path() is None:
        pytest.skip("needs knotd")
    name = "cam-1.flow.place.cpn.example."
    keeper = ZoneKeeper(ZONE, dns_section())
    keeper.load(entities())
    dec = decision("MEC-2")
    keeper.load([dec])

    def ask(port: int) -> tuple[str, list[str]]:
        r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                          timeout=2)
        return dns.rcode.to_text(r.rcode()), sorted(
            rd.to_text() for rrset in r.answer for rd in rrset)

    with KnotServer(tmp_path / "primary", free_port()) as k:
        pub = knot_publisher(k)
        v = keeper.rebuild()
        assert v is not None
        asyncio.run(pub.sync(v.zone))
        assert ask(k.port) == ("NOERROR", ["10.0.2.10"])
        assert keeper.apply([ch("scheduling-decision", dec.key, None)])
        v = keeper.rebuild()
        assert v is not None and name in v.changed
        asyncio.run(pub.sync(v.zone))
        assert ask(k.port)[0] == "NXDOMAIN"
