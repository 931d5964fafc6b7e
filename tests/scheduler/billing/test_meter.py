"""Metering (GBA-6.7): records from job runs and from intervals in the journal
(instances in use, steered flows, slices held); idempotent and restartable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from controller.models import Job, JobRun, JobSpec, JobState, Tenant
from controller.runtime import Runtime
from scheduler.billing.meter import Meter, seconds
from scheduler.billing.models import Order, OrderItem, Product, UsageRecord
from tests.conftest import example_runtime


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with example_runtime(tmp_path, "gba.yaml") as runtime:
        runtime.writer.put(Tenant(name="acme"), "test", "seed")
        yield runtime


def ran(rt: Runtime, jid: str, start: datetime, secs: float, resources: dict[str, float],
        site: str = "GZ-DC") -> Job:
    job = Job(id=jid, tenant="acme", owner="u", spec=JobSpec(name=jid), state=JobState.FINISHED,
              site=site, started_at=start, ended_at=start + timedelta(seconds=secs),
              run=JobRun(site=site, centre_job_id="17", started_at=start,
                         ended_at=start + timedelta(seconds=secs), resources=resources,
                         exit_code=0))
    rt.writer.put(job, "centre", "job finished")
    return job


def test_seconds_is_exact() -> None:
    a = datetime(2026, 1, 1, tzinfo=UTC)
    assert seconds(a, a + timedelta(days=1, microseconds=7)) == Decimal("86400.000007")


def test_job_runs_become_records_once(rt: Runtime) -> None:
    t0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    ran(rt, "job-1", t0, 90, {"cpu": 2, "memory": 4})
    m = Meter(rt.store)
    assert m.run_pass() == 2
    recs = {r.id: r for r in rt.store.list(UsageRecord)}
    cpu = recs["job:job-1.1:cpu"]
    assert cpu.product is Product.CPU and cpu.quantity == Decimal(180) and cpu.tenant == "acme"
    assert recs["job:job-1.1:memory"].quantity == Decimal(360)
    assert m.run_pass() == 0
    assert Meter(rt.store).run_pass() == 0  # restart: position kept in the store's meta


def test_slice_held_and_flow_steered_are_intervals(rt: Runtime) -> None:
    from srv6.flows import FlowSteering
    from srv6.models import Slice

    rt.writer.put(Order(id="o1", tenant="acme", plan="p",
                        start=datetime(2026, 1, 1, tzinfo=UTC),
                        items=[OrderItem(kind="slice", key="gold")]), "test", "order")
    m = Meter(rt.store)
    with rt.store.transaction("test", "slice") as txn:
        txn.put(Slice(name="gold", color=100, guaranteed_mbps=50))
    m.run_pass()
    assert not rt.store.list(UsageRecord)
    assert m.open_usage(datetime.now(UTC) + timedelta(hours=1))[0].tenant == "acme"
    with rt.store.transaction("test", "slice") as txn:
        txn.put(Slice(name="gold", color=100, guaranteed_mbps=80))  # re-sized: new interval
    with rt.store.transaction("test", "flow") as txn:
        txn.put(FlowSteering(service="video", headend="R1", site="GZ-DC",
                             decided_at=datetime.now(UTC), committed=True))
    with rt.store.transaction("test", "slice") as txn:
        txn.delete(Slice, "gold")
    m.run_pass()
    recs = sorted(rt.store.list(UsageRecord), key=lambda r: r.start)
    assert [(r.source, r.rate, r.tenant) for r in recs] == [("slice", Decimal(50), "acme"),
                                                            ("slice", Decimal(80), "acme")]
    assert all(r.quantity == r.rate * seconds(r.start, r.end) for r in recs)
    flow = m.open["flow-steering/video@R1"]  # still steered; nobody ordered the service
    assert flow.product == Product.FLOW.value and flow.tenant == "" and flow.site == "GZ-DC"


def test_accelerator_instance_time_is_billed_to_the_jobs_tenant(rt: Runtime) -> None:
    from controller.models import ComputeInstance, InstanceSpec, InstanceState, InstanceTopology

    t0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    ran(rt, "job-gpu", t0, 60, {"gpu": 1})
    inst = ComputeInstance(id="gpu0-i1", spec=InstanceSpec(compute_tflops=10, memory_gib=8),
                           topology=InstanceTopology(card="gpu0", server="s1",
                                                     cluster="GZ-DC"))
    m = Meter(rt.store)
    with rt.store.transaction("pool", "occupy") as txn:
        txn.put(inst.model_copy(update={"state": InstanceState.IN_USE, "task": "job-gpu"}))
    m.run_pass()
    with rt.store.transaction("pool", "release") as txn:
        txn.put(inst.model_copy(update={"state": InstanceState.AVAILABLE, "task": None}))
    m.run_pass()
    (rec,) = [r for r in rt.store.list(UsageRecord) if r.source == "instance"]
    assert rec.product is Product.INSTANCE and rec.tenant == "acme" and rec.site == "GZ-DC"
    assert rec.quantity == seconds(rec.start, rec.end) > 0 and rec.detail["task"] == "job-gpu"
