"""The queueing stage: quota tree, DRF fair share, queue-sort plug-ins, weighted queues
(WP-3.3.3 queue fair-share, hierarchical user/org quota tree; GBA-6.5d).

Rules:
- Quotas form a tree through ``Tenant.parent``: a tenant's usage counts against its
  own quota and every ancestor's. ``None`` limits are unlimited; ``jobs`` counts
  concurrent jobs.
- Borrowing: a tenant with ``quota.borrowing`` may exceed its own limit by using the
  idle quota of its siblings, each sibling lending at most its ``lending_limit``.
  Ancestors' limits are never exceeded. Borrowed allocations are reclaimable.
- Reclaim: a tenant within its own quota that is blocked by an ancestor limit gets
  back capacity by evicting borrowed allocations of other tenants under that
  ancestor (fewest first, newest first).
- DRF: a tenant's dominant share is the max over resources of its subtree usage
  divided by cluster capacity; ``drf`` sort serves the lowest share first.
- Weighted queues: each dispatch from a queue advances its virtual time by
  1/weight; the non-empty queue with the least virtual time goes next.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from controller.models import Quota, Tenant
from scheduler.models import Resources, Task

QUOTA_FIELDS = {"cpu": "cpu_cores", "gpu": "gpu", "npu": "npu", "memory": "memory_gib",
                "bandwidth": "bandwidth_mbps", "jobs": "jobs"}


def limits_of(q: Quota) -> dict[str, float]:
    out: dict[str, float] = {}
    for res, attr in QUOTA_FIELDS.items():
        v = getattr(q, attr)
        if v is not None:
            out[res] = float(v)
    return out


def with_jobs(req: Mapping[str, float], replicas: int = 1) -> Resources:
    out = {r: v * replicas for r, v in req.items()}
    out["jobs"] = 1.0
    return out


@dataclass(frozen=True, slots=True)
class Admission:
    """``ok``; ``borrowed`` (resource → amount over own quota); ``reason``."""

    ok: bool
    borrowed: Resources = field(default_factory=dict)
    reason: str = ""


@dataclass(slots=True)
class QuotaNode:
    name: str
    parent: str | None
    limits: dict[str, float]
    borrowing: bool = False
    lending_limit: dict[str, float] = field(default_factory=dict)
    usage: Resources = field(default_factory=dict)  # subtree usage


class QuotaTree:
    """Hierarchical quota accounting; pure, in memory."""

    def __init__(self, tenants: Iterable[Tenant] = (),
                 lending: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.nodes: dict[str, QuotaNode] = {}
        lending = lending or {}
        for t in tenants:
            self.nodes[t.name] = QuotaNode(t.name, t.parent, limits_of(t.quota),
                                           t.quota.borrowing, dict(lending.get(t.name, {})))
        for n in self.nodes.values():  # a dangling parent is treated as a root
            if n.parent is not None and n.parent not in self.nodes:
                n.parent = None
        self._check_cycles()

    def _check_cycles(self) -> None:
        for n in self.nodes.values():
            seen = {n.name}
            p = n.parent
            while p is not None:
                if p in seen:
                    raise ValueError(f"tenant parent cycle through {p!r}")
                seen.add(p)
                p = self.nodes[p].parent

    def chain(self, tenant: str) -> list[QuotaNode]:
        out = []
        name: str | None = tenant
        while name is not None and name in self.nodes:
            node = self.nodes[name]
            out.append(node)
            name = node.parent
        return out

    def siblings(self, node: QuotaNode) -> list[QuotaNode]:
        return [n for n in self.nodes.values() if n.parent == node.parent and n is not node]

    def lendable(self, node: QuotaNode, res: str) -> float:
        lim = node.limits.get(res)
        if lim is None:
            return 0.0
        idle = max(0.0, lim - node.usage.get(res, 0.0))
        return min(idle, node.lending_limit.get(res, idle))

    def admit(self, tenant: str, req: Mapping[str, float]) -> Admission:
        chain = self.chain(tenant)
        if not chain:
            return Admission(True)
        borrowed: Resources = {}
        for i, node in enumerate(chain):
            for res, amount in req.items():
                lim = node.limits.get(res)
                if lim is None or amount <= 0:
                    continue
                after = node.usage.get(res, 0.0) + amount
                if after <= lim + 1e-9:
                    continue
                over = after - lim
                if i == 0 and node.borrowing and node.parent is not None:
                    avail = sum(self.lendable(s, res) for s in self.siblings(node))
                    if over <= avail + 1e-9:
                        borrowed[res] = over
                        continue
                    return Admission(False, reason=(
                        f"over quota of tenant {node.name!r}: {res} {after:g} > {lim:g} and "
                        f"siblings lend only {avail:g}"))
                return Admission(False, reason=(
                    f"over quota of tenant {node.name!r}: {res} would be {after:g} > {lim:g}"))
        return Admission(True, borrowed)

    def charge(self, tenant: str, req: Mapping[str, float]) -> None:
        for node in self.chain(tenant):
            for res, v in req.items():
                node.usage[res] = node.usage.get(res, 0.0) + v

    def release(self, tenant: str, req: Mapping[str, float]) -> None:
        for node in self.chain(tenant):
            for res, v in req.items():
                node.usage[res] = max(0.0, node.usage.get(res, 0.0) - v)

    def reclaim(self, tenant: str, req: Mapping[str, float],
                running: Sequence[tuple[str, str, Resources, bool]]) -> list[str] | None:
        """Borrowed allocations to evict so ``tenant`` (within its own quota) fits.

        ``running``: (task id, tenant, charged resources, borrowed?), oldest first.
        Returns None when reclaim cannot help (the tenant itself is over quota)."""
        chain = self.chain(tenant)
        if not chain:
            return None
        own = chain[0]
        for res, amount in req.items():
            lim = own.limits.get(res)
            if lim is not None and own.usage.get(res, 0.0) + amount > lim + 1e-9:
                return None
        victims: list[str] = []
        freed: dict[str, Resources] = {}
        for tid, t, charged, was_borrowed in reversed(running):
            if self.admit_with(tenant, req, freed).ok:
                break
            if not was_borrowed or t == tenant:
                continue
            victims.append(tid)
            for node in self.chain(t):
                acc = freed.setdefault(node.name, {})
                for r, v in charged.items():
                    acc[r] = acc.get(r, 0.0) + v
        return victims if self.admit_with(tenant, req, freed).ok else None

    def admit_with(self, tenant: str, req: Mapping[str, float],
                   freed: Mapping[str, Resources]) -> Admission:
        saved = {n: dict(self.nodes[n].usage) for n in freed}
        try:
            for n, res in freed.items():
                for r, v in res.items():
                    self.nodes[n].usage[r] = self.nodes[n].usage.get(r, 0.0) - v
            return self.admit(tenant, req)
        finally:
            for n, u in saved.items():
                self.nodes[n].usage = u

    def dominant_share(self, tenant: str, totals: Mapping[str, float]) -> float:
        node = self.nodes.get(tenant)
        if node is None:
            return 0.0
        return max((node.usage.get(r, 0.0) / c for r, c in totals.items() if c > 0),
                   default=0.0)


# ------------------------------------------------------------------ queue sort
class QueueSort(Protocol):
    name: str
    dynamic: bool

    def key(self, task: Task, ctx: SortContext) -> tuple[float, ...]: ...


@dataclass(slots=True)
class SortContext:
    """What a queue-sort plug-in may read: ``now``, quota ``tree``, cluster ``totals``."""

    now: float = 0.0
    tree: QuotaTree | None = None
    totals: Resources = field(default_factory=dict)


class Fcfs:
    """GBA-6.5f-2 first come, first served."""

    name = "fcfs"
    dynamic = False

    def key(self, task: Task, ctx: SortContext) -> tuple[float, ...]:
        return (task.submitted,)


class PrioritySort:
    """Declared priority (higher first), then age (kube-scheduler PrioritySort)."""

    name = "priority"
    dynamic = False

    def key(self, task: Task, ctx: SortContext) -> tuple[float, ...]:
        return (-task.priority, task.submitted)


class DrfSort:
    """Lowest dominant share first (DRF), then priority, then age."""

    name = "drf"
    dynamic = True  # shares change as tasks are placed: re-sort at every pop

    def key(self, task: Task, ctx: SortContext) -> tuple[float, ...]:
        share = ctx.tree.dominant_share(task.tenant, ctx.totals) if ctx.tree else 0.0
        return (share, -task.priority, task.submitted)


class WeightedPriority:
    """Priority from declared priority, age, size and tenant usage (WP-3.3.3):
    score = priority/10 + age_minutes − size_share·50 − dominant_share·50."""

    name = "weighted-priority"
    dynamic = True

    def key(self, task: Task, ctx: SortContext) -> tuple[float, ...]:
        age_min = max(0.0, ctx.now - task.submitted) / 60.0
        size = max((v * task.replicas / c for r, v in task.requests.items()
                    if (c := ctx.totals.get(r, 0.0)) > 0), default=0.0)
        share = ctx.tree.dominant_share(task.tenant, ctx.totals) if ctx.tree else 0.0
        return (-(task.priority / 10.0 + age_min - 50.0 * size - 50.0 * share),
                task.submitted)


QUEUE_SORTS: dict[str, type[QueueSort]] = {
    c.name: c for c in (Fcfs, PrioritySort, DrfSort, WeightedPriority)  # type: ignore[misc]
}


def queue_sort(name: str) -> QueueSort:
    try:
        return QUEUE_SORTS[name]()
    except KeyError:
        raise ValueError(f"scheduler.queue_sort: unknown {name!r}; known: "
                         f"{', '.join(sorted(QUEUE_SORTS))}") from None


class SchedulingQueue:
    """Weighted queues of pending tasks; ``drain`` yields tasks in dispatch order."""

    def __init__(self, weights: Mapping[str, float] | None = None,
                 sort: QueueSort | None = None) -> None:
        self.weights = dict(weights or {})
        self.sort = sort or PrioritySort()
        self.queues: dict[str, list[Task]] = {}
        self.vtime: dict[str, float] = {}
        self._sorted: set[str] = set()

    def add(self, task: Task) -> None:
        self.queues.setdefault(task.queue, []).append(task)
        self._sorted.discard(task.queue)
        self.vtime.setdefault(task.queue, min(self.vtime.values(), default=0.0))

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def drain(self, ctx: SortContext) -> Iterator[Task]:
        while True:
            live = [q for q, ts in self.queues.items() if ts]
            if not live:
                return
            q = min(live, key=lambda n: (self.vtime[n], n))
            tasks = self.queues[q]
            if self.sort.dynamic or q not in self._sorted:
                # kept in reverse order so the next task pops from the end in O(1)
                tasks.sort(key=lambda t: (*self.sort.key(t, ctx), t.id), reverse=True)
                self._sorted.add(q)
            task = tasks.pop()
            self.vtime[q] += 1.0 / self.weights.get(q, 1.0)
            yield task
