"""Reservation for large jobs and backfill by runtime estimates (WP-3.3.3).

Rules:
- A task is *large* when it asks for at least ``large_fraction`` of some node's
  capacity of any resource. When a large task cannot be placed (PostFilter), the
  node where it could start earliest (running tasks end by their estimates) is
  reserved for it in ``Snapshot.reservations`` with that expected start.
- A reserved node takes no other task — except, with ``backfill: true``, a task whose
  runtime estimate ends before the expected start (it cannot delay the large job).
- When the owner is placed on its node the reservation is dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from scheduler.framework import CycleState, Status
from scheduler.models import NodeInfo, Snapshot, Task
from scheduler.plugins.base import Args, parse_args

if TYPE_CHECKING:
    from scheduler.table import I64, Bools, NodeTable


class ReservationArgs(Args):
    large_fraction: float = Field(default=0.5, gt=0, le=1)
    backfill: bool = True
    unknown_runtime_s: float = Field(default=3600.0, gt=0)


class Reservation:
    name = "reservation"

    def __init__(self, args: dict[str, Any]) -> None:
        self.a = parse_args(self.name, ReservationArgs, args)

    def _large(self, task: Task, node: NodeInfo) -> bool:
        return any(v >= self.a.large_fraction * node.capacity.get(r, 0.0) > 0
                   for r, v in task.requests.items())

    def earliest_start(self, task: Task, node: NodeInfo, now: float) -> float | None:
        if any(v > node.capacity.get(r, 0.0) + 1e-9 for r, v in task.requests.items()
               if r != "bandwidth"):
            return None
        free = {r: node.free(r) for r in node.capacity}
        ends = sorted((node.ends.get(t, now + self.a.unknown_runtime_s), t)
                      for t in node.tasks)
        t_start = now
        for end, tid in [(now, ""), *ends]:
            if tid:
                for r, v in node.tasks[tid][1].items():
                    free[r] = free.get(r, 0.0) + v
                t_start = end
            if all(v <= free.get(r, 0.0) + 1e-9 for r, v in task.requests.items()
                   if r != "bandwidth"):
                return t_start
        return None

    def post_filter(self, state: CycleState, task: Task, snap: Snapshot,
                    failed: dict[str, Status]) -> tuple[Status, NodeInfo | None]:
        if task.id in {t for t, _ in snap.reservations.values()}:
            return Status.unschedulable("waiting for reserved node", plugin=self.name), None
        best: tuple[float, str] | None = None
        for name in failed:
            node = snap.nodes[name]
            if name in snap.reservations or not self._large(task, node):
                continue
            start = self.earliest_start(task, node, snap.now)
            if start is not None and (best is None or (start, name) < best):
                best = (start, name)
        if best is None:
            return Status.unschedulable("nothing to reserve", plugin=self.name), None
        snap.reservations[best[1]] = (task.id, best[0])
        state.setdefault("notes", []).append(f"reserved {best[1]} from {best[0]:.0f}")
        return Status.unschedulable(f"reserved {best[1]}", plugin=self.name), None

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        held = state.get("reservations")
        if held is None:
            return Status.success()
        r = held.get(node.name)
        if r is None or r[0] == task.id:
            return Status.success()
        if self.a.backfill and task.runtime_s is not None \
                and state["now"] + task.runtime_s <= r[1]:
            return Status.success()
        return Status.unschedulable(f"reserved for {r[0]}", plugin=self.name)

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        import numpy as np

        held = state.get("reservations")
        ok = np.ones(len(idx), dtype=np.bool_)
        if not held:
            return ok
        # the few reserved nodes through the per-node rule; every other node passes
        blocked = [tab.row[n] for n in held if n in tab.row
                   and not self.filter(state, task, tab.nodes[tab.row[n]]).ok]
        if blocked:
            ok &= ~np.isin(idx, np.array(blocked, dtype=np.int64))
        return ok

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status:
        state["reservations"] = snap.reservations
        state["now"] = snap.now
        # nothing reserved: the filter cannot refuse anything (PostFilter still runs)
        return Status.success() if snap.reservations else Status.skip(self.name)

    def reserve(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        held = state.get("reservations")
        if held is not None and held.get(node.name, ("",))[0] == task.id:
            state["dropped"] = (node.name, held.pop(node.name))
        if task.runtime_s is not None:
            node.ends[task.id] = state.get("now", 0.0) + task.runtime_s
        return Status.success()

    def unreserve(self, state: CycleState, task: Task, node: NodeInfo) -> None:
        dropped = state.pop("dropped", None)
        if dropped is not None and dropped[0] == node.name:
            state["reservations"][node.name] = dropped[1]
