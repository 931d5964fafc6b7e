"""The intent planning core (pure, GBA-6.4.3c): plans are whole or absent, converge in
one application, and re-applying changes nothing; infeasible intents name the
constraint."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.models import Link
from srv6.dataplane.state import NodeState, Seg6LocalRoute, Seg6Route
from srv6.intents.planner import Binding, Egress, Plan, apply_ops, plan_intents, reconcile
from srv6.models import Constraints, SrPolicyIntent
from srv6.paths import Topology
from tests.srv6.topos import build, random_links, routers

from .helpers import binding


def ring(n: int = 6) -> Topology:
    links = [Link(a=f"R{i}", b=f"R{i % n + 1}", delay_ms=1.0) for i in range(1, n + 1)]
    return Topology.build(links, routers(n))


def intent(h: str, e: str, color: int = 100, **c: object) -> SrPolicyIntent:
    return SrPolicyIntent(headend=h, endpoint=e, color=color,
                          constraints=Constraints.model_validate(c))


def converge(plan: Plan, start: dict[str, NodeState]) -> dict[str, NodeState]:
    ops = reconcile(plan.nodes, start)
    return {n: apply_ops(start.get(n, NodeState()), ops.get(n, []))
            for n in set(plan.nodes) | set(start)}


def test_one_intent_renders_headend_transit_and_egress() -> None:
    topo = ring()
    b = binding(topo)
    p = plan_intents(topo, [intent("R1", "R3")], b)
    ip = p.intents["R1~100~R3"]
    assert ip.ok and ip.active is not None
    assert ip.active.hops == ["R1", "R2", "R3"]
    r2_sid = str(topo.node_sids[topo.index["R2"]])
    assert ip.active.segments == [r2_sid, b.egress["R3"].sid4]
    head = [r for r in p.nodes["R1"] if isinstance(r, Seg6Route) and not r.backup]
    assert [(r.dst, list(r.segments), r.dev) for r in head] == [
        ("10.3.0.0/24", ip.active.segments, "if-R1~R2")]
    assert Seg6LocalRoute(sid=r2_sid, action="End", dev="lo") in p.nodes["R2"]
    dx4 = [r for r in p.nodes["R3"] if isinstance(r, Seg6LocalRoute)]
    assert [(r.action, r.nh4, r.dev) for r in dx4] == [("End.DX4", "10.3.0.2", "ehost")]


def test_protected_intent_preinstalls_a_disjoint_backup_one_metric_higher() -> None:
    topo = ring()
    p = plan_intents(topo, [intent("R1", "R3")], binding(topo))
    ip = p.intents["R1~100~R3"]
    assert ip.backup is not None and ip.active is not None
    assert not set(ip.backup.links) & set(ip.active.links)
    assert ip.backup.hops == ["R1", "R6", "R5", "R4", "R3"]
    routes = {r.backup: r for r in p.nodes["R1"] if isinstance(r, Seg6Route)}
    assert routes[True].metric == (routes[False].metric or 0) + 1
    assert routes[True].dev == "if-R6~R1"
    # the backup's transit SIDs are in place before any failure
    for hop in ("R6", "R5", "R4"):
        sid = str(topo.node_sids[topo.index[hop]])
        assert any(isinstance(r, Seg6LocalRoute) and r.sid == sid for r in p.nodes[hop])
    bare = plan_intents(topo, [intent("R1", "R3")], binding(topo), protect=False)
    assert bare.intents["R1~100~R3"].backup is None
    assert not any(isinstance(r, Seg6Route) and r.backup for r in bare.nodes["R1"])


def test_infeasible_intent_fails_naming_the_constraint_and_programs_nothing() -> None:
    topo = ring()
    ok = intent("R1", "R3")
    slow = intent("R2", "R5", max_delay_ms=0.5)
    p = plan_intents(topo, [ok, slow], binding(topo))
    bad = p.intents[slow.key]
    assert not bad.ok and bad.constraint == "max_delay_ms"
    assert "max_delay_ms" in bad.reason and bad.fix
    assert plan_intents(topo, [ok], binding(topo)).nodes == p.nodes


def test_unknown_endpoint_and_missing_colour_and_unowned_node_fail_with_fix() -> None:
    topo = ring()
    b = binding(topo, endpoints=["R3"])
    p = plan_intents(topo, [intent("R1", "R9"), intent("R1", "R4"),
                            intent("R1", "R3", color=7)], b)
    assert p.intents["R1~100~R9"].constraint == "endpoint"
    assert p.intents["R1~100~R4"].constraint == "endpoint"
    assert "intents.endpoints.R4" in p.intents["R1~100~R4"].fix
    assert p.intents["R1~7~R3"].constraint == "color"
    assert all(len(s) == 0 for s in p.nodes.values())


def test_sid_collision_fails_the_intents_that_need_the_node() -> None:
    topo = ring()
    b = binding(topo)
    b2 = type(b)(b.devs, b.egress, {"R3": "SID collision: fc00:0:3:1:: is held by 'x'"})
    ip = plan_intents(topo, [intent("R1", "R3")], b2).intents["R1~100~R3"]
    assert not ip.ok and ip.constraint == "sid" and ip.device == "R3"


def test_two_intents_on_one_prefix_the_higher_preference_wins() -> None:
    topo = ring()
    b = binding(topo)
    # R3 and R4 both serve 10.9.0.0/24 (anycast) with colour 100
    eg = dict(b.egress)
    for n in ("R3", "R4"):
        e = eg[n]
        eg[n] = Egress(e.dev, {"10.9.0.0/24": 100}, e.nh4, e.nh6, e.sid4, e.sid6)
    b = Binding(b.devs, eg)
    lo, hi = intent("R1", "R3"), intent("R1", "R4").model_copy(update={"preference": 200})
    p = plan_intents(topo, [lo, hi], b)
    assert p.intents[hi.key].ok
    assert not p.intents[lo.key].ok and p.intents[lo.key].constraint == "prefixes"


def test_disjoint_from_sees_the_other_intents_path() -> None:
    topo = ring()
    a = intent("R1", "R3")
    d = intent("R1", "R3", color=200, disjoint_from=a.key)
    p = plan_intents(topo, [d, a], binding(topo))
    pa, pd = p.intents[a.key].active, p.intents[d.key].active
    assert pa is not None and pd is not None
    assert not set(pa.links) & set(pd.links)


# ------------------------------------------------------------------ properties

@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[Link], list[SrPolicyIntent]]:
    links = draw(random_links())
    n = max(int(x[1:]) for lk in links for x in (lk.a, lk.b))
    pairs = draw(st.lists(st.tuples(st.integers(1, n), st.integers(1, n),
                                    st.sampled_from([100, 200])), max_size=8))
    intents = {}
    for a, b, color in pairs:
        if a != b:
            c = {"max_delay_ms": draw(st.sampled_from([None, 2.0, 50.0]))}
            it = intent(f"R{a}", f"R{b}", color, **c)
            intents[it.key] = it
    return links, list(intents.values())


SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario(), st.booleans(), st.booleans())
def test_any_intent_set_converges_in_one_application_and_reapplying_changes_nothing(
        sc: tuple[list[Link], list[SrPolicyIntent]], strict: bool, protect: bool) -> None:
    links, intents = sc
    topo = build(links)
    b = binding(topo)
    plan = plan_intents(topo, intents, b, strict=strict, protect=protect)
    # start from the network another intent set left behind
    prior = plan_intents(topo, intents[: len(intents) // 2], b, strict=strict).nodes
    actual = converge(plan, dict(prior))
    assert {n: s for n, s in actual.items() if len(s)} == \
        {n: s for n, s in plan.nodes.items() if len(s)}
    assert reconcile(plan.nodes, actual) == {}
    assert plan_intents(topo, list(reversed(intents)), b, strict=strict,
                        protect=protect) == plan


@SETTINGS
@given(scenario())
def test_every_programmed_segment_has_its_sid_in_the_plan_and_failures_add_nothing(
        sc: tuple[list[Link], list[SrPolicyIntent]]) -> None:
    links, intents = sc
    topo = build(links)
    b = binding(topo)
    plan = plan_intents(topo, intents, b)
    local = {r.sid for s in plan.nodes.values() for r in s if isinstance(r, Seg6LocalRoute)}
    for ip in plan.intents.values():
        if not ip.ok:
            assert ip.constraint and ip.reason and not ip.routes
            continue
        assert ip.active is not None
        c = next(i for i in intents if i.key == ip.key).constraints
        if c.max_delay_ms is not None:
            assert ip.active.delay_ms <= c.max_delay_ms + 1e-9
        for node, routes in ip.routes.items():
            for r in routes:
                assert r in plan.nodes[node]
                if isinstance(r, Seg6Route):
                    assert set(r.segments) <= local  # no packet steered into a missing SID
        if ip.backup is not None:
            assert not set(ip.backup.links) & set(ip.active.links)
    ok = [i for i in intents if plan.intents[i.key].ok]
    assert plan_intents(topo, ok, b).nodes == plan.nodes


@SETTINGS
@given(scenario(), scenario())
def test_memo_gives_the_same_plan_as_planning_from_scratch(
        a: tuple[list[Link], list[SrPolicyIntent]],
        b: tuple[list[Link], list[SrPolicyIntent]]) -> None:
    memo: dict[str, object] = {}
    for links, intents in (a, b, a):  # topology and intents change between calls
        topo = build(links)
        bd = binding(topo)
        got = plan_intents(topo, intents, bd, memo=memo)  # type: ignore[arg-type]
        assert got == plan_intents(topo, intents, bd)
        assert set(memo) == {i.key for i in intents}
