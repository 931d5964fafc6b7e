"""Accelerator instances in the dispatch loop (GBT-6.2.8, GBT-7.2, GBT-9.2.4): taken
atomically from the pool at dispatch, given back atomically when the job ends, all or
nothing; the pool's metrics follow. Centres simulated."""

from __future__ import annotations

import asyncio

from controller.models import ComputeInstance, InstanceState, Job, JobState
from controller.models.job import AcceleratorRequest
from controller.runtime import Runtime
from scheduler.pool import AcceleratorCard, Pool
from tests.scheduler.centres.test_dispatch import job, rt, start, state, until

__all__ = ["rt"]


def cards(rt: Runtime) -> None:
    pool = Pool()
    for i, server in enumerate(("a1", "a1", "a2")):
        pool.add_card(AcceleratorCard(id=f"gpu{i}", server=server, switch="sw1",
                                      cluster="DC-A", compute_tflops=300, memory_gib=80))
        pool.carve(f"gpu{i}", fraction=0.5)
        pool.carve(f"gpu{i}", fraction=0.5)
    rt.writer.put_many([*pool.cards.values(), *pool.instances.values()], "test", "pool")


def held(rt: Runtime, jid: str) -> list[str]:
    return sorted(i.id for i in rt.store.list(ComputeInstance)
                  if i.state is InstanceState.IN_USE and i.task == jid)


def test_instances_taken_at_dispatch_and_given_back_at_the_end(rt: Runtime) -> None:
    cards(rt)

    async def main() -> None:
        await start(rt)
        try:
            acc = AcceleratorRequest(count=3, min_tflops=100)
            rt.writer.put(job("train", accelerators=acc,
                              params={"env": {"CPN_SIM_RUNTIME_S": "1.5"}}), "test", "s")
            await until(rt, lambda: state(rt, "train") is JobState.RUNNING, "running")
            j = rt.store.get(Job, "train")
            assert j is not None and j.run is not None and j.site == "DC-A"
            assert len(j.run.instances) == 3 and held(rt, "train") == j.run.instances
            # topology-aware: the three fit one server's four instances
            servers = {i.topology.server for i in rt.store.list(ComputeInstance)
                       if i.id in j.run.instances}
            assert servers == {"a1"}
            # a second job wanting 4 cannot have them now: all or nothing, none taken
            rt.writer.put(job("greedy", accelerators=AcceleratorRequest(count=4)),
                          "test", "s")
            from controller.store import JournalQuery

            await until(rt, lambda: any("free gpu instance" in e.reason for e in
                                        rt.store.journal(JournalQuery(key="greedy"))),
                        "refused by the pool")
            assert held(rt, "greedy") == []
            await until(rt, lambda: state(rt, "train") is JobState.FINISHED, "finished")
            await until(rt, lambda: held(rt, "train") == [], "released")
            # with "train"'s instances back, "greedy" gets its four (after DC-A's
            # refusal cools down it may wait; the pool is what matters here)
            metrics = rt.settings.extra["scheduler"]["recorder"].report(0)
            assert metrics["requested"] >= 2 and 0 < metrics["success_rate"] < 1
        finally:
            await rt.stop()
    asyncio.run(main())


def test_cancelled_job_gives_its_instances_back(rt: Runtime) -> None:
    cards(rt)

    async def main() -> None:
        await start(rt)
        try:
            rt.writer.put(job("c", accelerators=AcceleratorRequest(count=2),
                              params={"env": {"CPN_SIM_RUNTIME_S": "60"}}), "test", "s")
            await until(rt, lambda: state(rt, "c") is JobState.RUNNING, "running")
            assert len(held(rt, "c")) == 2
            from controller.api.jobs import transition

            cur = rt.store.get(Job, "c")
            assert cur is not None
            transition(rt, cur, JobState.CANCELLED, "test", "cancelled by user")
            await until(rt, lambda: held(rt, "c") == [], "released after cancel")
        finally:
            await rt.stop()
    asyncio.run(main())
