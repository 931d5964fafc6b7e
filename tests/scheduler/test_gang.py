"""Gang (co-scheduling) Permit plug-in: all-or-nothing across a job's tasks, waits
holding capacity, times out and releases everything (WP-3.3.3, WP-3.3.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.models import Quota, Tenant
from scheduler.cycle import Scheduler
from scheduler.models import Task
from scheduler.profiles import PluginRef, ProfileConfig, Profiles, SchedulerConfig
from scheduler.queueing import QuotaTree
from tests.scheduler.helpers import node, snap

FULL = {"cpu": 4.0}  # a whole node of the clusters below


def sched(timeout_s: float = 60.0, tree: QuotaTree | None = None) -> Scheduler:
    prof = ProfileConfig(plugins=["node-resources-fit", "least-loaded", "resources",
                                  PluginRef(name="gang", args={"timeout_s": timeout_s}),
                                  "default-binder"], weights={"least-loaded": 1.0})
    cfg = SchedulerConfig(profiles={"default": prof}, queue_sort="fcfs")
    return Scheduler(Profiles(cfg), tree or QuotaTree())


def member(i: int, gang: str = "g", size: int = 3, **kw: object) -> Task:
    return Task(f"{gang}-{i}", requests=dict(FULL), submitted=float(i), gang=gang,
                gang_size=size, **kw)  # type: ignore[arg-type]


def cluster(n: int) -> list:  # type: ignore[type-arg]
    return [node(f"s{i}", capacity={"cpu": 4.0}) for i in range(n)]


def test_gang_that_fits_is_placed_together() -> None:
    nodes = cluster(3)
    out = sched().schedule([member(0), member(1), member(2)], snap(nodes))
    assert [d.code for d in out] == ["success"] * 3
    assert sorted(d.nodes[0] for d in out) == sorted(n.name for n in nodes)
    assert all(n.used["cpu"] == 4.0 for n in nodes)


def test_incomplete_gang_holds_then_releases_everything() -> None:
    nodes = cluster(2)
    s = snap(nodes)
    other = Task("solo", requests={"cpu": 1.0}, submitted=10.0)
    out = sched().schedule([member(0), member(1), member(2), other], s)
    by = {d.task: d for d in out}
    # while two members waited they held both nodes: the third and the solo task saw none
    assert by["solo"].code == "unschedulable"
    for i in (0, 1):
        assert by[f"g-{i}"].code == "wait" and "2/3 reserved" in by[f"g-{i}"].reasons[0]
        assert by[f"g-{i}"].nodes == ()
    assert by["g-2"].code == "unschedulable"
    assert all(n.used.get("cpu", 0.0) == 0.0 and not n.tasks for n in nodes)  # nothing kept


def test_wait_times_out_then_a_new_window_opens() -> None:
    sc = sched(timeout_s=30.0)
    out = sc.schedule([member(0), member(1)], snap(cluster(2), now=100.0))
    assert {d.code for d in out} == {"wait"} and "timeout in 30 s" in out[0].reasons[0]
    out = sc.schedule([member(0), member(1)], snap(cluster(2), now=120.0))
    assert {d.code for d in out} == {"wait"} and "timeout in 10 s" in out[0].reasons[0]
    out = sc.schedule([member(0), member(1)], snap(cluster(2), now=131.0))
    assert {d.code for d in out} == {"unschedulable"}
    assert all("timed out after 31 s with 2/3 reserved" in d.reasons[0] for d in out)
    out = sc.schedule([member(0), member(1)], snap(cluster(2), now=140.0))
    assert {d.code for d in out} == {"wait"}  # a fresh window
    out = sc.schedule([member(0), member(1), member(2)], snap(cluster(3), now=141.0))
    assert {d.code for d in out} == {"success"}


def test_quota_is_returned_when_the_gang_gives_up() -> None:
    tree = QuotaTree([Tenant(name="t", quota=Quota(cpu_cores=100))])
    sc = sched(tree=tree)
    out = sc.schedule([member(i, tenant="t") for i in range(3)], snap(cluster(2)))
    assert {d.code for d in out} == {"wait", "unschedulable"}
    assert tree.nodes["t"].usage.get("cpu", 0.0) == 0.0 and not sc.running
    out = sc.schedule([member(i, tenant="t") for i in range(3)], snap(cluster(3)))
    assert {d.code for d in out} == {"success"}
    assert tree.nodes["t"].usage["cpu"] == 12.0 and len(sc.running) == 3


def test_bad_gang_config_and_size_are_named() -> None:
    with pytest.raises(ValueError, match="'gang'.*timeout_s"):
        Profiles(SchedulerConfig(profiles={"p": ProfileConfig(
            plugins=[PluginRef(name="gang", args={"timeout_s": 0})])}))
    d = sched().schedule([member(0, size=0)], snap(cluster(1)))[0]
    assert d.code == "unschedulable-and-unresolvable" and "gang_size" in d.reasons[0]


def test_gang_is_in_the_default_profile_and_tasks_without_gang_pass() -> None:
    out = Scheduler().schedule([Task("a", requests={"cpu": 1.0}),
                                Task("b", requests={"cpu": 1.0}, gang="x", gang_size=2)],
                               snap(cluster(1)))
    assert [d.code for d in out] == ["success", "wait"]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.lists(st.integers(1, 4), min_size=1, max_size=5),
       st.integers(0, 3))
def test_gangs_are_all_or_nothing(nodes: int, sizes: list[int], solo: int) -> None:
    tasks = [Task(f"g{k}-{i}", requests={"cpu": 2.0}, submitted=float(10 * k + i),
                  gang=f"g{k}", gang_size=size)
             for k, size in enumerate(sizes) for i in range(size)]
    tasks += [Task(f"solo{i}", requests={"cpu": 2.0}, submitted=100.0 + i) for i in range(solo)]
    ns = cluster(nodes)
    out = sched().schedule(tasks, snap(ns))
    for k, size in enumerate(sizes):
        codes = [d.code for d in out if d.task.startswith(f"g{k}-")]
        assert len(codes) == size
        assert set(codes) == {"success"} or "success" not in codes, codes
    placed = {d.task for d in out if d.ok}
    held = {tid for n in ns for tid in n.tasks}
    assert held == placed  # nothing of a failed gang stays reserved
    assert all(n.used.get("cpu", 0.0) <= n.capacity["cpu"] + 1e-9 for n in ns)


def test_a_waiting_members_preemption_is_committed_and_reported() -> None:
    # g-0 (priority 500) preempts "low" and waits for g-1, which never fits: the wait
    # ends with the pass, but the preemption stands (kube-scheduler commits it on
    # nomination) — the decision names the victim so the edge requeues it, and no later
    # task of the pass sees "low" as still running
    prof = ProfileConfig(plugins=["node-resources-fit", "least-loaded", "resources",
                                  "preemption", "gang", "default-binder"],
                         weights={"least-loaded": 1.0})
    s = Scheduler(Profiles(SchedulerConfig(profiles={"default": prof}, queue_sort="fcfs")))
    n = node("s0", capacity={"cpu": 4.0})
    sn = snap([n])
    low = Task("low", requests=dict(FULL), priority=10)
    assert s.schedule_one(low, sn).ok and "low" in s.running
    out = s.schedule([member(0, size=2, priority=500), member(1, size=2, priority=500)], sn)
    by = {d.task: d for d in out}
    assert by["g-0"].code == "wait" and by["g-0"].victims == ("low",)
    assert by["g-1"].code == "unschedulable" and by["g-1"].victims == ()
    assert "low" not in s.running and not n.tasks and n.used.get("cpu", 0.0) == 0.0
