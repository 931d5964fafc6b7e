"""Site-level profile simulator: one seeded job stream replayed through the real
scheduler once per named plug-in profile, compared side by side (``cpn sim``).

Rules:
- Pure and seeded: the same file gives the same numbers. Discrete events (arrival,
  finish) on a simulated clock; ``Snapshot.now`` is that clock; nothing sleeps.
- The cluster: ``count`` sites × ``nodes_per_site`` nodes of one size; each site
  draws a price per node-hour and a power draw (W) from the given ranges (seeded).
- Jobs arrive ``offline`` / ``uniform`` / ``poisson`` with a CPU/memory request and a
  runtime; at every event the waiting jobs (oldest first) go through
  ``scheduler.cycle.Scheduler`` with the profile under test (its PreFilter, Filter,
  Score, Reserve, Permit, Bind). A job still waiting after ``max_wait_s`` fails (as
  in the pool simulator).
- Figures per profile: GBT-9.2.4 success rate and cluster utilisation Q (each node's
  CPU share, time-weighted) plus what the site policies trade: ``energy_kwh`` (node W
  × CPU share × runtime), ``cost`` (price per node-hour × CPU share × hours),
  ``utilisation_std`` (spread of the nodes' q_k: low = balanced), ``mean_wait_s``,
  ``makespan_s``.
"""

from __future__ import annotations

import heapq
import random
import statistics
from typing import Any, Literal

from pydantic import Field

from controller.models.base import Strict
from scheduler.cycle import Scheduler
from scheduler.gbt import UtilisationRecorder
from scheduler.models import NodeInfo, Snapshot, Task
from scheduler.profiles import ProfileConfig, Profiles, SchedulerConfig, build_profile


class _M(Strict):
    """Refuses unknown keys and non-finite numbers (``Strict``)."""


class SitesSpec(_M):
    count: int = Field(default=8, ge=1, le=1000)
    nodes_per_site: int = Field(default=4, ge=1, le=1000)
    cpu: float = Field(default=32.0, gt=0)
    memory_gib: float = Field(default=128.0, gt=0)
    price_per_hour: tuple[float, float] = (0.5, 2.0)
    energy_w: tuple[float, float] = (150.0, 450.0)
    seed: int = 1


class JobsSpec(_M):
    arrival: Literal["offline", "uniform", "poisson"] = "poisson"
    rate_per_s: float = Field(default=0.5, gt=0)
    tasks: int = Field(default=300, ge=1, le=100_000)
    cpu: list[float] = Field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    memory_gib: list[float] = Field(default_factory=lambda: [2.0, 8.0])
    runtime_s: tuple[float, float] = (60.0, 600.0)
    max_wait_s: float = Field(default=600.0, ge=0)
    seed: int = 1


def build_nodes(s: SitesSpec) -> dict[str, NodeInfo]:
    rng = random.Random(s.seed)
    out = {}
    for i in range(s.count):
        price = rng.uniform(*s.price_per_hour)
        watts = rng.uniform(*s.energy_w)
        for k in range(s.nodes_per_site):
            n = NodeInfo(name=f"site{i}/n{k}", site=f"site{i}",
                         capacity={"cpu": s.cpu, "memory": s.memory_gib},
                         price_per_hour=price, energy_w=watts)
            out[n.name] = n
    return out


def job_stream(j: JobsSpec) -> list[Task]:
    rng = random.Random(j.seed)
    t = 0.0
    out = []
    for i in range(j.tasks):
        if j.arrival == "uniform":
            t = i / j.rate_per_s
        elif j.arrival == "poisson":
            t += rng.expovariate(j.rate_per_s)
        out.append(Task(id=f"j{i}", requests={"cpu": float(rng.choice(j.cpu)),
                                              "memory": float(rng.choice(j.memory_gib))},
                        submitted=t, runtime_s=rng.uniform(*j.runtime_s)))
    return out


def simulate_profile(sites: SitesSpec, jobs: JobsSpec, name: str,
                     profile: ProfileConfig) -> dict[str, Any]:
    build_profile(name, profile)  # a bad profile: ValueError naming profile + plug-in
    nodes = build_nodes(sites)
    snap = Snapshot(nodes=nodes)
    sched = Scheduler(Profiles(SchedulerConfig(profiles={"default": profile},
                                               queue_sort="fcfs")))
    rec = UtilisationRecorder()
    for n in nodes:
        rec.add_card(n)
    events: list[tuple[float, int, str, str]] = []
    by_id = {}
    for seq, task in enumerate(job_stream(jobs)):
        by_id[task.id] = task
        heapq.heappush(events, (task.submitted, seq, "arrive", task.id))
    seq = len(by_id)
    waiting: list[Task] = []
    energy_j = cost = waited = 0.0
    now = 0.0

    def share(node: NodeInfo) -> float:
        return node.used.get("cpu", 0.0) / node.capacity["cpu"]

    while events:
        now, _, kind, tid = heapq.heappop(events)
        snap.now = now
        if kind == "arrive":
            waiting.append(by_id[tid])
        else:
            node_names = sched.running[tid].nodes
            sched.finish(tid, snap)
            for nn in node_names:
                rec.set_share(nn, share(nodes[nn]), now)
        if events and events[0][0] == now:
            continue  # simultaneous events: one scheduling pass after the last
        still = []
        for task in waiting:  # waited too long: given up before this pass
            if now - task.submitted > jobs.max_wait_s:
                rec.attempt(False)
            else:
                still.append(task)
        waiting, still = still, []
        decisions = {d.task: d for d in sched.schedule(waiting, snap)} if waiting else {}
        for task in waiting:
            d = decisions[task.id]
            if d.ok:
                rec.attempt(True)
                rt = task.runtime_s or 0.0
                waited += now - task.submitted
                for nn in d.nodes:
                    node = nodes[nn]
                    frac = task.requests["cpu"] / node.capacity["cpu"]
                    energy_j += node.energy_w * frac * rt
                    cost += node.price_per_hour * frac * rt / 3600.0
                    rec.set_share(nn, share(node), now)
                rec.task_done(1.0, 1.0, rt)
                heapq.heappush(events, (now + rt, seq, "finish", task.id))
                seq += 1
            else:
                still.append(task)
        waiting = still
    for _ in waiting:
        rec.attempt(False)
    rep = rec.report(now)
    q = list(rec.card_utilisation(now).values())
    ok = rec.succeeded
    return {"policy": name, "level": "site", "success_rate": rep["success_rate"],
            "cluster_utilisation_q": rep["cluster_utilisation_q"],
            "utilisation_std": statistics.pstdev(q) if q else 0.0,
            "energy_kwh": energy_j / 3.6e6, "cost": cost,
            "mean_wait_s": waited / ok if ok else 0.0, "makespan_s": now,
            "tasks": float(jobs.tasks)}
