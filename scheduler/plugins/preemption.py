"""Preemption with minimal victims (WP-3.3.3), kube-scheduler's DefaultPreemption.

Rules:
- Runs as PostFilter only when no node fits. Only nodes that failed on resources
  (unschedulable, not unresolvable) are candidates; only tasks of strictly lower
  priority may be evicted.
- Per node: remove every lower-priority task, check the request fits, then reprieve
  victims from the highest priority down (bigger first) while it still fits — what
  is left is a minimal victim set for that node.
- The node whose victims have the lowest top priority, then fewest victims, then
  lowest priority sum is chosen. Victims are removed from the snapshot and listed in
  the decision; the edge requeues them.
"""

from __future__ import annotations

from typing import Any

from scheduler.framework import Code, CycleState, Status
from scheduler.models import NodeInfo, Resources, Snapshot, Task
from scheduler.plugins.base import Args, parse_args


def _fits(free: Resources, req: Resources) -> bool:
    return all(v <= free.get(r, 0.0) + 1e-9 for r, v in req.items() if r != "bandwidth")


def minimal_victims(node: NodeInfo, task: Task) -> list[str] | None:
    """The fewest lower-priority tasks to evict from ``node`` so ``task`` fits."""
    lower = [(tid, p, req) for tid, (p, req) in node.tasks.items() if p < task.priority]
    free = {r: node.free(r) for r in node.capacity}
    for _, _, req in lower:
        for r, v in req.items():
            free[r] = free.get(r, 0.0) + v
    if not _fits(free, task.requests):
        return None
    victims: list[str] = []
    lower.sort(key=lambda x: (-x[1], -sum(x[2].values()), x[0]))
    for tid, _, req in lower:  # reprieve highest priority first
        trial = {r: free.get(r, 0.0) - req.get(r, 0.0) for r in set(free) | set(req)}
        if _fits(trial, task.requests):
            free = trial
        else:
            victims.append(tid)
    return victims


class Preemption:
    name = "preemption"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def post_filter(self, state: CycleState, task: Task, snap: Snapshot,
                    failed: dict[str, Status]) -> tuple[Status, NodeInfo | None]:
        best: tuple[tuple[int, int, int, str], NodeInfo, list[str]] | None = None
        for name, st in failed.items():
            if st.code is not Code.UNSCHEDULABLE or st.plugin != "node-resources-fit":
                continue
            node = snap.nodes[name]
            victims = minimal_victims(node, task)
            if not victims:
                continue
            prios = [node.tasks[v][0] for v in victims]
            key = (max(prios), len(victims), sum(prios), name)
            if best is None or key < best[0]:
                best = (key, node, victims)
        if best is None:
            return Status.unschedulable("no lower-priority victims free enough",
                                        plugin=self.name), None
        _, node, victims = best
        for v in victims:  # recorded so the framework can put them back if the task fails
            state.setdefault("preempted", []).append((node, v, node.tasks[v],
                                                      node.ends.get(v)))
            node.remove(v, node.tasks[v][1], None)
        state.setdefault("victims", []).extend(victims)
        state.setdefault("notes", []).append(f"preempted {','.join(victims)} on {node.name}")
        return Status.success(), node
