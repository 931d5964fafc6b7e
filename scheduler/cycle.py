"""One scheduling pass: queueing stage then allocation stage (WP-3.3.1, WP-3.3.4).

Rules:
- Pure: pending tasks + snapshot + quota tree in, decisions out; the snapshot and
  the quota tree are updated as placements are made so later tasks see them.
- Admission first: a task over quota is rejected naming the quota (reclaim of
  borrowed allocations is tried first for a tenant within its own quota).
- Then the task's profile (tenant → queue → default) places it. Victims of
  preemption or reclaim are reported so the edge can requeue them.
- A Permit ``wait`` holds the task's resources and quota for the rest of the pass;
  a later task may release it (its success decision replaces the ``wait``); at the
  end of the pass every still-waiting task is unreserved and its quota returned
  (gang scheduling: all-or-nothing).
- Each decision carries its inputs (queue, tenant, profile, admission) for the
  journal — the traceability of WP-3.3.4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from scheduler.models import Decision, Resources, Snapshot, Task
from scheduler.profiles import Profiles
from scheduler.queueing import QuotaTree, SchedulingQueue, SortContext, queue_sort, with_jobs


@dataclass(slots=True)
class Running:
    """A placed task as the quota/reclaim logic sees it."""

    task: Task
    nodes: tuple[str, ...]
    charged: Resources
    borrowed: bool


@dataclass(slots=True)
class Scheduler:
    """Holds profiles, quota tree and running set between passes."""

    profiles: Profiles = field(default_factory=Profiles)
    tree: QuotaTree = field(default_factory=QuotaTree)
    running: dict[str, Running] = field(default_factory=dict)

    def schedule(self, pending: Sequence[Task], snap: Snapshot) -> list[Decision]:
        cfg = self.profiles.cfg
        q = SchedulingQueue({n: c.weight for n, c in cfg.queues.items()},
                            queue_sort(cfg.queue_sort))
        for t in pending:
            q.add(t)
        ctx = SortContext(now=snap.now, tree=self.tree, totals=snap.totals())
        out: list[Decision] = []
        at: dict[str, int] = {}
        for task in q.drain(ctx):
            d = self.schedule_one(task, snap)
            at[d.task] = len(out)
            out.append(d)
            for r in d.released:  # a Permit wait ended: those tasks are placed now
                prev = out[at[r.task]]  # its wait decision: inputs, reclaimed victims
                victims = tuple(dict.fromkeys(prev.victims + r.victims))
                out[at[r.task]] = self._released(
                    replace(r, victims=victims, inputs=prev.inputs), snap)
        for fw in self.profiles.frameworks.values():
            for d in fw.end_pass(snap.now):  # still waiting: unreserved, quota back
                self.forget(d.task)
                if d.task in at:  # its victims stay evicted: the decision keeps them
                    prev = out[at[d.task]]
                    out[at[d.task]] = replace(d, inputs=prev.inputs, victims=prev.victims)
        return out

    def _released(self, d: Decision, snap: Snapshot) -> Decision:
        if not d.ok:
            self.forget(d.task)
            return d
        for v in d.victims:
            self.evict(v, snap)
        return d

    def schedule_one(self, task: Task, snap: Snapshot) -> Decision:
        charge = with_jobs(task.requests, task.replicas)
        adm = self.tree.admit(task.tenant, charge)
        reclaimed: list[str] = []
        saved: list[tuple[Running, dict[str, float]]] = []
        if not adm.ok:
            run = [(r.task.id, r.task.tenant, r.charged, r.borrowed)
                   for r in self.running.values()]
            victims = self.tree.reclaim(task.tenant, charge, run)
            if not victims:
                return Decision(task.id, "unschedulable", reasons=(adm.reason,),
                                inputs={"tenant": task.tenant, "queue": task.queue})
            saved = [self._saved(v, snap) for v in victims]
            for v in victims:
                self.evict(v, snap)
            reclaimed = victims
            adm = self.tree.admit(task.tenant, charge)
        fw = self.profiles.for_task(task.tenant, task.queue, task.policy)
        d = fw.schedule(task, snap)
        inputs = dict(d.inputs)
        inputs.update({"tenant": task.tenant, "queue": task.queue, "priority": task.priority,
                       "borrowed": adm.borrowed})
        waiting = d.code == "wait"  # Permit wait: resources held, quota charged
        if not d.ok and not waiting:
            for r, ends in saved:  # nothing placed: the reclaimed tasks keep running
                self._restore(r, ends, snap)
            return replace(d, inputs=inputs)
        for v in d.victims:  # placed or waiting: preemption is committed
            self.evict(v, snap)  # its other replicas go too; the edge requeues it
        self.tree.charge(task.tenant, charge)
        self.running[task.id] = Running(task, d.nodes, charge, bool(adm.borrowed))
        notes = d.reasons + tuple(f"reclaimed {v}" for v in reclaimed)
        return replace(d, reasons=notes, victims=d.victims + tuple(reclaimed), inputs=inputs)

    def _saved(self, task_id: str, snap: Snapshot) -> tuple[Running, dict[str, float]]:
        r = self.running[task_id]
        ends = {n: snap.nodes[n].ends[task_id] for n in r.nodes
                if n in snap.nodes and task_id in snap.nodes[n].ends}
        return r, ends

    def _restore(self, r: Running, ends: dict[str, float], snap: Snapshot) -> None:
        """Undo ``evict``: the task is back on its nodes and in the quota tree."""
        for name in r.nodes:
            node = snap.nodes.get(name)
            if node is not None:
                node.add(r.task.id, r.task.priority, r.task.requests, r.task.group)
                if name in ends:
                    node.ends[r.task.id] = ends[name]
        self.tree.charge(r.task.tenant, r.charged)
        self.running[r.task.id] = r

    def forget(self, task_id: str) -> None:
        r = self.running.pop(task_id, None)
        if r is not None:
            self.tree.release(r.task.tenant, r.charged)

    def evict(self, task_id: str, snap: Snapshot) -> None:
        """Remove a running task from the snapshot and the quota tree."""
        r = self.running.get(task_id)
        if r is None:
            return
        for name in r.nodes:
            node = snap.nodes.get(name)
            if node is not None:
                node.remove(task_id, r.task.requests, r.task.group)
        self.forget(task_id)

    def finish(self, task_id: str, snap: Snapshot) -> None:
        self.evict(task_id, snap)
