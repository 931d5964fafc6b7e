"""Core plug-ins every profile uses: resource fit, node state, accounting, bind,
node ordering (WP-3.3.3: least-loaded; prefer awake nodes).

Rules:
- ``node-resources-fit`` covers CPU, memory, GPU/NPU/TPU and extended resources
  (any resource name). A request larger than a node's *capacity* can never fit
  there (unresolvable); larger than its *free* amount is unschedulable (may clear).
- ``resources`` Reserve adds the request to the node, Unreserve removes it
  (idempotent per (task, node, replica) through the cycle state).
- ``default-binder`` records the placement in the cycle state; the edge (component,
  simulator) applies it to the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scheduler.framework import CycleState, Status
from scheduler.models import NodeInfo, Snapshot, Task
from scheduler.plugins.base import Args, parse_args

if TYPE_CHECKING:
    from scheduler.table import F64, I64, Bools, NodeTable

_OK = Status.success()
#: batch calls on at most this many rows (cached-column refreshes) run per node
TINY = 4
#: Resources nearly every node has: no point narrowing candidates by them.
COMMON = frozenset({"cpu", "memory", "bandwidth"})


class NodeResourcesFit:
    name = "node-resources-fit"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status:
        if any(v < 0 for v in task.requests.values()):
            return Status.unresolvable("negative resource request")
        # kube-style PreFilterResult: a task asking for a rare resource (GPU, NPU,
        # extended) only needs the nodes that have some of it at all.
        rare = [r for r, v in task.requests.items() if v > 0 and r not in COMMON]
        if rare:
            index = snap.resource_index()
            best = min(rare, key=lambda r: len(index.get(r, ())))
            cands = index.get(best, [])
            if not cands:
                return Status.unresolvable(f"no node has any {best}")
            state["candidates"] = cands
        return Status.success()

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        cap, used = node.capacity, node.used
        short = None
        for r, v in task.requests.items():  # NodeInfo.fits, inlined: the hot loop
            if v > cap.get(r, 0.0) - used.get(r, 0.0) + 1e-9 and r != "bandwidth":
                short = r
                break
        if short is None:
            return _OK
        if task.requests[short] > node.capacity.get(short, 0.0) + 1e-9:
            return Status.unresolvable(f"capacity {short} < {task.requests[short]:g}",
                                       plugin=self.name)
        return Status.unschedulable(f"insufficient {short}", plugin=self.name)

    def batch_key(self, state: CycleState, task: Task) -> tuple[tuple[str, float], ...]:
        # row-wise: a node passes or not by its own columns and the request alone
        return tuple(task.requests.items())

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        import numpy as np

        if len(idx) <= TINY:  # a cached column's refresh: per node is cheaper
            return np.array([self.filter(state, task, tab.nodes[i]) is _OK
                             for i in idx.tolist()], dtype=np.bool_)
        ok = np.ones(len(idx), dtype=np.bool_)
        for r, v in task.requests.items():
            if r != "bandwidth":
                ok &= ~(v > tab.cap_of(r, idx) - tab.used_of(r, idx) + 1e-9)
        return ok


class NodeReady:
    """Filter: an overloaded node (CATS hysteresis state) takes no new work."""

    name = "node-ready"
    table_static = True  # reads only the table's build-time ``overloaded`` column

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        if node.overloaded:
            return Status.unschedulable("node overloaded", plugin=self.name)
        return Status.success()

    def batch_key(self, state: CycleState, task: Task) -> tuple[()]:
        return ()

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        return ~tab.overloaded[idx]


class Resources:
    name = "resources"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def reserve(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        held: list[str] = state.setdefault("held", [])
        node.add(task.id, task.priority, task.requests, task.group)
        held.append(node.name)
        return Status.success()

    def unreserve(self, state: CycleState, task: Task, node: NodeInfo) -> None:
        held: list[str] = state.setdefault("held", [])
        if node.name in held:  # idempotent: only undo what was reserved
            held.remove(node.name)
            node.remove(task.id, task.requests, task.group)


class DefaultBinder:
    name = "default-binder"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def bind(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        state.setdefault("bound", []).append(node.name)
        return Status.success()


class LeastLoaded:
    """Score: share of the node left free after placing the task (kube-scheduler's
    LeastAllocated), averaged over the resources the task requests (all of the node's
    resources when it requests none)."""

    name = "least-loaded"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        cap, used = node.capacity, node.used
        total = 0.0
        n = 0
        for r, v in (task.requests.items() or dict.fromkeys(cap, 0.0).items()):
            c = cap.get(r, 0.0)
            if c > 0:
                free = 1.0 - (used.get(r, 0.0) + v) / c
                total += free if free > 0 else 0.0
                n += 1
        return 100.0 * total / n if n else 0.0

    def batch_key(self, state: CycleState, task: Task) -> tuple[tuple[str, float], ...]:
        # row-wise; the request's order is kept (it is the order of the float sum)
        return tuple(task.requests.items())

    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> F64:
        import numpy as np

        if not task.requests or len(idx) <= TINY:  # per node: the same floats
            return np.array([self.score(state, task, tab.nodes[i]) for i in idx.tolist()],
                            dtype=np.float64)
        # The per-node floats, with as few numpy calls as possible (a cached column's
        # refresh runs on a few dozen rows: the call count is the cost). The first
        # share is the total itself (0.0 + x is x); a resource every row has needs
        # no masking, and when all have all, every row divides by the same count.
        total: F64 | None = None
        hases: list[Bools] = []
        for r, v in task.requests.items():
            c = tab.cap_of(r, idx)
            has = c > 0
            if has.all():
                free = 1.0 - (tab.used_of(r, idx) + v) / c
                part = np.where(free > 0, free, 0.0)
            else:
                hases.append(has)
                free = 1.0 - (tab.used_of(r, idx) + v) / np.where(has, c, 1.0)
                part = np.where(has & (free > 0), free, 0.0)
            total = part if total is None else total + part
        assert total is not None
        k = len(task.requests)
        if not hases:
            out: F64 = 100.0 * total / k
            return out
        n = np.full(len(idx), k - len(hases), dtype=np.int64)
        for has in hases:
            n = n + has
        return np.where(n > 0, 100.0 * total / np.where(n > 0, n, 1), 0.0)


class PreferAwake:
    """Score: awake nodes first; waking a sleeping node costs time and energy."""

    name = "prefer-awake"
    static = True
    table_static = True

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        return 100.0 if node.awake else 0.0

    def batch_key(self, state: CycleState, task: Task) -> tuple[()]:
        return ()

    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> F64:
        import numpy as np

        return np.where(tab.awake[idx], 100.0, 0.0)
