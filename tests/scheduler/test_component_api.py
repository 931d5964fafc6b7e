"""The scheduler against the real store/runtime (examples/gba.yaml): job state
transitions with journaled decisions (WP-3.3.4), GBT-7.5 pool REST, GBT-9.2.4 metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.models import ComputeResource, Job, JobSpec, JobState, Requirements
from controller.runtime import Runtime
from controller.store import JournalQuery
from scheduler.component import SchedulerComponent
from scheduler.decisions import SchedulingDecision
from scheduler.registration import components
from tests.conftest import example_runtime

OP = {"Authorization": "Bearer op-token-0123456789"}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with example_runtime(tmp_path, "gba.yaml",
                         ("op-token-0123456789", "ops", "operator", None)) as runtime:
        yield runtime


def job(jid: str, tenant: str = "ai-lab", **req: Any) -> Job:
    site = req.pop("site", None)
    prio = req.pop("priority", 100)
    return Job(id=jid, tenant=tenant, owner="bob",
               spec=JobSpec(name=jid, requirements=Requirements(**req), site=site,
                            priority=prio))


def put(rt: Runtime, *jobs: Job) -> None:
    rt.writer.put_many(list(jobs), "test", "submit")


def test_pass_places_fails_and_journals(rt: Runtime) -> None:
    put(rt, job("ok", gpu=2, cpu_cores=8),
        job("never", cpu_cores=100000),
        job("pinned", cpu_cores=1, site="MEC-GZ1"),
        job("quota", tenant="city-ops-drones", gpu=6))
    comp = SchedulerComponent()
    comp.run_pass(rt.store)
    got = {j.id: j for j in rt.store.list(Job)}
    assert got["ok"].state is JobState.RUNNING and got["ok"].site
    assert got["pinned"].state is JobState.RUNNING and got["pinned"].site == "MEC-GZ1"
    assert got["never"].state is JobState.FAILED
    assert "capacity cpu" in got["never"].reason
    assert got["quota"].state is JobState.QUEUED
    assert "tenant 'city-ops-drones'" in got["quota"].reason and "gpu" in got["quota"].reason
    entries = rt.store.journal(JournalQuery(key="ok", actor="scheduler"))
    assert entries and "decision job:ok" in entries[-1].reason
    dec = rt.store.get(SchedulingDecision, "job:ok")
    assert dec is not None and dec.site == got["ok"].site and dec.inputs["feasible"] >= 1
    assert [c.site for c in dec.candidates if c.constraint == "chosen"] == [dec.site]
    never = rt.store.get(SchedulingDecision, "job:never")
    assert never is not None and never.code == "unschedulable-and-unresolvable"
    assert never.candidates and all(c.constraint == "capacity" for c in never.candidates)
    # a second pass with nothing new writes nothing for the queued job
    seq = rt.store.last_seq()
    comp.run_pass(rt.store)
    assert rt.store.last_seq() == seq


def test_preemption_requeues_victim(rt: Runtime) -> None:
    put(rt, job("low", cpu_cores=1, gpu=1, memory_gib=1, site="MEC-GZ1", priority=10))
    comp = SchedulerComponent()
    comp.run_pass(rt.store)
    assert rt.store.get(Job, "low").state is JobState.RUNNING  # type: ignore[union-attr]
    cap = next(r.value for r in rt.store.list(ComputeResource)
               if r.site == "MEC-GZ1" and r.type == "gpu")
    assert cap is not None
    put(rt, job("high", gpu=cap, site="MEC-GZ1", priority=900))
    comp.run_pass(rt.store)
    assert rt.store.get(Job, "high").state is JobState.RUNNING  # type: ignore[union-attr]
    low = rt.store.get(Job, "low")
    assert low is not None and low.state is JobState.QUEUED and "high" in low.reason


def test_waiting_gang_members_victim_is_requeued(rt: Runtime) -> None:
    # a gang member preempts "low" and waits for a partner that never fits; the wait
    # ends with the pass but the preemption stands, so the store requeues "low" too
    put(rt, job("low", cpu_cores=1, gpu=1, memory_gib=1, site="MEC-GZ1", priority=10))
    comp = SchedulerComponent()
    comp.run_pass(rt.store)
    cap = next(r.value for r in rt.store.list(ComputeResource)
               if r.site == "MEC-GZ1" and r.type == "gpu")
    assert cap is not None
    gang = [job(f"g{i}", gpu=cap, site="MEC-GZ1", priority=900) for i in (0, 1)]
    for g in gang:
        g.spec.params.update({"gang": "g", "gang_size": 2})
    put(rt, *gang)
    comp.run_pass(rt.store)
    g0, g1 = rt.store.get(Job, "g0"), rt.store.get(Job, "g1")
    assert g0 is not None and g0.state is JobState.QUEUED and "gang g" in g0.reason
    assert g1 is not None and g1.state is JobState.QUEUED
    low = rt.store.get(Job, "low")
    assert low is not None and low.state is JobState.QUEUED and "g0" in low.reason


def test_component_reacts_to_submission(rt: Runtime) -> None:
    async def main() -> JobState:
        comps = components(rt)
        await rt.start(comps)
        try:
            put(rt, job("async-1", cpu_cores=2))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                j = rt.store.get(Job, "async-1")
                if j is not None and j.state is JobState.RUNNING:
                    return j.state
                await asyncio.sleep(0.05)
            j = rt.store.get(Job, "async-1")
            return j.state if j else JobState.FAILED
        finally:
            await rt.stop()

    assert asyncio.run(main()) is JobState.RUNNING


def test_pool_rest_gbt_7_5(rt: Runtime) -> None:
    c = TestClient(create_app(rt))
    for i in range(2):
        r = c.post("/api/v1/pool/cards", headers=OP, json={
            "id": f"card{i}", "chip": "A100", "server": "srv1", "switch": "sw1",
            "cluster": "HUB-GZ", "compute_tflops": 312, "memory_gib": 80})
        assert r.status_code == 200, r.text
        for _ in range(2):
            r = c.post("/api/v1/pool/instances", headers=OP,
                       json={"card": f"card{i}", "profile": "3g"})
            assert r.status_code == 200, r.text
    r = c.post("/api/v1/pool/instances", headers=OP, json={"card": "card0", "profile": "4g"})
    assert r.status_code == 409 and "card0" in r.json()["error"]["message"]
    info = c.get("/api/v1/pool/cards/card0", headers=OP).json()
    assert info["instances"] == ["card0-i0", "card0-i1"]
    assert info["allocated_fraction"] == pytest.approx(6 / 7)
    spec = c.get("/api/v1/pool/instances/card0-i0/spec", headers=OP).json()
    assert spec["spec"]["compute_tflops"] == pytest.approx(312 * 3 / 7)
    r = c.post("/api/v1/pool/allocate", headers=OP, json={"task": "t1", "count": 3})
    assert r.status_code == 200 and len(r.json()["instances"]) == 3
    held = r.json()["instances"]
    r = c.post("/api/v1/pool/allocate", headers=OP, json={"task": "t2", "count": 2})
    assert r.status_code == 409  # only one left: nothing allocated
    states = [c.get(f"/api/v1/pool/instances/card{i}-i{k}/state", headers=OP).json()["state"]
              for i in range(2) for k in range(2)]
    assert states.count("in-use") == 3 and states.count("available") == 1
    free = next(f"card{i}-i{k}" for i in range(2) for k in range(2)
                if f"card{i}-i{k}" not in held)
    r = c.post("/api/v1/pool/release", headers=OP,
               json={"task": "t1", "instances": [*held, free]})
    assert r.status_code == 409 and "nothing released" in r.json()["error"]["message"]
    r = c.post("/api/v1/pool/release", headers=OP, json={"task": "t1", "instances": held})
    assert r.status_code == 200
    assert c.get(f"/api/v1/pool/instances/{held[0]}/state", headers=OP).json()["state"] \
        == "available"
    r = c.post("/api/v1/pool/instances/card1-i1/events", headers=OP,
               json={"event": "damage"})
    assert r.status_code == 200
    m = c.get("/api/v1/scheduler/metrics", headers=OP).json()
    assert set(m["card_utilisation"]) == {"card0", "card1"}
    assert 0 <= m["cluster_utilisation_q"] <= 1
    text = c.get("/metrics").text
    assert "cpn_scheduler_cluster_utilisation" in text
    assert 'cpn_scheduler_card_utilisation{card="card0"}' in text
    assert c.get("/api/v1/pool/instances/nope/state", headers=OP).status_code == 404


def test_placement_endpoint_incremental(rt: Runtime) -> None:
    c = TestClient(create_app(rt))
    flows = [{"id": f"cam{i}", "origin": "MEC-GZ1", "cpu": 4, "bandwidth_mbps": 50,
              "max_delay_ms": 5} for i in range(3)]
    r = c.post("/api/v1/scheduler/placement", headers=OP, json={"flows": flows})
    assert r.status_code == 200, r.text
    first = r.json()
    assert not first["unplaced"] and first["bound"] <= first["objective"] + 1e-6
    assert all(a["site"] for a in first["assign"].values())
    r = c.post("/api/v1/scheduler/placement", headers=OP, json={"flows": flows})
    again = r.json()
    assert again["moved"] == [] and again["assign"] == first["assign"]
    bad = c.post("/api/v1/scheduler/placement", headers=OP, json={"flows": [{"id": "x"}]})
    assert bad.status_code == 422


def test_regression_placement_demand_near_float_max_is_refused_naming_the_field(
        rt: Runtime) -> None:
    """A demand near 1e308 used to reach the planner and overflow its integer costs."""
    c = TestClient(create_app(rt))
    for field, value in (("cpu", 1e308), ("bandwidth_mbps", 1e300), ("memory_gib", 1e12)):
        flow = {"id": "huge", "origin": "MEC-GZ1", field: value}
        r = c.post("/api/v1/scheduler/placement", headers=OP, json={"flows": [flow]})
        assert r.status_code == 422, r.text
        assert field in r.text
    r = c.post("/api/v1/scheduler/placement", headers=OP,
               json={"flows": [{"id": "ok", "origin": "MEC-GZ1", "cpu": 1}],
                     "slices": {"gold": 1e200}})
    assert r.status_code == 422 and "gold" in r.text


def test_topology_event_triggers_incremental_replan(rt: Runtime) -> None:
    from controller.models import Link, LinkState
    from scheduler.api import PlacementBody, plan_from_store

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        comps = components(rt)
        await rt.start(comps)
        try:
            shared = rt.settings.extra["scheduler"]
            body = PlacementBody.model_validate({"flows": [
                {"id": f"f{i}", "origin": "MEC-GZ1", "cpu": 2, "bandwidth_mbps": 10,
                 "allowed_sites": ["HUB-GZ"]} for i in range(2)]})
            first = plan_from_store(rt.store, body, shared, 2.0)
            used = {ln for a in first["assign"].values() for ln in a["links"]}
            key = sorted(used)[0]
            link = rt.store.get(Link, key)
            assert link is not None
            rt.writer.put(link.model_copy(update={"state": LinkState.DOWN}), "test",
                          "fibre cut")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                cur = shared.get("placement")
                if cur is not None and cur["planned_at"] > first["planned_at"]:
                    return first, cur
                await asyncio.sleep(0.05)
            return first, shared["placement"]
        finally:
            await rt.stop()

    first, after = asyncio.run(main())
    assert after["planned_at"] > first["planned_at"]
    cut = sorted({ln for a in first["assign"].values() for ln in a["links"]})[0]
    assert all(a is None or cut not in a["links"] for a in after["assign"].values())
    assert set(after["moved"]) == {f for f, a in first["assign"].items() if cut in a["links"]}


def test_gang_jobs_run_together_or_stay_queued(rt: Runtime) -> None:
    """Gang co-scheduling through the store: members wait (queued, nothing running)
    until the whole gang can be placed in one pass, then all run (WP-3.3.3)."""
    def member(jid: str) -> Job:
        return Job(id=jid, tenant="ai-lab", owner="bob",
                   spec=JobSpec(name=jid, requirements=Requirements(cpu_cores=1),
                                params={"gang": "train", "gang_size": 3}))

    put(rt, member("w0"), member("w1"))
    comp = SchedulerComponent()
    comp.run_pass(rt.store)
    for jid in ("w0", "w1"):
        got = rt.store.get(Job, jid)
        assert got is not None and got.state is JobState.QUEUED and got.site is None
        assert "gang train: 2/3 reserved, waiting" in got.reason
    put(rt, member("w2"))
    comp.run_pass(rt.store)
    states = {j.id: j for j in rt.store.list(Job)}
    assert all(states[j].state is JobState.RUNNING and states[j].site
               for j in ("w0", "w1", "w2"))
