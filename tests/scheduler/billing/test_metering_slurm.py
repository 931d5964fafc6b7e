"""Metering test with a real workload manager (issue #18 "Show", GBA-6.7): jobs run on a
Slurm cluster (slurmctld + slurmd + munged), their runs are recorded on the jobs as the
centre reported them (site, start/end, CPUs), the meter turns them into usage records
and the bill's total matches the catalogue by hand: Σ cores × seconds × the price the
site reports per core·hour / 3600, rounded half-up to the cent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.models import ComputeMetrics, Job, JobRun, JobSpec, JobState, Tenant
from labs.slurm import SlurmCluster, available
from scheduler.billing.models import UsageRecord
from scheduler.centres.base import ENDED, CentreJob, CentreJobState, CentreJobStatus
from scheduler.centres.slurm import SlurmCentre
from tests.conftest import example_runtime

pytestmark = [pytest.mark.lab, pytest.mark.skipif(available() is not None,
                                                  reason=str(available()))]

OP = "op-token-0123456789"
SITE = "GZ-DC"
JOBS = {"job-a": ("sleep 2", 1), "job-b": ("sleep 3", 2)}  # command, CPUs


async def run_jobs(centre: SlurmCentre) -> dict[str, CentreJobStatus]:
    for jid, (cmd, cpus) in JOBS.items():
        await centre.submit(CentreJob(key=f"{jid}.1", job_id=jid, name=jid, command=cmd,
                                      cpus=cpus, walltime_s=120))
    done: dict[str, CentreJobStatus] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while len(done) < len(JOBS):
        for jid in JOBS:
            st = await centre.find(f"{jid}.1")
            if st is not None and st.state in ENDED:
                done[jid] = st
        if loop.time() > deadline:
            raise AssertionError(f"Slurm jobs did not end in time: {done}")
        await asyncio.sleep(0.3)
    return done


def test_jobs_that_ran_on_slurm_are_billed_by_the_catalogue(tmp_path: Path) -> None:
    with SlurmCluster("bill", tmp_path / "slurm", cpus=4) as cluster:
        centre = SlurmCentre(SITE, cluster.conf, cluster.workdir, jobcomp=cluster.jobcomp)
        ran = asyncio.run(run_jobs(centre))
    assert all(s.state is CentreJobState.COMPLETED for s in ran.values()), ran
    with example_runtime(tmp_path / "ctl", "gba.yaml", (OP, "ops", "operator", None)) as rt:
        rt.writer.put(Tenant(name="acme"), "test", "seed")
        # the site agent reports the centre's price per core·hour
        rt.writer.put(ComputeMetrics(site=SITE, l0={"price_per_hour": 97.3}, l2=8), "agent",
                      "report")
        for jid, st in ran.items():  # what the dispatch loop records from the centre
            start = datetime.fromtimestamp(st.started_at, UTC)
            end = datetime.fromtimestamp(st.ended_at, UTC)
            rt.writer.put(Job(id=jid, tenant="acme", owner="u", spec=JobSpec(name=jid),
                              state=JobState.FINISHED, site=SITE, started_at=start,
                              ended_at=end,
                              run=JobRun(site=SITE, centre_job_id=st.centre_id,
                                         centre_state=st.raw_state, exit_code=st.exit_code,
                                         started_at=start, ended_at=end, node=st.node,
                                         resources={"cpu": JOBS[jid][1]})),
                          "centre", "finished at the centre")
        c = TestClient(create_app(rt))
        assert c.post("/api/v1/price-plans", headers={"Authorization": f"Bearer {OP}"},
                      json={"name": "centre-payg", "site_price": True,
                            "rates": {"cpu": "0.50"}}).status_code == 201
        assert c.post("/api/v1/orders", headers={"Authorization": f"Bearer {OP}"},
                      json={"tenant": "acme", "plan": "centre-payg",
                            "start": "2026-01-01T00:00:00Z"}).status_code == 201
        month = datetime.fromtimestamp(ran["job-a"].started_at, UTC).strftime("%Y-%m")
        b = c.get("/api/v1/bills/acme", headers={"Authorization": f"Bearer {OP}"},
                  params={"month": month}).json()
        recs = {r.ref: r for r in rt.store.list(UsageRecord)}
        # by hand, from what Slurm reported
        core_s = {jid: Decimal(JOBS[jid][1]) * Decimal(int(st.ended_at - st.started_at))
                  for jid, st in ran.items()}
        for jid in JOBS:
            assert recs[jid].quantity == core_s[jid] > 0
            assert recs[jid].site_price == Decimal("97.3")
        want = (sum(core_s.values(), Decimal(0)) * Decimal("97.3") / 3600).quantize(
            Decimal("0.01"), ROUND_HALF_UP)
        assert b["total"] == str(want) and Decimal(b["total"]) > 0
        (line,) = b["lines"]
        assert Decimal(line["unit_price"]) == Decimal("97.3") and line["site"] == SITE
        assert sorted(line["records"]) == ["job:job-a.1:cpu", "job:job-b.1:cpu"]
