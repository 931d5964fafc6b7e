"""The dispatcher: placed jobs go to their centre's workload manager, and job state follows
it (GBA-6.3 adaptation, GBA-6.5g dispatch, WP-3.3.4 traceability).

Rules (level-triggered, as a Kubernetes controller: every pass reads the whole desired
state — the store's jobs — and the whole actual state — each centre's job list):
- A ``dispatched`` job whose ``run`` has no centre job id is submitted under key
  ``<job id>.<attempt>`` (idempotent: the adapter adopts a job it already has, so a
  restart between submit and store write never submits twice); a pass's submissions
  run concurrently (``parallel`` per centre) and are recorded as they are confirmed
  (one store transaction per ``FLUSH_S``), not when the last one is. Its datasets are staged
  to the centre first (``DataStager``: a dataset still uploading holds the job with
  that reason, a failed one fails it); accelerator instances are taken from the pool
  atomically (``InstanceBinder``) and given back when the job ends.
- The centre's state is mirrored: pending → ``dispatched`` (``run.centre_state``),
  running → ``running`` (``started_at`` from the centre), completed → ``finished``,
  failed / timeout → ``failed`` with the exit code, cancelled → ``cancelled``, lost
  (node failure) → back to ``queued`` as a new attempt. Each change is one journaled
  write whose reason says what the centre said.
- Refused by the centre, or unreachable at submission: back to ``queued`` with the
  reason (the scheduler may place it elsewhere). A centre that cannot be listed is
  marked down (``CentreStatus``); its jobs still waiting in its queue are requeued and
  the scheduler places nothing there until it answers again. Running jobs stay running
  (their processes go on without slurmctld).
- A live centre job that no longer matches its CPN job (cancelled by the user,
  preempted, requeued elsewhere, an old attempt) is cancelled at the centre — cancel
  reaches the centre, and a centre that comes back never runs a duplicate.
- A spec change of a job still pending at the centre is applied there (walltime,
  priority, CPUs); a refusal is recorded in the job's reason.
- Writes are checked against the stored job first (state and attempt), so a job that
  changed under the dispatcher is left to the next pass.
- Leader-only: in an HA pair only the leader dispatches (``leader_only``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from controller.events import StateChanged
from controller.logs import key_event
from controller.models import Job, JobRun, JobState
from controller.models.job import HOLDING, utcnow
from controller.runtime import stop_loop
from scheduler.centres.base import (
    CentreAdapter,
    CentreError,
    CentreJob,
    CentreJobState,
    CentreJobStatus,
    CentreRefused,
    CentreUnavailable,
    JobChange,
)
from scheduler.centres.data import DataFailed, DataWaiting
from scheduler.centres.models import CentresSection, CentreStatus

if TYPE_CHECKING:
    from controller.runtime import Runtime
    from controller.store.base import Store

log = logging.getLogger("cpn.centres")
ACTOR = "centres"
#: submissions confirmed by a centre are written to the store at least this often (s)
FLUSH_S = 0.25
#: a stage/bind hook: (job, adapter) → None, raises CentreError to refuse
Hook = Callable[[Job, CentreAdapter], Awaitable[None]]
#: a confirmed submission: (job, centre job id, when the centre accepted it)
Submitted = tuple[Job, str, datetime]
#: a pending job write: (job as read, what happened, change of the stored job)
Write = tuple[Job, str, Callable[[Job], "Job | None"]]


def key_of(job: Job) -> str:
    assert job.run is not None
    return f"{job.id}.{job.run.attempt}"


def spec_hash(job: Job) -> str:
    s = job.spec
    return hashlib.sha256(f"{s.walltime_s}|{s.runtime_estimate_s}|{s.priority}|"
                          f"{s.requirements.cpu_cores}".encode()).hexdigest()[:16]


def _ts(epoch: float) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch > 0 else None


def requeued(job: Job, reason: str) -> Job:
    """The job back in the queue; its run becomes history (a new attempt follows)."""
    hist = list(job.attempts)
    if job.run is not None:
        hist.append(job.run.model_copy(update={"ended_at": job.run.ended_at or utcnow()}))
    return job.model_copy(update={"state": JobState.QUEUED, "site": None, "run": None,
                                  "started_at": None, "attempts": hist[-100:],
                                  "reason": reason[:500]})


def centre_job(job: Job, default_walltime_s: float) -> CentreJob:
    s = job.spec
    req = s.requirements
    wall = s.walltime_s or s.runtime_estimate_s or default_walltime_s
    env = tuple((str(k), str(v)) for k, v in dict(s.params.get("env", {})).items())
    if job.run is not None and job.run.instances:
        env += (("CPN_INSTANCES", ",".join(job.run.instances)),)
    return CentreJob(
        key=key_of(job), job_id=job.id, name=s.name,
        command=s.command or "echo 'no command given'",
        cpus=max(1, math.ceil(req.cpu_cores)) * s.replicas,
        memory_mib=math.ceil(req.memory_gib * 1024) * s.replicas,
        gpus=math.ceil(req.gpu) * s.replicas, walltime_s=wall, priority=s.priority,
        inputs=tuple(s.datasets),
        outputs=tuple(s.outputs), env=env)


@dataclass
class Dispatcher:
    """Reconciles jobs placed at centres with the centres' workload managers."""

    section: CentresSection
    adapters: dict[str, CentreAdapter]
    stage: Hook | None = None
    bind: Hook | None = None
    unbind: Callable[[Job], None] | None = None
    sweep: Callable[[list[Job]], None] | None = None
    name: str = "centres"
    leader_only: bool = True
    passes: int = 0
    submitted: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _unsub: Any = None
    _reported: dict[str, float] = field(default_factory=dict)
    _sem: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self.store: Store = rt.store
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        await stop_loop(self._unsub, self._task)
        for a in self.adapters.values():
            await a.close()

    def _on_change(self, ev: StateChanged) -> None:
        if "job" in ev.kinds() and not ev.reason.startswith(f"{ACTOR}:"):
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel
            # of stop() when the wake-up lands at the same moment (the loop then never
            # ends and stop() waits for ever)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.section.poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("dispatch pass failed; retrying next interval")

    # ------------------------------------------------------------ one pass
    async def reconcile(self) -> None:
        jobs = self.store.list(Job)
        if self.sweep is not None:
            self.sweep(jobs)
        by_site: dict[str, list[Job]] = {s: [] for s in self.adapters}
        for j in jobs:
            if j.run is not None and j.run.site in by_site:
                by_site[j.run.site].append(j)
        by_id = {j.id: j for j in jobs}
        await asyncio.gather(*(self._centre(site, a, by_site[site], by_id)
                               for site, a in self.adapters.items()))
        self.passes += 1

    async def _centre(self, site: str, adapter: CentreAdapter, mine: list[Job],
                      by_id: dict[str, Job]) -> None:
        try:
            listing = await adapter.jobs()
        except CentreError as exc:
            self._down(site, adapter, str(exc), mine)
            return
        self._up(site, adapter)
        await self._report(site, adapter)
        seen = {s.key: s for s in listing}
        todo: list[Awaitable[None]] = []
        subs: list[Awaitable[Submitted | None]] = []
        writes: list[Write] = []
        for job in mine:
            if job.state not in HOLDING or job.run is None:
                continue
            s = seen.get(key_of(job))
            if job.run.centre_job_id is None:  # adopted if the centre already has it
                subs.append(self._submit(site, adapter, job))
            elif s is None:
                todo.append(self._missing(site, adapter, job))
            else:
                w = self._mirror(site, job, s)
                if w is not None:
                    writes.append(w)
                if job.state is JobState.DISPATCHED and s.state is CentreJobState.PENDING \
                        and job.run.applied_spec and job.run.applied_spec != spec_hash(job):
                    todo.append(self._modify(site, adapter, job, s.centre_id))
        for s in listing:
            if s.state in (CentreJobState.PENDING, CentreJobState.RUNNING) \
                    and self._orphan(s, site, by_id):
                todo.append(self._cancel(site, adapter, s))
        self._write_many(writes)
        if todo:
            await asyncio.gather(*todo)
        if subs:  # recorded as they are confirmed, a store write per FLUSH_S at most
            loop = asyncio.get_running_loop()
            done: list[Submitted] = []
            last = loop.time()
            for fut in asyncio.as_completed(subs):
                x = await fut
                if x is not None:
                    done.append(x)
                if done and loop.time() - last >= FLUSH_S:
                    self._submitted(site, adapter, done)
                    done, last = [], loop.time()
            self._submitted(site, adapter, done)

    @staticmethod
    def _orphan(s: CentreJobStatus, site: str, by_id: dict[str, Job]) -> bool:
        job = by_id.get(s.key.rsplit(".", 1)[0])
        return (job is None or job.run is None or job.run.site != site
                or job.state not in HOLDING or key_of(job) != s.key)

    # ------------------------------------------------------------ actions
    async def _submit(self, site: str, adapter: CentreAdapter,
                      job: Job) -> Submitted | None:
        sem = self._sem.setdefault(site, asyncio.Semaphore(self.section.parallel))
        async with sem:
            try:
                if self.stage is not None:
                    await self.stage(job, adapter)
                if self.bind is not None and job.spec.accelerators is not None:
                    await self.bind(job, adapter)
                    job = self.store.get(Job, job.id) or job  # now with run.instances
                cid = await adapter.submit(centre_job(job, self.section.default_walltime_s))
            except CentreUnavailable as exc:
                self._release(job)
                self._requeue(job, f"centre {site} unreachable at dispatch: {exc}")
                self._down(site, adapter, str(exc), [])
                return None
            except (CentreRefused, CentreError) as exc:
                self._release(job)
                self._requeue(job, f"centre {site} refused the job: {exc}")
                return None
            except DataWaiting as exc:  # held here until its data is complete
                why = str(exc)
                self._update(job, f"{ACTOR}: {job.id} {why}",
                             lambda cur: _with_run(cur, centre_state="DATA", reason=why))
                return None
            except DataFailed as exc:
                self._release(job)
                why = f"not started: {exc}"
                self._update(job, f"{ACTOR}: {job.id} {why}", lambda cur: cur.model_copy(
                    update={"state": JobState.FAILED, "ended_at": utcnow(), "reason": why}))
                return None
        self.submitted += 1
        return job, cid, utcnow()

    def _submitted(self, site: str, adapter: CentreAdapter, done: list[Submitted]) -> None:
        """Record a pass's submissions in one store transaction (one journal entry per
        job, all sharing a reason that lists job → centre job id)."""
        if not done:
            return
        listed = ", ".join(f"{j.id} as {cid}" for j, cid, _ in done)
        reason = f"{ACTOR}: submitted to {site}: {listed}"
        with self.store.transaction(ACTOR, reason[:2000]) as txn:
            for job, cid, at in done:
                cur = txn.get(Job, job.id)
                if cur is None or cur.run is None or job.run is None \
                        or cur.run.attempt != job.run.attempt or cur.state not in HOLDING \
                        or cur.run.centre_job_id is not None:
                    continue  # changed under us: its centre job is an orphan next pass
                txn.put(cur.model_copy(update={"run": cur.run.model_copy(update={
                    "centre_job_id": cid, "centre_state": "SUBMITTED", "dispatched_at": at,
                    "applied_spec": spec_hash(cur)}),
                    "reason": f"submitted to {site} as {adapter.backend} job {cid}"}))
        for job, cid, _ in done:
            key_event(log, "job dispatched", job=job.id, site=site, centre_job=cid)

    def _mirror(self, site: str, job: Job, s: CentreJobStatus) -> Write | None:
        """The write that brings ``job`` in line with what the centre says (or None)."""
        st = s.state
        if st is CentreJobState.PENDING:
            if job.run is not None and job.run.centre_state != s.raw_state:
                return (job, f"{job.id} {s.raw_state} at {site}"
                        f"{f' ({s.reason})' if s.reason else ''}",
                        lambda cur: _with_run(cur, centre_state=s.raw_state,
                                              reason=f"waiting at {site}: "
                                              f"{s.reason or s.raw_state}"))
            return None
        if st is CentreJobState.RUNNING:
            if job.state is JobState.DISPATCHED:
                return (job, f"{job.id} running at {site} on {s.node}",
                        lambda cur: _started(cur, s, site))
            return None
        if st is CentreJobState.LOST:
            self._release(job)
            self._requeue(job, f"centre {site} lost the job ({s.raw_state}); requeued")
            return None
        new, why = {
            CentreJobState.COMPLETED: (JobState.FINISHED, f"finished at {site}, exit code 0"),
            CentreJobState.FAILED: (JobState.FAILED,
                                    f"failed at {site} with exit code {s.exit_code}"),
            CentreJobState.TIMEOUT: (JobState.FAILED,
                                     f"walltime exceeded at {site} ({s.raw_state})"),
            CentreJobState.CANCELLED: (JobState.CANCELLED, f"cancelled at {site}"),
        }[st]
        self._release(job)
        key_event(log, "job ended", job=job.id, site=site, state=new.value,
                  exit_code=s.exit_code)
        return job, f"{job.id} {why}", lambda cur: _ended(cur, s, new, why)

    async def _missing(self, site: str, adapter: CentreAdapter, job: Job) -> None:
        """A job with a centre id that the centre's job list lacks: it may have ended
        long ago (Slurm forgets after MinJobAge; ``find`` reads the completion log) —
        only a job the centre knows nothing of is lost and requeued."""
        assert job.run is not None
        since = job.run.dispatched_at
        age = (utcnow() - since).total_seconds() if since else math.inf
        if age <= self.section.lost_after_s:
            return
        try:
            s = await adapter.find(key_of(job))
        except CentreError:
            return  # cannot tell now: next pass
        if s is not None:
            w = self._mirror(site, job, s)
            if w is not None:
                self._write_many([w])
            return
        self._release(job)
        self._requeue(job, f"centre {site} no longer knows job "
                      f"{job.run.centre_job_id}; requeued")

    async def _modify(self, site: str, adapter: CentreAdapter, job: Job, cid: str) -> None:
        s = job.spec
        change = JobChange(walltime_s=s.walltime_s or s.runtime_estimate_s,
                           priority=s.priority,
                           cpus=max(1, math.ceil(s.requirements.cpu_cores)) * s.replicas)
        try:
            await adapter.modify(cid, change)
            why = f"change applied at {site}"
        except CentreError as exc:
            why = f"change not applied at {site}: {exc}"
        h = spec_hash(job)
        self._update(job, f"{ACTOR}: {job.id} {why}",
                     lambda cur: _with_run(cur, applied_spec=h, reason=why))

    async def _cancel(self, site: str, adapter: CentreAdapter, s: CentreJobStatus) -> None:
        try:
            await adapter.cancel(s.centre_id)
            key_event(log, "centre job cancelled", site=site, centre_job=s.centre_id,
                      key=s.key)
        except CentreError as exc:
            log.warning("cancelling %s (%s) at %s failed: %s", s.centre_id, s.key, site, exc)

    # ------------------------------------------------------------ centre health
    def _down(self, site: str, adapter: CentreAdapter, why: str, mine: list[Job]) -> None:
        cur = self.store.get(CentreStatus, site)
        if cur is None or cur.state != "down":
            st = (cur or CentreStatus(site=site, backend=adapter.backend)).model_copy(
                update={"state": "down", "reason": why[:500], "since": utcnow()})
            with self.store.transaction(f"{ACTOR}:{site}", f"{ACTOR}: {site} down: {why}"[:500]
                                        ) as txn:
                txn.put(st)
            key_event(log, "centre down", site=site, reason=why[:200])
        for job in mine:  # waiting in its queue: the scheduler may place them elsewhere
            if job.state is JobState.DISPATCHED:
                self._release(job)
                self._requeue(job, f"centre {site} is down ({why[:200]}); requeued")

    def _up(self, site: str, adapter: CentreAdapter) -> None:
        cur = self.store.get(CentreStatus, site)
        if cur is not None and cur.state == "up":
            return
        st = (cur or CentreStatus(site=site, backend=adapter.backend)).model_copy(
            update={"state": "up", "reason": "", "since": utcnow()})
        with self.store.transaction(f"{ACTOR}:{site}", f"{ACTOR}: {site} up") as txn:
            txn.put(st)
        if cur is not None:
            key_event(log, "centre up", site=site)

    async def _report(self, site: str, adapter: CentreAdapter) -> None:
        now = time.monotonic()
        if now - self._reported.get(site, -math.inf) < self.section.report_s:
            return
        self._reported[site] = now
        try:
            r = await adapter.report()
        except CentreError as exc:
            log.warning("report from %s failed: %s", site, exc)
            return
        cur = self.store.get(CentreStatus, site) or CentreStatus(site=site,
                                                                 backend=adapter.backend)
        new = cur.model_copy(update={
            "resources": r.resources, "allocated": r.allocated, "load": round(r.load, 4),
            "energy_w": round(r.energy_w, 1), "energy_source": r.energy_source,
            "price_per_hour": r.price_per_hour, "pending": r.pending, "running": r.running,
            "reported_at": utcnow()})
        if new.model_dump(exclude={"reported_at"}) == cur.model_dump(exclude={"reported_at"}):
            return  # nothing new: no journal entry every period
        with self.store.transaction(f"{ACTOR}:{site}", f"{ACTOR}: {site} report") as txn:
            txn.put(new)

    # ------------------------------------------------------------ writes
    def _release(self, job: Job) -> None:
        if self.unbind is not None and job.run is not None and job.run.instances:
            self.unbind(job)

    def _requeue(self, job: Job, why: str) -> None:
        self._update(job, f"{ACTOR}: {job.id} {why}", lambda cur: requeued(cur, why))
        key_event(log, "job requeued", job=job.id, reason=why[:200])

    def _update(self, job: Job, reason: str, change: Callable[[Job], Job | None]) -> None:
        self._write_many([(job, reason.removeprefix(f"{ACTOR}: "), change)])

    def _write_many(self, writes: list[Write]) -> None:
        """One store transaction for a pass's state changes: each job gets its own
        journal entry; the shared reason lists what the centre said for each (so many
        jobs changing at once cost one commit, not one each)."""
        if not writes:
            return
        reason = f"{ACTOR}: " + "; ".join(w[1] for w in writes)
        with self.store.transaction(ACTOR, reason[:2000]) as txn:
            for job, _, change in writes:
                cur = txn.get(Job, job.id)
                if cur is None or cur.run is None or job.run is None \
                        or cur.run.attempt != job.run.attempt or cur.state not in HOLDING:
                    continue  # changed under us: the next pass sees the new version
                new = change(cur)
                if new is not None and new != cur:
                    txn.put(new)


def _with_run(cur: Job, reason: str | None = None, **run: Any) -> Job:
    assert cur.run is not None
    upd: dict[str, Any] = {"run": cur.run.model_copy(update=run)}
    if reason is not None:
        upd["reason"] = reason[:500]
    return cur.model_copy(update=upd)


def _started(cur: Job, s: CentreJobStatus, site: str) -> Job:
    assert cur.run is not None
    start = _ts(s.started_at) or utcnow()
    return cur.model_copy(update={
        "state": JobState.RUNNING, "started_at": start, "reason": f"running at {site}",
        "run": cur.run.model_copy(update={"centre_state": s.raw_state, "started_at": start,
                                          "node": s.node})})


def _ended(cur: Job, s: CentreJobStatus, new: JobState, why: str) -> Job:
    assert cur.run is not None
    end = _ts(s.ended_at) or utcnow()
    start = cur.started_at or _ts(s.started_at) or end
    return cur.model_copy(update={
        "state": new, "ended_at": end, "started_at": start, "reason": why[:500],
        "run": cur.run.model_copy(update={
            "centre_state": s.raw_state, "exit_code": s.exit_code, "started_at": start,
            "ended_at": end, "node": s.node or cur.run.node})})


def job_run(site: str, job: Job, resources: dict[str, float]) -> JobRun:
    """The run record the scheduler writes when it places ``job`` at a centre."""
    return JobRun(site=site, attempt=len(job.attempts) + 1, resources=resources)
