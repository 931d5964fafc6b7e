"""Reservation and backfill on the live controller (WP-3.3.3): the scheduler and
dispatcher components running, a centre (simulated) really holding a long job; a large
job's reservation persists between passes and backfill admits only a job that ends
before it starts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.config import parse_config
from controller.models import Job, JobState
from controller.runtime import Runtime, Settings
from scheduler.centres.plugin import components as centre_components
from scheduler.registration import components as scheduler_components
from tests.scheduler.centres.test_dispatch import job, state, until


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    cfg = parse_config(f"""
zone: cpn.example
sites:
  - {{name: DC-A, kind: compute-centre, region: r1}}
centres:
  poll_s: 0.05
  report_s: 0.05
  sites:
    DC-A: {{backend: sim, workdir: {tmp_path}/a, cpus: 4}}
scheduler:
  interval_s: 0.1
  profiles:
    default:
      plugins: [node-resources-fit, reservation, resources, default-binder]
""")
    runtime = Runtime(cfg, Settings(state=tmp_path / "state"))
    runtime.apply_config()
    try:
        yield runtime
    finally:
        runtime.store.close()


def reason(rt: Runtime, jid: str) -> str:
    j = rt.store.get(Job, jid)
    return j.reason if j else ""


def test_backfill_admits_only_what_ends_before_the_reservation(rt: Runtime) -> None:
    async def main() -> None:
        comps = scheduler_components(rt) + centre_components(rt)
        await rt.start(comps)
        sched = comps[0].inner  # type: ignore[attr-defined]
        try:
            rt.writer.put(job("hold", cpu=3, walltime_s=60,
                              params={"env": {"CPN_SIM_RUNTIME_S": "60"}}), "t", "s")
            await until(rt, lambda: state(rt, "hold") is JobState.RUNNING, "hold runs")
            rt.writer.put(job("big", cpu=4, walltime_s=30), "t", "s")
            await until(rt, lambda: any(r[0] == "big" for r in sched.reservations.values()),
                        "big reserves a node")
            node, (owner, start) = next(iter(sched.reservations.items()))
            hold = rt.store.get(Job, "hold")
            assert owner == "big" and node.startswith("DC-A")
            assert hold is not None and hold.started_at is not None
            assert abs(start - (hold.started_at.timestamp() + 60)) < 2  # the walltime end
            # both outrank big, so each pass looks at them first: only the reservation
            # kept from earlier passes stands between "long" and big's node
            rt.writer.put_many([job("short", cpu=1, walltime_s=10, priority=900,
                                    params={"env": {"CPN_SIM_RUNTIME_S": "0.2"}}),
                                job("long", cpu=1, walltime_s=600, priority=900)], "t", "s")
            await until(rt, lambda: state(rt, "short") is JobState.FINISHED, "short ran")
            await until(rt, lambda: "reserved for big" in reason(rt, "long"), "long held")
            passes = sched.passes
            await until(rt, lambda: sched.passes >= passes + 3, "more passes")
            # the reservation survived the passes: long is still held, big still waits
            assert state(rt, "long") is JobState.QUEUED and state(rt, "big") is JobState.QUEUED
            assert sched.reservations.get(node, ("",))[0] == "big"
        finally:
            await rt.stop()
    asyncio.run(main())
