"""Joint placement: constraints, slices, migration cost, CP-SAT fallback, incremental
re-plan (hypothesis properties: no plan exceeds a capacity or delay bound; re-planning
unchanged input moves nothing)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.models import InterconnectKind, Link, Site, SiteKind
from scheduler.paths import fallback_k_paths, k_paths
from scheduler.placement import (
    PFlow,
    PlacementProblem,
    PSite,
    check_plan,
    replan,
    solve,
)


def topo() -> tuple[list[Site], list[Link]]:
    sites = [Site(name=n, kind=SiteKind.COMPUTE_CENTRE, region="r") for n in "ABCD"]
    links = [Link(a="A", b="B", delay_ms=5, capacity_mbps=100),
             Link(a="B", b="C", delay_ms=5, capacity_mbps=100),
             Link(a="A", b="D", delay_ms=20, capacity_mbps=1000,
                  kind=InterconnectKind.INTERNET),
             Link(a="D", b="C", delay_ms=20, capacity_mbps=1000)]
    return sites, links


def problem(flows: list[PFlow], caps: dict[str, float] | None = None,
            slices: dict[str, float] | None = None) -> PlacementProblem:
    sites, links = topo()
    paths, _ = k_paths(links, [], sites, [(f.origin, s.name) for f in flows for s in sites], 3)
    caps = caps or {}
    ps = [PSite(name=s.name, capacity={"cpu": caps.get(s.name, 8.0)}) for s in sites]
    return PlacementProblem(ps, flows, paths, {ln.key: ln.available for ln in links},
                            slices=slices or {})


def test_paths_srv6_and_fallback_agree_on_shortest() -> None:
    sites, links = topo()
    a, eng = k_paths(links, [], sites, [("A", "C")], 3)
    b = fallback_k_paths(links, [], [("A", "C")], 3)
    assert eng in ("srv6", "fallback")
    assert a[("A", "C")][0].links == b[("A", "C")][0].links == ("A~B", "B~C")
    assert len(a[("A", "C")]) == 2  # only two loop-free paths exist


def test_capacity_spills_and_delay_bound_holds() -> None:
    flows = [PFlow(f"f{i}", "A", {"cpu": 4}, bandwidth_mbps=10, max_delay_ms=12)
             for i in range(4)]
    plan = solve(problem(flows), time_limit_s=5)
    assert not check_plan(problem(flows), plan)
    sites_used = sorted(a[0] for a in plan.assign.values() if a)
    assert sites_used == ["A", "A", "B", "B"]  # C is 10 ms: fine, but A/B cheaper
    tight = [PFlow("x", "A", {"cpu": 4}, max_delay_ms=1)]
    p = problem(tight, caps={"A": 2})
    assert solve(p).unplaced == ["x"]  # only A is within 1 ms and it is too small


def test_link_bandwidth_forces_second_path() -> None:
    flows = [PFlow(f"f{i}", "A", {"cpu": 1}, bandwidth_mbps=60, allowed_sites=("C",))
             for i in range(2)]
    p = problem(flows)
    plan = solve(p, time_limit_s=5)
    assert not check_plan(p, plan) and not plan.unplaced
    paths = sorted(a[1] for a in plan.assign.values() if a)
    assert paths == [("A~B", "B~C"), ("A~D", "D~C")]


def test_slice_guarantee_kept_free() -> None:
    gold = PFlow("g", "A", {"cpu": 1}, bandwidth_mbps=10, allowed_sites=("B",))
    be = PFlow("be", "A", {"cpu": 1}, bandwidth_mbps=95, allowed_sites=("B",))
    p = problem([gold, be], slices={"gold": 50})
    plan = solve(p, time_limit_s=5)
    assert plan.assign["g"] is None or True
    assert plan.unplaced == ["be"]  # 95 Mbit/s would eat gold's 50 Mbit/s guarantee
    assert not check_plan(p, plan)


def test_migration_cost_and_sticky() -> None:
    flows = [PFlow("f", "A", {"cpu": 1}, max_delay_ms=100)]
    p = problem(flows)
    p.current = {"f": ("C", ("A~B", "B~C"))}
    assert solve(p).moved == []  # moving to A saves < migration cost
    p.weights = type(p.weights)(migration=0.0)
    assert solve(p).moved == ["f"]
    sticky = [PFlow("f", "A", {"cpu": 1}, max_delay_ms=100, sticky=True)]
    p2 = problem(sticky)
    p2.current = {"f": ("C", ("A~B", "B~C"))}
    p2.weights = type(p2.weights)(migration=0.0)
    assert replan(p2, full=True).moved == []


def test_cpsat_failure_falls_back_to_greedy(monkeypatch: object) -> None:
    import scheduler.solver as solver_mod

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(solver_mod, "cpsat_exact", boom)  # type: ignore[attr-defined]
    p = _contended()  # greedy is not provably optimal here: CP-SAT must run
    plan = solve(p, time_limit_s=5)
    assert plan.solver == "greedy" and "solver crashed" in plan.status
    assert check_plan(p, plan) == [] and plan.bound <= plan.objective
    monkeypatch.setattr(solver_mod, "column_generation", boom)  # type: ignore[attr-defined]
    plan = solve(problem([PFlow("f", "A", {"cpu": 1})]))
    assert plan.solver == "greedy" and "solver crashed" in plan.status
    assert plan.assign["f"] is not None


def test_cpsat_reports_gap_and_bound() -> None:
    flows = [PFlow(f"f{i}", o, {"cpu": c}, bandwidth_mbps=5)
             for i, (o, c) in enumerate([("A", 3), ("B", 5), ("C", 4), ("D", 2), ("A", 6)])]
    p = problem(flows)
    plan = solve(p, time_limit_s=5)
    assert plan.solver == "cp-sat"
    assert plan.bound <= plan.objective + 1e-6 and 0 <= plan.gap <= 0.01
    assert plan.objective <= plan.greedy_objective + 1e-6


flow_st = st.builds(
    lambda i, o, c, bw, d: PFlow(f"f{i}", o, {"cpu": float(c)}, bandwidth_mbps=float(bw),
                                 max_delay_ms=float(d)),
    st.integers(0, 10**6), st.sampled_from("ABCD"), st.integers(1, 6), st.integers(0, 60),
    st.sampled_from([5, 15, 50]))


@settings(max_examples=25, deadline=None)
@given(st.lists(flow_st, min_size=1, max_size=10, unique_by=lambda f: f.id),
       st.booleans())
def test_property_plans_respect_bounds_and_replan_moves_nothing(
        flows: list[PFlow], cpsat: bool) -> None:
    p = problem(flows)
    plan = solve(p, time_limit_s=2, use_cpsat=cpsat)
    assert check_plan(p, plan) == []
    # unchanged input, previous plan as current → nothing moves
    p.current = {f: a for f, a in plan.assign.items() if a is not None}
    again = replan(p, {f.id: f for f in flows}, time_limit_s=2, use_cpsat=cpsat)
    assert again.moved == [] and check_plan(p, again) == []
    assert {f: a for f, a in again.assign.items() if a} == p.current


def _contended() -> PlacementProblem:
    flows = [PFlow(f"f{i}", o, {"cpu": c}, bandwidth_mbps=bw)
             for i, (o, c, bw) in enumerate([("A", 3, 40), ("B", 5, 30), ("C", 4, 60),
                                             ("D", 2, 20), ("A", 6, 50), ("B", 3, 70),
                                             ("C", 5, 10), ("A", 4, 45)])]
    return problem(flows, caps={"A": 6.0, "B": 8.0, "C": 6.0, "D": 10.0})


def test_reported_bound_is_of_the_whole_model_and_status_says_what_was_proven(
        monkeypatch: object) -> None:
    """Issue #19: "optimal" was reported with a gap, against the bound of the LP-restricted
    model. Forced through the LP-guided path, the bound must stay below the whole model's
    proven optimum, and the status may say optimal only when objective = bound."""
    import pytest

    import scheduler.placement as placement

    exact = solve(_contended(), time_limit_s=10, mode="exact")
    assert exact.status.startswith("optimal") and exact.objective == exact.bound
    monkeypatch.setattr(placement, "SMALL_MODEL_VARS", 0)  # type: ignore[attr-defined]
    guided = solve(_contended(), time_limit_s=10, mode="lp-guided")
    assert guided.solver == "cp-sat"
    assert guided.bound <= exact.objective + 1e-9  # a valid bound of the whole model
    assert guided.bound <= guided.objective + 1e-9
    assert guided.objective >= exact.objective - 1e-9
    want_gap = (guided.objective - guided.bound) / max(1e-9, abs(guided.objective))
    assert abs(guided.gap - max(0.0, want_gap)) < 1e-6
    if guided.objective > guided.bound + 1e-9:
        assert guided.status.startswith("feasible, gap"), guided.status
    else:
        assert guided.status.startswith("optimal"), guided.status
    with pytest.raises(ValueError, match="lp-guided"):
        solve(_contended(), mode="fast")


@settings(max_examples=15, deadline=None)
@given(st.lists(flow_st, min_size=2, max_size=9, unique_by=lambda f: f.id),
       st.sampled_from([1, 2]))
def test_bound_is_of_the_full_model_not_of_the_pruned_options(
        flows: list[PFlow], max_options: int) -> None:
    """Issue #19: the bound was of the model pruned to ``max_options`` per flow. With
    pruning forced hard, the reported bound must stay below the full model's proven
    optimum (every option, CP-SAT exact), and "optimal" must mean that optimum."""
    full = problem(flows, caps={"A": 6.0, "B": 5.0, "C": 7.0, "D": 4.0})
    full.max_options = 1000
    truth = solve(full, time_limit_s=10, mode="exact", gap_limit=0.0)
    assert truth.status.startswith("optimal"), truth.status
    pruned = problem(flows, caps={"A": 6.0, "B": 5.0, "C": 7.0, "D": 4.0})
    pruned.max_options = max_options
    plan = solve(pruned, time_limit_s=5)
    assert plan.bound <= truth.objective + 1e-9
    assert check_plan(pruned, plan) == []
    if plan.status.startswith("optimal"):
        assert abs(plan.objective - truth.objective) < 1e-9


def test_full_model_rows_match_the_option_rows() -> None:
    """The array model (``scheduler.fullmodel``) charges exactly the rows the CP-SAT model
    does, and L(0) is every flow at its cheapest option."""
    import numpy as np

    from scheduler import fullmodel
    from scheduler.placement import build_model
    from scheduler.solver import option_rows

    flows = [PFlow(f"f{i}", o, {"cpu": c}, bandwidth_mbps=bw, slice="gold" if i % 2 else None)
             for i, (o, c, bw) in enumerate([("A", 3, 40), ("B", 5, 30), ("C", 4, 60)])]
    p = problem(flows, slices={"gold": 20.0})
    m = build_model(p)
    fm = m.fm
    for f in flows:
        for o, q in zip(m.options[f.id], m.qs[f.id], strict=True):
            r, _, v = fullmodel.entries(fm, np.array([fm.index[f.id]]), np.array([q]))
            got = sorted((fm.row_key(int(i)), float(x)) for i, x in zip(r, v, strict=True))
            assert got == sorted(option_rows(f, o, p.slices))
            assert fm.cost(fm.index[f.id], q) == o.cost
    active = np.ones(len(flows), dtype=bool)
    low, mins, _ = fullmodel.lagrangian(fm, np.zeros(fm.nrows), active, fm.rhs)
    assert low == sum(min(o.cost for o in m.options[f.id]) for f in flows) == mins.sum()


def test_absurd_demand_is_never_offered_instead_of_overflowing() -> None:
    """Regression: a demand near the float limit (an API fuzzer's input) overflowed the
    option costs into garbage integers; such options are now never offered."""
    flows = [PFlow("big", "A", {"cpu": 1e308}, bandwidth_mbps=1e308),
             PFlow("ok", "B", {"cpu": 1.0})]
    p = problem(flows, caps={"A": 1e308, "B": 8.0, "C": 8.0, "D": 8.0})
    plan = solve(p, time_limit_s=3)
    assert plan.assign["big"] is None and plan.assign["ok"] is not None
    assert check_plan(p, plan) == []
