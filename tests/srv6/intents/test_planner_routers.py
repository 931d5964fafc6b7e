"""Planning for a headend bound to ``bgp-sr-policy`` (issue 13 item 6): the intent becomes
SR policy candidate paths, not kernel routes; what such a router cannot do is refused
naming the constraint and the fix."""

from __future__ import annotations

from dataclasses import replace

from controller.models import Link
from srv6.dataplane.state import Seg6LocalRoute, Seg6Route, SrPolicyRoute
from srv6.intents.planner import Binding, Egress, plan_intents
from srv6.models import Constraints, SrPolicyIntent
from srv6.paths import Topology
from tests.srv6.topos import routers

from .helpers import binding

LOOP3 = "fc00:0:3::1"


def ring(n: int = 6) -> Topology:
    links = [Link(a=f"R{i}", b=f"R{i % n + 1}", delay_ms=1.0) for i in range(1, n + 1)]
    return Topology.build(links, routers(n))


def intent(h: str = "R1", e: str = "R3", **c: object) -> SrPolicyIntent:
    return SrPolicyIntent(headend=h, endpoint=e, color=100, name="video",
                          constraints=Constraints.model_validate(c))


def router_binding(topo: Topology, routers_: tuple[str, ...] = ("R1",)) -> Binding:
    return replace(binding(topo), routers=routers_, addresses={"R3": LOOP3})


def test_router_headend_gets_primary_and_backup_candidate_paths() -> None:
    topo = ring()
    b = router_binding(topo)
    p = plan_intents(topo, [intent()], b)
    ip = p.intents["R1~100~R3"]
    assert ip.ok and ip.active is not None and ip.backup is not None
    assert not [r for r in p.nodes["R1"] if isinstance(r, Seg6Route)]
    pols = sorted((r for r in p.nodes["R1"] if isinstance(r, SrPolicyRoute)),
                  key=lambda r: r.distinguisher)
    assert [(r.color, r.endpoint, r.distinguisher, r.preference, r.name, r.path_name)
            for r in pols] == [(100, LOOP3, 0, 100, "video", "primary"),
                               (100, LOOP3, 1, 99, "video", "backup")]
    primary, backup = (r.segment_lists[0] for r in pols)
    assert list(primary.sids) == ip.active.segments
    assert list(backup.sids) == ip.backup.segments
    assert [s.behavior for s in primary.segments] == ["End", "End.DX4"]
    # the rest of the path is still programmed: transit End SIDs and the egress End.DX4
    assert any(isinstance(r, Seg6LocalRoute) and r.action == "End" for r in p.nodes["R2"])
    assert any(isinstance(r, Seg6LocalRoute) and r.action == "End.DX4" for r in p.nodes["R3"])


def test_path_across_a_router_is_refused_unless_it_is_excluded() -> None:
    topo = ring()
    b = router_binding(topo, ("R1", "R2"))
    ip = plan_intents(topo, [intent()], b).intents["R1~100~R3"]
    assert not ip.ok and ip.constraint == "device" and ip.device == "R2"
    assert "exclude_nodes" in ip.fix
    ok = plan_intents(topo, [intent(exclude_nodes=["R2"])], b).intents["R1~100~R3"]
    assert ok.ok and ok.active is not None and "R2" not in ok.active.hops


def test_router_endpoint_missing_loopback_and_two_families_are_refused() -> None:
    topo = ring()
    at_router = plan_intents(topo, [intent()], router_binding(topo, ("R1", "R3")))
    assert at_router.intents["R1~100~R3"].constraint == "device"
    no_loop = replace(router_binding(topo), addresses={})
    ip = plan_intents(topo, [intent()], no_loop).intents["R1~100~R3"]
    assert not ip.ok and ip.constraint == "endpoint" and "loopback" in ip.fix
    b = router_binding(topo)
    e = b.egress["R3"]
    both = replace(b, egress={**b.egress, "R3": Egress(
        e.dev, {"10.3.0.0/24": 100, "fd00:3::/64": 100}, e.nh4, e.nh6, e.sid4, e.sid6)})
    ip = plan_intents(topo, [intent()], both).intents["R1~100~R3"]
    assert not ip.ok and ip.constraint == "prefixes" and "colour" in ip.fix
    assert not any(isinstance(r, SrPolicyRoute)
                   for r in plan_intents(topo, [intent()], both).nodes["R1"])
