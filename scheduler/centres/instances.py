"""Accelerator instances in the dispatch loop (GBT-6.2.8 atomic allocation and release,
GBT-7.1 task → instances, GBT-7.2, GBT-9.2.4 metrics from real allocations).

Rules:
- A job whose spec asks for ``accelerators`` gets them at dispatch, before its
  submission: ``count`` instances from the pool's instances whose topology cluster is
  the job's site (the centre's own cards), allocated atomically and topology-aware by
  ``scheduler.pool.Pool``. The instances' new state and the job's ``run.instances``
  are written in one store transaction: both or neither.
- Not enough free instances: nothing is taken and the centre is refused for this job
  (the dispatcher requeues it; the scheduler may place it elsewhere).
- Release is atomic too (``Pool.release_many``) when the job ends, is cancelled,
  requeued or preempted; a level-triggered sweep gives back instances held by jobs that
  no longer hold resources, so none leaks whatever path the job left by.
- Every allocation attempt counts in the GBT-9.2.4 recorder (scheduling success rate);
  the pool's utilisation Q follows from the instances' stored states.
- A job that already holds instances (a restart between allocation and submission)
  keeps them: allocation is idempotent by job id.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from controller.logs import key_event
from controller.models import ComputeInstance, InstanceState, Job
from controller.models.job import HOLDING
from scheduler.api import load_pool
from scheduler.centres.base import CentreAdapter, CentreRefused
from scheduler.pool import Pool, PoolError

if TYPE_CHECKING:
    from controller.runtime import Runtime

log = logging.getLogger("cpn.centres")
ACTOR = "centres"


class InstanceBinder:
    """The dispatcher's ``bind`` / ``unbind`` / ``sweep`` hooks over the pool."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _recorder(self) -> Any:
        st = self.rt.settings.extra.get("scheduler", {})
        return st.get("recorder")

    def _held(self, pool: Pool, job_id: str) -> list[str]:
        return sorted(i for i, inst in pool.instances.items()
                      if inst.state is InstanceState.IN_USE and inst.task == job_id)

    async def bind(self, job: Job, adapter: CentreAdapter) -> None:
        req = job.spec.accelerators
        if req is None or job.run is None:
            return
        store = self.rt.store
        pool = load_pool(store)
        ids = self._held(pool, job.id)
        scope = "held"
        if len(ids) != req.count:
            if ids:  # a partial holding cannot happen (atomic); repair by giving back
                pool.release_many(job.id, ids)
            local = Pool.load([c for c in pool.cards.values() if c.cluster == adapter.site],
                              [i for i in pool.instances.values()
                               if i.topology.cluster == adapter.site])
            try:
                alloc = local.allocate(job.id, req.count, type_=req.type,
                                       min_tflops=req.min_tflops,
                                       min_memory_gib=req.min_memory_gib, scopes=req.scopes)
            except PoolError as exc:
                alloc = None
                log.warning("pool refused %s: %s", job.id, exc)
            self._attempt(alloc is not None)
            if alloc is None:
                free = len(local.available(req.type))
                raise CentreRefused(adapter.site, f"no {req.count} free {req.type.value} "
                                    f"instance(s) of ≥{req.min_tflops:g} TFLOPS at "
                                    f"{adapter.site} ({free} free); nothing allocated")
            for iid in alloc.instances:
                pool.occupy(iid, job.id)
            ids, scope = list(alloc.instances), alloc.scope
        try:
            self._save(pool, job, ids, f"pool: allocate {','.join(ids)} to {job.id} ({scope})")
        except PoolError as exc:
            raise CentreRefused(adapter.site, str(exc)) from exc
        key_event(log, "instances allocated", job=job.id, site=adapter.site,
                  instances=",".join(ids), scope=scope)

    def unbind(self, job: Job) -> None:
        pool = load_pool(self.rt.store)
        ids = self._held(pool, job.id)
        if not ids:
            return
        try:
            pool.release_many(job.id, ids)
        except PoolError as exc:  # not all in use by it: nothing released, said so
            log.error("releasing %s from %s refused: %s", ids, job.id, exc)
            return
        self._save(pool, None, ids, f"pool: release {','.join(ids)} from {job.id} "
                   f"({job.state.value})")
        key_event(log, "instances released", job=job.id, instances=",".join(ids))

    def sweep(self, jobs: list[Job]) -> None:
        """Give back what jobs no longer holding resources still hold."""
        holding = {j.id for j in jobs if j.state in HOLDING}
        tasks = {inst.task for inst in self.rt.store.list(ComputeInstance)
                 if inst.state is InstanceState.IN_USE and inst.task}
        by_id = {j.id: j for j in jobs}
        for t in sorted(tasks - holding):
            job = by_id.get(t)
            if job is not None:  # tasks of the pool REST API are not jobs: left alone
                self.unbind(job)

    def _attempt(self, ok: bool) -> None:
        rec = self._recorder()
        if rec is not None:
            rec.attempt(ok)

    def _save(self, pool: Pool, job: Job | None, ids: list[str], reason: str) -> None:
        store = self.rt.store
        with store.transaction(ACTOR, reason) as txn:
            for iid in ids:
                txn.put(pool.instances[iid])
            if job is not None:
                cur = txn.get(Job, job.id)
                if cur is None or cur.run is None or job.run is None \
                        or cur.run.attempt != job.run.attempt or cur.state not in HOLDING:
                    raise PoolError(f"job {job.id} changed during allocation; nothing taken")
                txn.put(cur.model_copy(update={
                    "run": cur.run.model_copy(update={"instances": ids})}))
        rec = self._recorder()
        if rec is not None:
            from scheduler.api import pool_shares

            now = time.time()
            for card, share in pool_shares(store).items():
                rec.set_share(card, share, now)
