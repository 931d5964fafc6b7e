"""Incremental re-plan on events: unchanged input moves nothing; a link going down
moves only the flows that used it."""

from __future__ import annotations

from controller.models import Link, LinkState, Site, SiteKind
from scheduler.paths import k_paths
from scheduler.placement import PFlow, PlacementProblem, PSite, check_plan
from scheduler.replan import IncrementalPlanner


def build(links: list[Link], flows: list[PFlow]) -> PlacementProblem:
    sites = [Site(name=n, kind=SiteKind.MEC, region="r") for n in "ABC"]
    paths, _ = k_paths(links, [], sites, [(f.origin, s.name) for f in flows for s in sites], 3)
    return PlacementProblem([PSite(name=s.name, capacity={"cpu": 4.0}) for s in sites], flows,
                            paths, {ln.key: ln.available for ln in links if ln.state == "up"})


def test_replan_on_link_down_moves_only_affected() -> None:
    links = [Link(a="A", b="B", delay_ms=2), Link(a="A", b="C", delay_ms=3),
             Link(a="B", b="C", delay_ms=2)]
    flows = [PFlow(f"f{i}", "A", {"cpu": 2.0}, bandwidth_mbps=1) for i in range(5)]
    pl = IncrementalPlanner(time_limit_s=2)
    first = pl.update(build(links, flows))
    assert not first.unplaced and not check_plan(build(links, flows), first)
    same = pl.update(build(links, flows))
    assert same.moved == [] and same.assign == first.assign
    down = [ln if ln.key != "A~B" else ln.model_copy(update={"state": LinkState.DOWN})
            for ln in links]
    p = build(down, flows)
    after = pl.update(p)
    used_ab = {f for f, a in first.assign.items() if a and "A~B" in a[1]}
    assert used_ab and set(after.moved) == used_ab
    assert not check_plan(p, after)
    assert all(a is None or "A~B" not in a[1] for a in after.assign.values())
