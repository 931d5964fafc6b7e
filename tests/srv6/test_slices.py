"""Slice admission (GBA-6.4.3f): guarantees never exceed links, refusals name the
constraint and link, HTB classes and policies for the dataplane."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.errors import ConflictError, ValidationError
from controller.models import Link
from srv6.models import Slice, SliceFlow
from srv6.paths import Topology
from srv6.slices import BEST_EFFORT_CLASSID, admit, plan_slices
from tests.srv6.topos import build, n_nodes, random_links, routers


def topo() -> Topology:
    #  R1 -1000- R2 -1000- R3, R1 -400- R4 -400- R3 (slower: 5 ms each)
    return Topology.build([
        Link(a="R1", b="R2", capacity_mbps=1000, delay_ms=1),
        Link(a="R2", b="R3", capacity_mbps=1000, delay_ms=1),
        Link(a="R1", b="R4", capacity_mbps=400, delay_ms=5, igp_metric=20),
        Link(a="R4", b="R3", capacity_mbps=400, delay_ms=5, igp_metric=20),
    ], routers(4))


def sl(name: str, color: int, mbps: float, delay: float | None = None,
       flows: tuple[tuple[str, str], ...] = (("R1", "R3"),)) -> Slice:
    return Slice(name=name, color=color, guaranteed_mbps=mbps, max_delay_ms=delay,
                 flows=[SliceFlow(headend=a, endpoint=b) for a, b in flows])


def test_admission_books_and_spills_to_other_path() -> None:
    plan = plan_slices(topo(), [sl("video", 10, 700), sl("ai", 20, 300)])
    assert all(a.admitted for a in plan.admissions)
    assert plan.admission("video").paths[0].hops == ["R1", "R2", "R3"]
    assert plan.admission("ai").paths[0].hops == ["R1", "R2", "R3"]
    assert plan.reserved == {"R1~R2": 1000, "R2~R3": 1000}
    third = plan_slices(topo(), [sl("video", 10, 700), sl("ai", 20, 300),
                                 sl("iot", 30, 100)])
    assert third.admission("iot").paths[0].hops == ["R1", "R4", "R3"]


def test_refusal_names_constraint_and_links() -> None:
    with pytest.raises(ConflictError, match=r"slice big refused: min_bandwidth_mbps") as exc:
        admit(topo(), [sl("video", 10, 700)], sl("big", 20, 500, delay=3))
    assert "links: R1~R2, R2~R3" in str(exc.value)
    with pytest.raises(ConflictError, match="max_delay_ms"):
        admit(topo(), [], sl("fast", 20, 10, delay=1))


def test_refused_slice_leaves_no_booking_and_others_keep_theirs() -> None:
    two_flows = sl("multi", 20, 500, flows=(("R1", "R3"), ("R2", "R3")))
    plan = plan_slices(topo(), [sl("video", 10, 600), two_flows])
    assert not plan.admission("multi").admitted
    assert plan.reserved == {"R1~R2": 600, "R2~R3": 600}
    assert {p.slice for p in plan.policies} == {"video"}


def test_htb_classes_per_direction() -> None:
    plan = plan_slices(topo(), [sl("video", 10, 700), sl("ai", 0x20, 200)])
    r1 = [c for c in plan.htb if c.node == "R1"]
    assert {(c.classid, c.rate_mbps, c.ceil_mbps) for c in r1} == {
        ("1:a", 700, 1000), ("1:20", 200, 1000), (BEST_EFFORT_CLASSID, 100, 1000)}
    assert {c.peer for c in r1} == {"R2"}
    assert not [c for c in plan.htb if c.node == "R3"]  # egress only where traffic leaves


def test_slice_with_a_delay_bound_gets_htb_priority_0() -> None:
    plan = plan_slices(topo(), [sl("video", 10, 300, delay=5), sl("ai", 0x20, 200)])
    prio = {c.slice: c.prio for c in plan.htb if c.node == "R1"}
    assert prio == {"video": 0, "ai": 1, "best-effort": 1}


def test_policies_carry_slice_colour_and_segments() -> None:
    plan = plan_slices(topo(), [sl("video", 10, 100)])
    (pol,) = plan.policies
    assert pol.key == "R1~10~R3" and pol.slice == "video"
    active = pol.active_path()
    assert active is not None and active.segment_lists[0].links == ["R1~R2", "R2~R3"]


def test_bad_slices_are_errors() -> None:
    with pytest.raises(ValidationError, match="already slice 'a'"):
        plan_slices(topo(), [sl("a", 10, 1), sl("b", 10, 1)])
    plan = plan_slices(topo(), [sl("huge", 0x10000, 1)])
    assert plan.admissions[0].failed_constraint == "color"


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_guarantees_never_exceed_available(data: st.DataObject) -> None:
    links: list[Link] = data.draw(random_links())
    t = build(links)
    n = n_nodes(links)
    slices = [sl(f"s{i}", 10 + i, data.draw(st.floats(1, 3000)),
                 flows=((f"R{data.draw(st.integers(1, n))}", f"R{n}"),))
              for i in range(data.draw(st.integers(1, 6)))]
    slices = [s for s in slices if s.flows[0].headend != s.flows[0].endpoint]
    plan = plan_slices(t, slices)
    for key, mbps in plan.reserved.items():
        assert mbps <= t.edges[t.edge_by_key[key]].available_mbps + 1e-6
    for c in plan.htb:
        assert 0 < c.rate_mbps <= c.ceil_mbps
