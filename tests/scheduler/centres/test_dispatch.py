"""The dispatcher with the scheduler on the real runtime, centres simulated (GBA-6.3,
GBA-6.5g): placement → dispatched → running → finished/failed/cancelled, refusal and
outage requeue elsewhere, idempotent after a restart, cancel reaches the centre."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.config import parse_config
from controller.models import Job, JobSpec, JobState, Requirements
from controller.runtime import Runtime, Settings
from controller.store import JournalQuery
from scheduler.centres.dispatch import Dispatcher
from scheduler.centres.models import CentreStatus
from scheduler.centres.plugin import adapters
from scheduler.centres.sim import SimCentre
from scheduler.component import SchedulerComponent


def config(tmp: Path) -> str:
    return f"""
zone: cpn.example
sites:
  - name: DC-A
    kind: compute-centre
    region: r1
    price_per_hour: 1.0
    links: [{{to: DC-B, kind: ip-private, delay_ms: 2, capacity_mbps: 10000}}]
  - name: DC-B
    kind: compute-centre
    region: r2
    price_per_hour: 3.0
centres:
  poll_s: 0.05
  report_s: 0.05
  lost_after_s: 5
  sites:
    DC-A: {{backend: sim, workdir: {tmp}/a, cpus: 4, runtime_s: 0.3}}
    DC-B: {{backend: sim, workdir: {tmp}/b, cpus: 4, runtime_s: 0.3}}
scheduler:
  profiles:
    default:
      plugins: [manual, node-resources-fit, data-aware, price-aware, preemption,
                resources, default-binder]
      weights: {{price-aware: 1.0, data-aware: 10.0}}
"""


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    cfg = parse_config(config(tmp_path))
    runtime = Runtime(cfg, Settings(state=tmp_path / "state"))
    runtime.apply_config()
    try:
        yield runtime
    finally:
        runtime.store.close()


def job(jid: str, cpu: float = 1, **spec: object) -> Job:
    return Job(id=jid, tenant="default", owner="t",
               spec=JobSpec(name=jid, requirements=Requirements(cpu_cores=cpu),
                            command="echo hi > out.txt", outputs=["out.txt"],
                            **spec))  # type: ignore[arg-type]


def sim(rt: Runtime, site: str) -> SimCentre:
    a = adapters(rt)[site]
    assert isinstance(a, SimCentre)
    return a


async def until(rt: Runtime, pred: Callable[[], bool], what: str, t: float = 10.0) -> None:
    end = time.monotonic() + t
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}: "
                                 f"{[(j.id, j.state.value, j.reason) for j in rt.store.list(Job)]}")
        await asyncio.sleep(0.02)


def state(rt: Runtime, jid: str) -> JobState:
    j = rt.store.get(Job, jid)
    assert j is not None
    return j.state


async def start(rt: Runtime) -> Dispatcher:
    from scheduler.centres.plugin import components as dcomps
    from scheduler.registration import components as scomps

    comps = scomps(rt) + dcomps(rt)
    await rt.start(comps)
    d = comps[-1]
    assert isinstance(d, Dispatcher)
    return d


def test_job_life_follows_the_centre(rt: Runtime) -> None:
    async def main() -> None:
        await start(rt)
        try:
            rt.writer.put_many([job("ok"), job("bad", params={"env": {"CPN_SIM_EXIT": "3"}}),
                                job("long", params={"env": {"CPN_SIM_RUNTIME_S": "60"}})],
                               "test", "submit")
            await until(rt, lambda: state(rt, "ok") is JobState.FINISHED, "ok finished")
            await until(rt, lambda: state(rt, "bad") is JobState.FAILED, "bad failed")
            await until(rt, lambda: state(rt, "long") is JobState.RUNNING, "long running")
            ok, bad = rt.store.get(Job, "ok"), rt.store.get(Job, "bad")
            assert ok is not None and ok.run is not None and ok.site == "DC-A"  # cheaper
            assert ok.run.exit_code == 0 and ok.run.centre_job_id and ok.started_at
            assert ok.ended_at and ok.run.resources == {"cpu": 1.0}
            assert bad is not None and bad.run is not None and bad.run.exit_code == 3
            assert "exit code 3" in bad.reason
            # the journal says each step with its time
            reasons = [e.reason for e in rt.store.journal(JournalQuery(key="ok"))]
            assert any("submitted to DC-A" in r for r in reasons)
            assert any("running at DC-A" in r for r in reasons)
            assert any("finished at DC-A" in r for r in reasons)
            # cancel reaches the centre
            from controller.api.jobs import transition

            long = rt.store.get(Job, "long")
            assert long is not None and long.run is not None
            transition(rt, long, JobState.CANCELLED, "test", "cancelled by user")
            cid = long.run.centre_job_id
            a = sim(rt, "DC-A")
            await until(rt, lambda: a._jobs[str(cid)].state.value == "cancelled",
                        "cancel at the centre")
        finally:
            await rt.stop()
    asyncio.run(main())


def test_refused_and_down_centres_requeue_elsewhere(rt: Runtime) -> None:
    async def main() -> None:
        sim(rt, "DC-A").refuse = "partition batch closed for maintenance"
        await start(rt)
        try:
            rt.writer.put(job("r1"), "test", "submit")
            await until(rt, lambda: state(rt, "r1") is JobState.FINISHED, "r1 finished")
            r1 = rt.store.get(Job, "r1")
            assert r1 is not None and r1.site == "DC-B" and r1.run is not None
            assert r1.run.attempt == 2 and r1.attempts[0].site == "DC-A"
            reasons = [e.reason for e in rt.store.journal(JournalQuery(key="r1"))]
            assert any("refused the job" in r and "maintenance" in r for r in reasons)
            # DC-B goes down: nothing more goes there; its status says why
            sim(rt, "DC-A").refuse = ""
            sim(rt, "DC-B").down = True
            await until(rt, lambda: (c := rt.store.get(CentreStatus, "DC-B")) is not None
                        and c.state == "down", "DC-B down")
            rt.writer.put(job("r2", site=None), "test", "submit")
            await until(rt, lambda: state(rt, "r2") is JobState.FINISHED, "r2 finished")
            r2 = rt.store.get(Job, "r2")
            assert r2 is not None and r2.site == "DC-A"
        finally:
            await rt.stop()
    asyncio.run(main())


def test_restart_adopts_instead_of_submitting_twice(rt: Runtime) -> None:
    # a placed job whose submission reached the centre but not the store (crash between)
    async def main() -> None:
        d = await start(rt)
        a = sim(rt, "DC-A")
        try:
            rt.writer.put(job("once", params={"env": {"CPN_SIM_RUNTIME_S": "60"}}),
                          "test", "submit")
            await until(rt, lambda: state(rt, "once") is JobState.RUNNING, "running")
            assert a.submits == 1
            # forget the centre id, as if the write after sbatch had been lost
            cur = rt.store.get(Job, "once")
            assert cur is not None and cur.run is not None
            rt.writer.put(cur.model_copy(update={
                "state": JobState.DISPATCHED,
                "run": cur.run.model_copy(update={"centre_job_id": None})}), "test", "crash")
            await d.reconcile()
            await until(rt, lambda: state(rt, "once") is JobState.RUNNING, "adopted")
            assert a.submits == 1
        finally:
            await rt.stop()
    asyncio.run(main())


def test_job_over_every_centre_is_not_dispatched(rt: Runtime) -> None:
    async def main() -> None:
        await start(rt)
        try:
            rt.writer.put(job("huge", cpu=64), "test", "submit")
            await until(rt, lambda: state(rt, "huge") in (JobState.FAILED, JobState.QUEUED)
                        and bool(rt.store.get(Job, "huge").reason), "huge decided")  # type: ignore[union-attr]
            huge = rt.store.get(Job, "huge")
            assert huge is not None and huge.run is None and "cpu" in huge.reason
            assert sim(rt, "DC-A").submits == sim(rt, "DC-B").submits == 0
        finally:
            await rt.stop()
    asyncio.run(main())


def test_component_used_directly_writes_dispatched(rt: Runtime) -> None:
    rt.writer.put(job("p"), "test", "submit")
    comp = SchedulerComponent()
    comp.centre_sites = frozenset({"DC-A", "DC-B"})
    assert comp.run_pass(rt.store) == []  # no centre has reported: capacity unknown
    assert state(rt, "p") is JobState.SUBMITTED
    rt.writer.put_many([CentreStatus(site="DC-A", backend="sim", resources={"cpu": 4}),
                        CentreStatus(site="DC-B", backend="sim", state="down")], "test", "r")
    comp.run_pass(rt.store)
    p = rt.store.get(Job, "p")
    assert p is not None and p.state is JobState.DISPATCHED and p.run is not None
    assert p.run.site == p.site == "DC-A" and p.run.attempt == 1 and p.started_at is None


def test_logs_and_results_over_rest(rt: Runtime) -> None:
    from fastapi.testclient import TestClient

    from controller.api.app import create_app
    from controller.auth import digest

    rt.store.add_token(digest("op-token-0123456789"), "ops", "operator", None)
    rt.store.add_token(digest("other-token-0123456789"), "eve", "tenant", "other")
    op = {"Authorization": "Bearer op-token-0123456789"}

    async def main() -> None:
        await start(rt)
        try:
            rt.writer.put_many([job("r"), job("q", cpu=64)], "test", "submit")
            await until(rt, lambda: state(rt, "r") is JobState.FINISHED, "r finished")
        finally:
            await rt.stop()
    asyncio.run(main())
    c = TestClient(create_app(rt))
    logs = c.get("/api/v1/jobs/r/logs", headers=op).json()
    assert logs["text"].startswith("sim r.1 ran on DC-A") and logs["state"] == "finished"
    tail = c.get("/api/v1/jobs/r/logs", headers=op, params={"offset": 4}).json()
    assert tail["text"] == logs["text"][4:]
    res = c.get("/api/v1/jobs/r/results", headers=op).json()
    assert {f["name"] for f in res["files"]} >= {"stdout", "out.txt"} and not res["missing"]
    body = c.get("/api/v1/jobs/r/results/out.txt", headers=op)
    assert body.status_code == 200 and body.content == b"sim r.1 out.txt\n"
    part = c.get("/api/v1/jobs/r/results/out.txt", headers={**op, "Range": "bytes=4-"})
    assert part.status_code == 206 and part.content == body.content[4:]
    # bad input: undeclared file, path escape, a job that never ran, another tenant
    assert c.get("/api/v1/jobs/r/results/job.sh", headers=op).status_code == 404
    assert c.get("/api/v1/jobs/r/results/..%2F..%2Fetc%2Fpasswd",
                 headers=op).status_code in (404, 422)
    never = c.get("/api/v1/jobs/q/logs", headers=op)
    assert never.status_code == 409 and "never ran at a centre" in never.json()["error"]["message"]
    assert c.get("/api/v1/jobs/r/logs", headers={
        "Authorization": "Bearer other-token-0123456789"}).status_code == 404
    centres = c.get("/api/v1/centres", headers=op).json()["items"]
    assert {x["site"]: x["state"] for x in centres} == {"DC-A": "up", "DC-B": "up"}
    assert all(x["resources"]["cpu"] == 4 for x in centres)


def test_modify_of_a_job_waiting_at_the_centre_reaches_it(rt: Runtime) -> None:
    from fastapi.testclient import TestClient

    from controller.api.app import create_app
    from controller.auth import digest

    rt.store.add_token(digest("op-token-0123456789"), "ops", "operator", None)
    c = TestClient(create_app(rt))
    op = {"Authorization": "Bearer op-token-0123456789"}

    async def main() -> None:
        await start(rt)
        try:
            await until(rt, lambda: len(rt.store.list(CentreStatus)) == 2, "reports")
            for site in ("DC-A", "DC-B"):  # the centres' own users now hold 3 cores
                sim(rt, site).local_cpus = 3
            rt.writer.put(job("w", cpu=2, walltime_s=100), "test", "submit")
            await until(rt, lambda: (j := rt.store.get(Job, "w")) is not None
                        and j.run is not None and j.run.centre_state == "PENDING",
                        "waiting at the centre")
            w = rt.store.get(Job, "w")
            assert w is not None and w.state is JobState.DISPATCHED and w.run is not None
            r = await asyncio.to_thread(c.patch, "/api/v1/jobs/w", headers=op,
                                        json={"walltime_s": 300})
            assert r.status_code == 200, r.text
            centre_job = sim(rt, str(w.site))._jobs[str(w.run.centre_job_id)]
            await until(rt, lambda: centre_job.walltime_s == 300, "walltime at the centre")
            await until(rt, lambda: "change applied" in reason_of(rt, "w"), "journaled")
        finally:
            await rt.stop()
    asyncio.run(main())


def reason_of(rt: Runtime, jid: str) -> str:
    j = rt.store.get(Job, jid)
    return j.reason if j else ""


def test_job_the_list_forgot_is_read_back_not_rerun(rt: Runtime) -> None:
    # Slurm drops ended jobs from squeue after MinJobAge; the completion log still has
    # them. A job missing from the list is looked up before it is called lost.
    async def main() -> None:
        d = await start(rt)
        d.section = d.section.model_copy(update={"lost_after_s": 0.1})
        a = sim(rt, "DC-A")
        listing = a.jobs

        async def forgetful() -> list[object]:
            return [s for s in await listing() if s.state.value == "pending"
                    or s.state.value == "running"]
        try:
            a.jobs = forgetful  # type: ignore[method-assign,assignment]
            rt.writer.put(job("f"), "test", "submit")
            await until(rt, lambda: state(rt, "f") is JobState.FINISHED, "read back")
            f = rt.store.get(Job, "f")
            assert f is not None and f.run is not None and f.run.exit_code == 0
            assert f.attempts == [] and a.submits == 1  # not requeued, not run twice
        finally:
            await rt.stop()
    asyncio.run(main())
