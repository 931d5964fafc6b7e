"""The in-process centre simulator (unit tests of the code around adapters only).

Rules:
- Same contract as the real backends (``CentreAdapter``) with an injectable clock, so a
  test steps time instead of sleeping. Jobs start first-come first-served when their
  CPUs fit and run ``runtime_s`` (env ``CPN_SIM_RUNTIME_S`` overrides per job); the
  exit code is env ``CPN_SIM_EXIT`` (default 0). A job past its walltime times out.
- The command is *not* executed: a simulated job writes a one-line stdout and each
  declared output ("sim <key> <name>") when it ends, so results can be fetched.
- ``local_cpus``: cores held by the centre's own users (not listed), so CPN jobs wait.
- Faults for tests: ``down`` (every call raises ``CentreUnavailable``), ``refuse``
  (``submit`` raises ``CentreRefused`` with that text); ``submits`` counts real
  submissions (idempotence is checked by it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from scheduler.centres.base import (
    ENDED,
    CentreJob,
    CentreJobState,
    CentreJobStatus,
    CentreRefused,
    CentreReport,
    CentreUnavailable,
    JobChange,
    ResultFile,
)
from scheduler.centres.files import CentreFiles

T = TypeVar("T")


@dataclass(slots=True)
class _SimJob:
    job: CentreJob
    cid: str
    submitted: float
    runtime_s: float
    exit_code: int
    started: float = 0.0
    ended: float = 0.0
    state: CentreJobState = CentreJobState.PENDING
    walltime_s: float = 3600.0
    cpus: int = 1


@dataclass
class SimCentre:
    """A simulated workload manager with ``cpus`` cores under ``root``."""

    site: str
    root: Path
    cpus: int = 8
    memory_gib: float = 32.0
    gpus: int = 0
    runtime_s: float = 1.0
    price_per_hour: float = 1.0
    idle_w: float = 100.0
    max_w: float = 300.0
    clock: Callable[[], float] = time.time
    down: bool = False
    refuse: str = ""
    local_cpus: int = 0  # cores the centre's own (non-CPN) users hold
    backend: str = "sim"
    submits: int = 0
    _jobs: dict[str, _SimJob] = field(default_factory=dict)
    _next: int = 1

    def __post_init__(self) -> None:
        self.files = CentreFiles(self.root)

    def _check(self) -> None:
        if self.down:
            raise CentreUnavailable(self.site, "simulated workload manager is down")

    def _advance(self) -> None:
        now = self.clock()
        # finish first, then start in submission order (FCFS)
        for j in self._jobs.values():
            if j.state is CentreJobState.RUNNING:
                end = j.started + min(j.runtime_s, j.walltime_s)
                if now >= end:
                    j.ended = end
                    timed_out = j.runtime_s > j.walltime_s
                    j.state = (CentreJobState.TIMEOUT if timed_out else
                               CentreJobState.COMPLETED if j.exit_code == 0
                               else CentreJobState.FAILED)
                    self._write_results(j)
        used = self.local_cpus + sum(j.cpus for j in self._jobs.values()
                                     if j.state is CentreJobState.RUNNING)
        for j in sorted(self._jobs.values(), key=lambda x: x.submitted):
            if j.state is CentreJobState.PENDING and used + j.cpus <= self.cpus:
                j.state, j.started = CentreJobState.RUNNING, max(now, j.submitted)
                used += j.cpus
        if any(j.state is CentreJobState.RUNNING
               and now >= j.started + min(j.runtime_s, j.walltime_s)
               for j in self._jobs.values()):
            self._advance()

    def _write_results(self, j: _SimJob) -> None:
        d = self.files.job_dir(j.job.key)
        (d / "stdout").write_text(f"sim {j.job.key} ran on {self.site}\n")
        (d / "stderr").write_text("")
        if j.state is CentreJobState.COMPLETED:
            for name in j.job.outputs:
                p = d / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(f"sim {j.job.key} {name}\n")

    def _status(self, j: _SimJob) -> CentreJobStatus:
        ended = j.state in ENDED
        return CentreJobStatus(
            key=j.job.key, centre_id=j.cid, state=j.state, raw_state=j.state.value.upper(),
            exit_code=(j.exit_code if j.state is not CentreJobState.TIMEOUT else 124)
            if ended and j.state is not CentreJobState.CANCELLED else None,
            submitted_at=j.submitted, started_at=j.started, ended_at=j.ended,
            node=f"{self.site}-n1" if j.started else "")

    async def submit(self, job: CentreJob) -> str:
        self._check()
        found = self._by_key(job.key)
        if found is not None:
            return found.cid
        if self.refuse:
            raise CentreRefused(self.site, self.refuse)
        if job.cpus > self.cpus:
            raise CentreRefused(self.site, f"asks {job.cpus} CPUs, the largest node has "
                                f"{self.cpus}")
        self.files.prepare(job)
        env = dict(job.env)
        cid = str(self._next)
        self._next += 1
        self.submits += 1
        self._jobs[cid] = _SimJob(
            job, cid, self.clock(), float(env.get("CPN_SIM_RUNTIME_S", self.runtime_s)),
            int(env.get("CPN_SIM_EXIT", "0")), walltime_s=job.walltime_s, cpus=job.cpus)
        self._advance()
        return cid

    def _by_key(self, key: str) -> _SimJob | None:
        return next((j for j in self._jobs.values() if j.job.key == key), None)

    async def find(self, key: str) -> CentreJobStatus | None:
        self._check()
        self._advance()
        j = self._by_key(key)
        return self._status(j) if j is not None else None

    async def jobs(self) -> list[CentreJobStatus]:
        self._check()
        self._advance()
        return [self._status(j) for j in self._jobs.values()]

    def _get(self, cid: str) -> _SimJob:
        j = self._jobs.get(cid)
        if j is None:
            raise CentreRefused(self.site, f"no job {cid}")
        return j

    async def cancel(self, centre_id: str) -> None:
        self._check()
        self._advance()
        j = self._get(centre_id)
        if j.state not in ENDED:
            j.state, j.ended = CentreJobState.CANCELLED, self.clock()

    async def modify(self, centre_id: str, change: JobChange) -> None:
        self._check()
        self._advance()
        j = self._get(centre_id)
        if j.state is not CentreJobState.PENDING:
            raise CentreRefused(self.site, f"job {centre_id} is {j.state.value}; only a "
                                "pending job can be modified")
        if change.walltime_s is not None:
            j.walltime_s = change.walltime_s
        if change.cpus is not None:
            j.cpus = change.cpus

    async def results(self, key: str) -> list[ResultFile]:
        self._check()
        return self.files.results(key)

    async def read(self, key: str, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        self._check()
        return self.files.read(key, name, offset, limit)

    async def stage_offset(self, name: str, sha256: str) -> int:
        return await self._files(self.files.stage_offset, name, sha256)

    async def stage_chunk(self, name: str, sha256: str, offset: int, data: bytes) -> int:
        return await self._files(self.files.stage_chunk, name, sha256, offset, data)

    async def stage_commit(self, name: str, sha256: str) -> None:
        await self._files(self.files.stage_commit, name, sha256)

    async def _files(self, fn: Callable[..., T], *args: Any) -> T:
        self._check()
        try:
            return fn(*args)
        except ValueError as exc:
            raise CentreRefused(self.site, str(exc)) from exc

    async def staged(self, name: str) -> str | None:
        self._check()
        return self.files.staged(name)

    async def report(self) -> CentreReport:
        self._check()
        self._advance()
        run = [j for j in self._jobs.values() if j.state is CentreJobState.RUNNING]
        used = float(sum(j.cpus for j in run))
        load = used / self.cpus if self.cpus else 0.0
        return CentreReport(
            resources={"cpu": float(self.cpus), "memory": self.memory_gib,
                       "gpu": float(self.gpus)},
            allocated={"cpu": used}, load=load,
            energy_w=self.idle_w + load * (self.max_w - self.idle_w), energy_source="model",
            price_per_hour=self.price_per_hour, nodes={f"{self.site}-n1": "up"},
            pending=sum(1 for j in self._jobs.values() if j.state is CentreJobState.PENDING),
            running=len(run))

    async def close(self) -> None:
        return None
