"""The vectorised Filter/Score path (NodeTable) gives IDENTICAL decisions to the
per-node path: same nodes, same scores, same reasons, same final node usage — on
random clusters and jobs, with the default profile and with every scoring policy
(WP-3.3.1, GBA-6.5f)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.models import Link, SiteKind
from scheduler.cycle import Scheduler
from scheduler.models import Decision, NodeInfo, Snapshot, Task
from scheduler.network import graph_from
from scheduler.plugins import DEFAULT_PLUGINS
from scheduler.profiles import PluginRef, ProfileConfig, Profiles, SchedulerConfig
from tests.scheduler.helpers import node, snap

KINDS = [SiteKind.COMPUTE_CENTRE, SiteKind.MEC, SiteKind.HUB, SiteKind.CLOUD]
ALL_SCORES = ProfileConfig(
    plugins=[*DEFAULT_PLUGINS, "energy-aware", "price-aware", "load-aware", "qos-first"],
    weights={"least-loaded": 1.0, "prefer-awake": 0.5, "network-aware": 1.0, "sla": 1.0,
             "compute-affinity": 2.0, "data-aware": 1.0, "interconnect": 0.5,
             "cloud-bursting": 10.0, "energy-aware": 1.5, "price-aware": 0.7,
             "load-aware": 1.0, "qos-first": 1.0})
SITE_AA = ProfileConfig(plugins=[
    *(p for p in DEFAULT_PLUGINS if p not in ("anti-affinity", "cloud-bursting",
                                              "compute-affinity")),
    PluginRef(name="anti-affinity", args={"scope": "site"}),
    PluginRef(name="cloud-bursting", args={"allow": False}),
    PluginRef(name="compute-affinity", args={"required": True})])


def build(d: st.DataObject) -> tuple[Snapshot, list[Task]]:
    nsites = d.draw(st.integers(1, 6))
    nodes = []
    for i in range(d.draw(st.integers(1, 40))):
        s = d.draw(st.integers(0, nsites - 1))
        cap: dict[str, float] = {"cpu": float(d.draw(st.sampled_from([2, 4, 8]))),
                                 "memory": float(d.draw(st.sampled_from([4, 16])))}
        extra = d.draw(st.sampled_from([None, "gpu", "npu"]))
        if extra:
            cap[extra] = float(d.draw(st.integers(1, 4)))
        nodes.append(node(f"s{s}", f"n{i}", KINDS[s % 4], capacity=cap,
                          awake=d.draw(st.booleans()), overloaded=d.draw(st.integers(0, 9)) == 0,
                          price_per_hour=d.draw(st.sampled_from([0.5, 1.0, 1.5])),
                          energy_w=d.draw(st.sampled_from([100.0, 250.0, 400.0])),
                          l2=d.draw(st.sampled_from([None, 3.0, 7.5]))))
    links = [Link(a=f"s{i}", b=f"s{i + 1}", delay_ms=d.draw(st.sampled_from([1, 5, 20])),
                  capacity_mbps=1000) for i in range(nsites - 1) if d.draw(st.booleans())]
    sn = snap(nodes, links)
    sn.graph = graph_from(links)
    if d.draw(st.booleans()):
        victim = d.draw(st.sampled_from(sorted(sn.nodes)))
        sn.reservations[victim] = ("big", 50.0)
    tasks = []
    for i in range(d.draw(st.integers(1, 25))):
        req: dict[str, float] = {"cpu": float(d.draw(st.sampled_from([0.5, 1, 2, 4, 9]))),
                                 "memory": float(d.draw(st.sampled_from([0, 1, 4, 8])))}
        if d.draw(st.integers(0, 4)) == 0:
            req["gpu"] = 1.0
        if d.draw(st.booleans()):
            req["bandwidth"] = float(d.draw(st.sampled_from([10, 5000])))
        site = f"s{d.draw(st.integers(0, nsites - 1))}"
        tasks.append(Task(
            id=f"t{i}", requests=req, replicas=d.draw(st.integers(1, 3)),
            priority=d.draw(st.sampled_from([100, 200, 500])), submitted=float(i),
            kind=d.draw(st.sampled_from(["other", "image", "tensor"])),
            site=site if d.draw(st.integers(0, 5)) == 0 else None,
            group=d.draw(st.sampled_from([None, None, "g1", "g2"])),
            origin=site if d.draw(st.booleans()) else None,
            sla_ms=d.draw(st.sampled_from([None, 4.0, 30.0])),
            max_latency_ms=d.draw(st.sampled_from([None, 10.0])),
            data_site=site if d.draw(st.booleans()) else None,
            data_gib=d.draw(st.sampled_from([1.0, 500.0])),
            data_private=d.draw(st.integers(0, 4)) == 0,
            runtime_s=d.draw(st.sampled_from([None, 10.0, 100.0])),
            policy=d.draw(st.sampled_from([None, "all", "site"]))))
    return sn, tasks


def run(d_snap: Snapshot, tasks: list[Task], vectorise: bool,
        percentage: float | None) -> tuple[list[Decision], dict[str, Any]]:
    cfg = SchedulerConfig(profiles={"all": ALL_SCORES, "site": SITE_AA},
                          percentage_of_nodes=percentage, vectorise=vectorise)
    out = Scheduler(Profiles(cfg)).schedule(tasks, d_snap)
    used = {n.name: dict(n.used) for n in d_snap.nodes.values()}
    return out, used


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from([None, 10.0, 40.0]))
def test_batch_and_per_node_paths_decide_identically(d: st.DataObject,
                                                     percentage: float | None) -> None:
    a_snap, a_tasks = build(d)
    # an independent copy of the same cluster and jobs for the other path
    b_snap = Snapshot(nodes={k: NodeInfo(**{f: _copy(getattr(n, f)) for f in FIELDS})
                             for k, n in a_snap.nodes.items()},
                      graph=a_snap.graph, now=a_snap.now,
                      reservations=dict(a_snap.reservations))
    b_tasks = [Task(**{f: _copy(getattr(t, f)) for f in TASK_FIELDS}) for t in a_tasks]
    per_node, used_a = run(a_snap, a_tasks, False, percentage)
    batch, used_b = run(b_snap, b_tasks, True, percentage)
    assert [_view(x) for x in per_node] == [_view(x) for x in batch]
    assert used_a == used_b
    assert a_snap.reservations == b_snap.reservations


def test_table_follows_reserve_and_direct_assignment() -> None:
    """Reserve/Unreserve keep the columns in step; replacing ``used`` outright makes
    the snapshot build a fresh table."""
    a, b = node("a", capacity={"cpu": 4.0}), node("b", capacity={"cpu": 4.0})
    sn = snap([a, b])
    tab = sn.table()
    a.add("t", 100, {"cpu": 3.0}, "g")
    assert tab.used["cpu"][tab.row["a/n0"]] == 3.0 and tab.has_group("g").tolist() == [
        True, False]
    a.remove("t", {"cpu": 3.0}, "g")
    assert tab.used["cpu"][tab.row["a/n0"]] == 0.0 and not tab.has_group("g").any()
    b.used = {"cpu": 4.0}
    assert tab.stale and sn.table() is not tab
    assert sn.table().used["cpu"].tolist() == [0.0, 4.0]
    assert all(w[0] is not tab for w in a._watch)  # the old table was detached


def _copy(v: Any) -> Any:
    return dict(v) if isinstance(v, dict) else v


FIELDS = ("name", "site", "site_kind", "region", "capacity", "used", "awake",
          "price_per_hour", "energy_w", "l2", "overloaded", "labels", "groups", "tasks",
          "ends")
TASK_FIELDS = tuple(Task.__dataclass_fields__)


def _view(x: Decision) -> tuple[Any, ...]:
    return (x.task, x.code, x.nodes, x.site, x.reasons, x.scores, x.victims, x.inputs)


def test_sliced_feasible_search_wraps_like_the_per_node_loop() -> None:
    """Regression (issue #19): with every filter cached and the snapshot's own order,
    the feasible search slices the cached column instead of gathering rows. At 10 % of
    600 nodes the search stops mid-order and wraps around; per-node, vectorised-cached
    and vectorised-recomputed runs must place every task on the same nodes."""
    from labs.bench.schedule import _one

    _, per_node = _one(600, 7, 300, 3, 10.0, False)
    _, cached = _one(600, 7, 300, 3, 10.0, True, cache=True)
    _, recomputed = _one(600, 7, 300, 3, 10.0, True, cache=False)
    assert per_node == cached == recomputed
    assert sum(1 for _, nodes in cached if nodes) == 300


def test_filter_and_is_not_cached_per_shape_and_group_combination() -> None:
    """Regression (issue #19): the AND of the cached filter columns was itself cached
    under every (request shape, anti-affinity group) pair — at 20,000 nodes ~390
    one-off full-size columns filled the table's budget and evicted the reusable ones.
    Now the table holds one column per plug-in key (shape, group, static) and the
    per-node loop still agrees."""
    from labs.bench.schedule import _one, make

    snap_, tasks = make(400, 10, 700, 5)
    sched = Scheduler(Profiles(SchedulerConfig(percentage_of_nodes=100.0)))
    sched.schedule(tasks, snap_)
    keys = list(snap_.table()._columns)
    assert not [k for k in keys if k[0] == "filters"]
    shapes = {tuple(t.requests.items()) for t in tasks}
    groups = {t.group for t in tasks if t.group}
    assert len(shapes) * len(groups) > 200  # many combinations were asked for
    # fit + least-loaded + summed per shape, one per group, the static columns
    assert len(keys) <= 3 * len(shapes) + len(groups) + 4
    _, per_node = _one(400, 10, 300, 5, 100.0, False)
    _, cached = _one(400, 10, 300, 5, 100.0, True, cache=True)
    assert per_node == cached
