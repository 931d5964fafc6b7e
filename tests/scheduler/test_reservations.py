"""Reservations are stored entities (WP-3.3.3): they persist between passes and across a
controller restart, and backfill on the live controller against a real Slurm cluster
admits only a job that ends before the reservation starts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from controller.config import parse_config
from controller.models import Job, JobSpec, JobState, Requirements
from controller.runtime import Runtime, Settings
from controller.store import Store
from scheduler.reservations import Reservation, load, save
from tests.scheduler.centres.test_dispatch import state, until


def job(jid: str, cpu: float, command: str, **spec: object) -> Job:
    return Job(id=jid, tenant="default", owner="t",
               spec=JobSpec(name=jid, requirements=Requirements(cpu_cores=cpu),
                            command=command, **spec))  # type: ignore[arg-type]


def test_save_writes_only_the_difference(tmp_path: Path) -> None:
    from controller.store.sqlite import SqliteStore

    store: Store = SqliteStore(tmp_path / "s.db")
    try:
        assert not save(store, {}, {}, {})
        assert save(store, {}, {"DC-A/n1": ("big", 1000.0)}, {"DC-A/n1": "DC-A"})
        r = store.get(Reservation, "DC-A/n1")
        assert r is not None and (r.job, r.site, r.start) == ("big", "DC-A", 1000.0)
        before = load(store)
        assert not save(store, before, dict(before), {})  # unchanged: nothing written
        assert save(store, before, {}, {})  # the job was placed: released
        assert load(store) == {}
    finally:
        store.close()


def _config(conf: Path, workdir: Path) -> str:
    return f"""
zone: cpn.example
sites:
  - {{name: DC-A, kind: compute-centre, region: r1}}
centres:
  poll_s: 0.2
  report_s: 0.5
  sites:
    DC-A: {{backend: slurm, conf: {conf}, workdir: {workdir}}}
scheduler:
  interval_s: 0.2
  profiles:
    default:
      plugins: [node-resources-fit, reservation, resources, default-binder]
"""


def _reason(rt: Runtime, jid: str) -> str:
    j = rt.store.get(Job, jid)
    return j.reason if j else ""


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0, reason="Slurm daemons need root")
def test_reservation_survives_a_restart_and_backfill_holds_on_real_slurm(
        tmp_path: Path) -> None:
    """A 4-core Slurm cluster: ``hold`` (3 cores, 120 s walltime) runs there; ``big``
    (4 cores) reserves the node from hold's walltime end. The controller restarts; two
    1-core jobs that outrank big were queued meanwhile, and the first pass after the
    restart already honours the stored reservation: ``short`` (10 s) is backfilled and
    really runs at the centre, ``long`` (600 s, would delay big) is held."""
    from labs.slurm import SlurmCluster, available
    from scheduler.centres.plugin import components as centre_components
    from scheduler.registration import components as scheduler_components

    if available():
        pytest.skip(str(available()))
    cluster = SlurmCluster("rsv", tmp_path / "slurm", cpus=4)
    cfg_text = ""

    async def run(rt: Runtime, body: object) -> None:
        await rt.start(scheduler_components(rt) + centre_components(rt))
        try:
            await body  # type: ignore[misc]
        finally:
            await rt.stop()

    def runtime() -> Runtime:
        rt = Runtime(parse_config(cfg_text), Settings(state=tmp_path / "state"))
        rt.apply_config()
        return rt

    async def first(rt: Runtime) -> None:
        rt.writer.put(job("hold", 3, "sleep 120", walltime_s=120), "t", "s")
        await until(rt, lambda: state(rt, "hold") is JobState.RUNNING, "hold runs", 40)
        rt.writer.put(job("big", 4, "true", walltime_s=60), "t", "s")
        await until(rt, lambda: bool(rt.store.list(Reservation)), "big reserves the node", 20)

    with cluster:
        cfg_text = _config(cluster.conf, cluster.workdir)
        rt = runtime()
        try:
            asyncio.run(run(rt, first(rt)))
            [held] = rt.store.list(Reservation)
            hold = rt.store.get(Job, "hold")
            assert held.job == "big" and held.site == "DC-A" and held.node.startswith("DC-A")
            assert hold is not None and hold.started_at is not None
            assert abs(held.start - (hold.started_at.timestamp() + 120)) < 3  # walltime end
        finally:
            rt.store.close()

        rt = runtime()  # the controller comes back on the same state
        try:
            # queued while it was down: both outrank big and fit the one free core
            rt.writer.put_many([job("short", 1, "echo backfilled > out.txt", walltime_s=10,
                                    priority=900),
                                job("long", 1, "sleep 600", walltime_s=600, priority=900)],
                               "t", "s")

            async def second() -> None:
                await until(rt, lambda: state(rt, "short") is JobState.FINISHED,
                            "short backfilled and ran at the centre", 40)
                await until(rt, lambda: "reserved for big" in _reason(rt, "long"),
                            "long held by the reservation", 10)

            asyncio.run(run(rt, second()))
            short = rt.store.get(Job, "short")
            assert short is not None and short.run is not None
            assert short.run.centre_job_id and short.run.exit_code == 0
            assert state(rt, "long") is JobState.QUEUED and state(rt, "big") is JobState.QUEUED
            [after] = rt.store.list(Reservation)
            assert (after.node, after.job, after.start) == (held.node, "big", held.start)
        finally:
            rt.store.close()
