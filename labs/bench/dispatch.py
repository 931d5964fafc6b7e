"""Bench: dispatch to real workload managers — 1,000 small jobs across two Slurm clusters
(goal ≥ 50 jobs/s dispatched; GBA-6.5g).

What is measured: two real Slurm clusters (``labs.slurm``; each one node advertising
``cpus`` cores so every job can be admitted at once) behind the real scheduler and
dispatcher components on a real store, in this process. ``jobs`` jobs (1 core, command
``true``) are committed to the store in one batch — that commit is "submitted". The
figures come from the store and the centres' own clocks:
- ``dispatched_per_s``: jobs / (last centre job id recorded − submission), i.e. placed by
  the scheduler, handed to ``sbatch`` and confirmed in the store;
- ``submit_to_dispatch_s`` p50/p99: submission → ``run.dispatched_at``;
- ``submit_to_running_s`` p50/p99: submission → ``run.started_at`` as the centre
  reports it (Slurm keeps whole seconds);
- ``duplicates``: centre jobs per CPN job beyond one (must be 0), counted at the centres.

``api`` picks how the adapter talks to Slurm: ``rest`` (slurmrestd, kept-alive
connections: the configured fast path), ``cli`` (one ``sbatch``/``squeue`` process per
call: the previous dispatcher) or ``both`` (default): rounds alternate rest, cli, rest,
cli … on fresh clusters, ``rounds`` of each. The figure is the median of the rest rounds,
with min/max and the load average before and after; the cli median is reported beside
it for comparison.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.config import parse_config
from controller.models import Job, JobSpec, JobState, Requirements
from controller.runtime import Runtime, Settings
from labs.netns import LabError
from labs.slurm import SlurmCluster, available


def _site(c: SlurmCluster) -> str:
    rest = f", rest: '{c.rest}', run_as: {c.run_as}" if c.rest else ""
    return f"{{backend: slurm, conf: {c.conf}, workdir: {c.workdir}{rest}}}"


def _config(a: SlurmCluster, b: SlurmCluster) -> str:
    return f"""
zone: cpn.example
sites:
  - {{name: DC-A, kind: compute-centre, region: a, price_per_hour: 1.0}}
  - {{name: DC-B, kind: compute-centre, region: b, price_per_hour: 1.0}}
centres:
  poll_s: 0.5
  report_s: 5
  parallel: 32
  lost_after_s: 300
  sites:
    DC-A: {_site(a)}
    DC-B: {_site(b)}
scheduler:
  interval_s: 0.5
  profiles:
    default:
      plugins: [node-resources-fit, least-loaded, resources, default-binder]
"""


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 3)


async def _round(work: Path, jobs: int, cpus: int, timeout_s: float,
                 rest: bool) -> dict[str, Any]:
    from scheduler.centres.plugin import adapters
    from scheduler.centres.plugin import components as centre_components
    from scheduler.registration import components as scheduler_components

    a = SlurmCluster("bda", work / "a", cpus=cpus, memory_mib=cpus * 1024, rest=rest)
    b = SlurmCluster("bdb", work / "b", cpus=cpus, memory_mib=cpus * 1024, rest=rest)
    rt: Runtime | None = None
    try:
        a.start()
        b.start()
        rt = Runtime(parse_config(_config(a, b)), Settings(state=work / "state"))
        rt.apply_config()
        await rt.start(scheduler_components(rt) + centre_components(rt))
        while sum(1 for c in rt.store.list(_status_kind()) if c.resources) < 2:
            await asyncio.sleep(0.1)  # both centres reported: capacity known
        batch = [Job(id=f"b{i:05d}", tenant="default", owner="bench",
                     spec=JobSpec(name=f"b{i}", requirements=Requirements(cpu_cores=1),
                                  command="true", walltime_s=600))
                 for i in range(jobs)]
        t0 = time.time()
        rt.writer.put_many(batch, "bench", "submit")
        end = time.monotonic() + timeout_s
        while True:
            cur = rt.store.list(Job)
            started = [j for j in cur if j.run is not None and j.run.started_at is not None]
            if len(started) == jobs or time.monotonic() > end:
                break
            await asyncio.sleep(0.5)
        cur = rt.store.list(Job)
        disp = sorted(j.run.dispatched_at.timestamp() - t0 for j in cur
                      if j.run is not None and j.run.dispatched_at is not None)
        run = sorted(j.run.started_at.timestamp() - t0 for j in cur
                     if j.run is not None and j.run.started_at is not None)
        states: dict[str, int] = {}
        for j in cur:
            states[j.state.value] = states.get(j.state.value, 0) + 1
        per_site: dict[str, int] = {}
        for j in cur:
            if j.site:
                per_site[j.site] = per_site.get(j.site, 0) + 1
        dup = 0
        for ad in adapters(rt).values():
            seen: dict[str, int] = {}
            for s in await ad.jobs():
                jid = s.key.rsplit(".", 1)[0]
                seen[jid] = seen.get(jid, 0) + 1
            dup += sum(n - 1 for n in seen.values())
        return {"api": "rest" if rest else "cli", "jobs": jobs, "dispatched": len(disp),
                "started": len(run), "loadavg": round(os.getloadavg()[0], 2),
                "dispatched_per_s": round(len(disp) / disp[-1], 1) if disp else 0.0,
                "submit_to_dispatch_s": {"p50": _pct(disp, 0.5), "p99": _pct(disp, 0.99)},
                "submit_to_running_s": {"p50": _pct(run, 0.5), "p99": _pct(run, 0.99)},
                "per_centre": per_site, "states": states, "duplicates": dup,
                "failed": sum(1 for j in cur if j.state is JobState.FAILED)}
    finally:
        if rt is not None:
            await rt.stop()
            rt.store.close()
        a.stop()
        b.stop()


def _status_kind() -> type[Any]:
    from scheduler.centres.models import CentreStatus

    return CentreStatus


def _spread(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    xs = [float(r[key]) for r in rows]
    return {"median": round(statistics.median(xs), 1), "min": min(xs), "max": max(xs)} \
        if xs else {"median": 0.0, "min": 0.0, "max": 0.0}


def run(jobs: int = 1000, cpus: int = 512, rounds: int = 2, timeout_s: float = 240.0,
        api: str = "both", **_opts: Any) -> dict[str, Any]:
    why = available()
    if why:
        raise LabError(f"the dispatch bench needs real Slurm clusters: {why}")
    if api not in ("rest", "cli", "both"):
        raise LabError(f"api={api!r}: use rest, cli or both")
    order = {"rest": [True], "cli": [False], "both": [True, False]}[api] * int(rounds)
    load0 = os.getloadavg()[0]
    rows = []
    for rest in order:
        with tempfile.TemporaryDirectory(prefix="cpn-bench-dispatch-") as d:
            rows.append(asyncio.run(_round(Path(d), int(jobs), int(cpus), float(timeout_s),
                                           rest)))
    main = [r for r in rows if r["api"] == ("cli" if api == "cli" else "rest")]
    cli = [r for r in rows if r["api"] == "cli"]
    rate = _spread(main, "dispatched_per_s")
    return {"bench": "dispatch", "jobs": int(jobs), "api": api, "rounds": rows,
            "dispatched_per_s": rate["median"], "dispatched_per_s_spread": rate,
            "cli_dispatched_per_s": _spread(cli, "dispatched_per_s") if cli else None,
            "submit_to_running_p50_s": round(statistics.median(
                r["submit_to_running_s"]["p50"] for r in main), 3),
            "submit_to_running_p99_s": round(statistics.median(
                r["submit_to_running_s"]["p99"] for r in main), 3),
            "duplicates": sum(r["duplicates"] for r in rows),
            "loadavg": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "goal_per_s": 50, "met": rate["median"] >= 50
            and all(r["dispatched"] == r["jobs"] and r["duplicates"] == 0 for r in rows)}
