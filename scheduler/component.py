"""The scheduler component: store jobs in, state transitions and placements out (WP-3.3.4).

Rules:
- Runs a pass when jobs change (``StateChanged`` with kind ``job``) and every
  ``interval_s``. A pass reads the store, builds a snapshot (``scheduler.state``),
  runs ``Scheduler.schedule`` (pure) and writes each decision in its own store
  transaction whose journal reason is the decision with its inputs — so every
  placement can be traced (WP-3.3.4).
- submitted → queued on first sight; success → running (site, started_at), or at a
  site with a centre (``centre_sites``, GBA-6.3) → dispatched with a new ``run``
  (attempt, resources) that the dispatcher (``scheduler.centres.dispatch``) submits;
  UnschedulableAndUnresolvable → failed; unschedulable/over quota → stays queued
  with the reason (rewritten only when the reason changes). Victims of preemption
  and reclaim go back to queued (a dispatched victim's run becomes an old attempt,
  which the dispatcher cancels at its centre).
- Reservations made for large jobs (the ``reservation`` plug-in) persist between
  passes and across a restart as ``Reservation`` entities (``scheduler.reservations``)
  until the job is placed or leaves the queue; running and dispatched jobs carry
  their walltime end, so backfill admits only jobs that end before a reservation.
- A job's datasets give its data size and site (where a verified copy really is).
- Centres that are down (``CentreStatus``) get nothing; a centre's reported
  resources are its capacity; until every configured centre has reported (or is
  known down) no pass runs, so no job is failed for capacity not yet known.
- A job that changed under us (modified/cancelled) is left alone: the write checks
  the stored state first.
- Topology changes (links, sites, nodes, resources, metrics) re-plan the last joint
  placement request incrementally (``scheduler.api.plan_from_store``).
- The scheduling policy in force is the stored ``SchedulerSettings`` (committed over
  NETCONF or by any other writer), else the config file's section: read at start and
  after every committed change of it (new ``Profiles``, no restart); a policy that
  fails to build is logged and the previous one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from controller.events import StateChanged
from controller.logs import key_event
from controller.models import (
    ComputeMetrics,
    ComputeNode,
    ComputeResource,
    Dataset,
    Job,
    JobState,
    Link,
    Router,
    Site,
    Tenant,
)
from controller.models.job import HOLDING, utcnow
from controller.runtime import stop_loop
from scheduler.centres.dispatch import job_run, requeued
from scheduler.centres.models import CentreStatus
from scheduler.cycle import Running, Scheduler
from scheduler.decisions import SchedulingDecision, SiteVerdict
from scheduler.models import Decision, Task
from scheduler.profiles import Profiles, SchedulerConfig
from scheduler.queueing import QuotaTree, with_jobs
from scheduler.reservations import load as load_reservations
from scheduler.reservations import save as save_reservations
from scheduler.settings import SchedulerSettings, effective
from scheduler.state import build_snapshot

if TYPE_CHECKING:
    from controller.runtime import Runtime
    from controller.store import Store

log = logging.getLogger("cpn.scheduler")
PENDING = (JobState.SUBMITTED, JobState.QUEUED)
#: how long a site whose centre refused a job is avoided for that job (s)
AVOID_S = 300.0
#: Kinds whose change triggers an incremental re-plan of the joint placement.
REPLAN_KINDS = frozenset({"link", "site", "node", "resource", "metrics", "router"})


class SchedulerComponent:
    name = "scheduler"

    def __init__(self, cfg: SchedulerConfig | None = None) -> None:
        self.cfg = cfg or SchedulerConfig()
        self.file_cfg = self.cfg  # in force while no SchedulerSettings is stored
        self.profiles = Profiles(self.cfg)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unsub: Any = None
        self.passes = 0
        self.decisions: list[Decision] = []
        self.counters: dict[str, int] = {"attempts": 0, "success": 0}
        self.shared: dict[str, Any] = {}
        self.centre_sites: frozenset[str] = frozenset()
        #: node → (large task, expected start), kept between passes (WP-3.3.3)
        self.reservations: dict[str, tuple[str, float]] = {}
        self._replan = False

    def reconfigure(self, cfg: SchedulerConfig) -> bool:
        """Take a new scheduling policy (e.g. committed over NETCONF) without a restart;
        False when it is the one in use. The profiles are built here, then config and
        profiles are swapped together (one tuple), so a pass never mixes old and new."""
        if cfg == self.cfg:
            return False
        profiles = Profiles(cfg)  # raises on a bad policy: the current one stays
        self.cfg, self.profiles = cfg, profiles
        self._wake.set()
        return True

    def follow_settings(self) -> None:
        """Apply the policy in force (stored settings, else the file's section)."""
        try:
            cfg = effective(self.rt.store, self.file_cfg)
            if self.reconfigure(cfg):
                key_event(log, "scheduling policy applied", profiles=len(cfg.profiles),
                          queues=len(cfg.queues))
        except Exception:
            log.exception("scheduling policy not applied; the previous one is kept")

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self.follow_settings()
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        await stop_loop(self._unsub, self._task)

    def _on_change(self, ev: StateChanged) -> None:
        kinds = ev.kinds()
        if SchedulerSettings.KIND in kinds:
            self.follow_settings()
        if ("job" in kinds and ev.reason[:10] != "scheduler:") or "centre" in kinds:
            self._wake.set()
        if kinds & REPLAN_KINDS and self.shared.get("placement_request") is not None:
            self._replan = True  # incremental re-plan of the joint placement
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow stop()'s
            # cancel when a wake-up lands at the same moment (stop then hangs)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await asyncio.to_thread(self.run_pass, self.rt.store)
            except Exception:
                log.exception("scheduler pass failed; state kept, retrying next interval")
            if self._replan:
                self._replan = False
                try:
                    await asyncio.to_thread(self.replan, self.rt.store)
                except Exception:
                    log.exception("placement re-plan failed; previous plan kept")

    def replan(self, store: Store) -> dict[str, Any] | None:
        """Re-plan the last requested flows against the current topology."""
        from scheduler.api import plan_from_store

        body = self.shared.get("placement_request")
        if body is None:
            return None
        out = plan_from_store(store, body, self.shared, self.cfg.cpsat_time_s)
        key_event(log, "placement re-planned", moved=len(out["moved"]),
                  unplaced=len(out["unplaced"]), gap=round(out["gap"], 4))
        return out

    # ------------------------------------------------------------ one pass
    def run_pass(self, store: Store) -> list[Decision]:
        jobs = store.list(Job)
        _drop_orphans(store, {j.id for j in jobs})
        pending = [j for j in jobs if j.state in PENDING]
        if not pending:
            stored = load_reservations(store)
            if stored:  # their jobs left the queue
                save_reservations(store, stored, {}, {})
                self.reservations = {}
            return []
        centres = [c for c in store.list(CentreStatus) if c.site in self.centre_sites]
        heard = {c.site for c in centres if c.resources or c.state == "down"}
        if heard < self.centre_sites:  # capacity unknown yet: no verdict on any job
            log.info("scheduler waits for the first report of centre(s) %s",
                     ", ".join(sorted(self.centre_sites - heard)))
            return []
        snap = build_snapshot(
            sites=store.list(Site), nodes=store.list(ComputeNode),
            resources=store.list(ComputeResource), metrics=store.list(ComputeMetrics),
            links=store.list(Link), routers=store.list(Router), jobs=jobs, now=time.time(),
            down={c.site for c in centres if c.state == "down"},
            capacity={c.site: c.resources for c in centres if c.resources})
        cfg, profiles = self.cfg, self.profiles  # one policy for the whole pass
        tree = QuotaTree(store.list(Tenant),
                         {n: c.lending_limit for n, c in cfg.tenants.items()})
        sched = Scheduler(profiles, tree)
        where: dict[str, list[str]] = {}
        for n in snap.nodes.values():
            for tid in n.tasks:
                where.setdefault(tid, []).append(n.name)
        for j in jobs:  # charge running jobs to the quota tree, so admission sees them
            if j.state in HOLDING:
                t = Task.from_job(j)
                charge = with_jobs(t.requests, t.replicas)
                tree.charge(j.tenant, charge)
                # borrowed = over the tenant's own quota now (reclaimable)
                own = tree.nodes.get(j.tenant)
                borrowed = own is not None and any(
                    own.usage.get(r, 0.0) > lim + 1e-9 for r, lim in own.limits.items())
                sched.running[j.id] = Running(t, tuple(where.get(j.id, ())), charge,
                                              borrowed)
        by_id = {j.id: j for j in pending}
        tasks = [Task.from_job(j) for j in pending]
        datasets = {d.name: d for d in store.list(Dataset)}
        cutoff = utcnow() - timedelta(seconds=AVOID_S)
        for t, j in zip(tasks, pending, strict=True):
            # sites whose centre refused it (no centre job id) lately: place elsewhere
            t.avoid = tuple({a.site for a in j.attempts if a.centre_job_id is None
                             and a.ended_at is not None and a.ended_at > cutoff})
            if j.spec.datasets and t.data_site is None:
                _data_where(t, [datasets[n] for n in j.spec.datasets if n in datasets])
        # WP-3.3.3: reservations for large jobs live across passes until their owner is
        # placed or gone, so backfill keeps honouring them — stored, so a restart too
        waiting = {j.id for j in pending}
        stored = load_reservations(store)
        snap.reservations.update({n: r for n, r in stored.items()
                                  if r[0] in waiting and n in snap.nodes})
        decisions = sched.schedule(tasks, snap)
        self.reservations = dict(snap.reservations)
        try:
            save_reservations(store, stored, self.reservations,
                              {n: v.site for n, v in snap.nodes.items()})
        except Exception:  # the pass's decisions still count; retried next pass
            log.exception("reservations not stored; the next pass makes them again")
        for d in decisions:
            self._write(store, by_id[d.task], d)
        self.passes += 1
        self.decisions = (self.decisions + decisions)[-200:]
        return decisions

    def _write(self, store: Store, job: Job, d: Decision) -> None:
        self.counters["attempts"] = self.counters.get("attempts", 0) + 1
        rec = decision_record(job, d)
        reason = f"scheduler: {job.id} {d.code}" + (f" on {d.site}" if d.site else "") + \
            f" (decision {rec.key})"
        with store.transaction("scheduler", reason) as txn:
            cur = txn.get(Job, job.id)
            if cur is None or cur.state not in PENDING or cur.spec != job.spec:
                return  # changed under us: next pass sees the new version
            old = txn.get(SchedulingDecision, rec.key)
            # a job that keeps waiting for the same reason is not re-journaled each pass
            if d.ok or old is None or (old.code, old.reasons) != (rec.code, rec.reasons):
                txn.put(rec)
            # preemption is committed when the task is placed or begins to wait (a
            # gang member), so victims are requeued whatever this decision's code
            for v in d.victims:
                vic = txn.get(Job, v)
                if vic is not None and vic.state in HOLDING:
                    txn.put(requeued(vic, f"preempted/reclaimed for {job.id}"))
            if d.ok:
                self.counters["success"] = self.counters.get("success", 0) + 1
                if d.site in self.centre_sites:  # the dispatcher submits it there
                    t = Task.from_job(cur)
                    res = {k: v * t.replicas for k, v in t.requests.items()}
                    txn.put(cur.model_copy(update={
                        "state": JobState.DISPATCHED, "site": d.site,
                        "run": job_run(d.site, cur, res), "reason": d.explain()[:500]}))
                else:
                    txn.put(cur.model_copy(update={
                        "state": JobState.RUNNING, "site": d.site, "started_at": utcnow(),
                        "reason": d.explain()[:500]}))
                key_event(log, "job placed", job=job.id, site=d.site, nodes=",".join(d.nodes))
            elif d.code == "unschedulable-and-unresolvable":
                txn.put(cur.model_copy(update={
                    "state": JobState.FAILED, "ended_at": utcnow(),
                    "reason": d.explain()[:500]}))
            else:
                text = d.explain()[:500]
                if cur.state is not JobState.QUEUED or cur.reason != text:
                    txn.put(cur.model_copy(update={"state": JobState.QUEUED, "reason": text}))


def _data_where(t: Task, sets: list[Dataset]) -> None:
    """GBA-6.5f-7 with real locations: the job's data is as big as its datasets, and it
    lives where a verified copy of the biggest one is (the data-aware plug-in decides
    whether to move the job there or the data to the job)."""
    t.data_gib = max(t.data_gib, sum(d.size for d in sets) / 2**30)
    held = [d for d in sets if d.locations]
    if held:
        t.data_site = max(held, key=lambda d: d.size).locations[0]


def decision_record(job: Job, d: Decision) -> SchedulingDecision:
    """The stored form of a job's decision (``scheduler.decisions``): inputs kept as
    fields, per-site verdicts from the cycle."""
    spec = job.spec
    req = spec.requirements
    bounds = {k: v for k, v in (("max_latency_ms", req.max_latency_ms),
                                ("bandwidth_mbps", req.bandwidth_mbps or None))
              if v is not None}
    inputs = {k: v for k, v in d.inputs.items() if k not in ("sites", "requests")}
    origin = spec.params.get("origin")
    if origin is not None:
        inputs["origin"] = str(origin)
    return SchedulingDecision(
        subject_kind="job", subject=job.id, code=d.code, site=d.site, nodes=list(d.nodes),
        reasons=list(d.reasons), scores=list(d.scores),
        policy=str(d.inputs.get("profile") or spec.policy or "") or None,
        requests={k: float(v) for k, v in (d.inputs.get("requests") or {}).items()
                  if isinstance(v, int | float)},
        bounds=bounds, inputs=json.loads(json.dumps(inputs, default=str)),
        candidates=[SiteVerdict.model_validate(v) for v in d.inputs.get("sites", ())],
        service=str(spec.params["service"]) if spec.params.get("service") else None,
        decided_by="scheduler")


def _drop_orphans(store: Store, ids: set[str]) -> None:
    """Delete the decisions of jobs that no longer exist (one transaction, if any)."""
    gone = [d.key for d in store.list(SchedulingDecision)
            if d.subject_kind == "job" and d.subject not in ids]
    if gone:
        with store.transaction("scheduler", f"scheduler: {len(gone)} decision(s) of "
                               "deleted jobs dropped") as txn:
            for key in gone:
                txn.delete(SchedulingDecision, key)
