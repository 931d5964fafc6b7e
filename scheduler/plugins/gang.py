"""Gang (co-scheduling) Permit: a job of N tasks runs all-or-nothing (WP-3.3.3).

Rules:
- A task with ``gang`` set and ``gang_size`` > 1 is a member of that gang; tasks
  without a gang pass. Members of one gang must use the same profile.
- Permit: a member whose replicas are all reserved WAITS (its reservations are held,
  so later tasks see the capacity used) until ``gang_size`` members are reserved;
  the member that completes the gang is allowed and allows the waiting ones
  (``state["allow"]``) — they are bound together.
- The wait lasts one scheduling pass: at ``Framework.end_pass`` every still-waiting
  member is unreserved (nothing of an incomplete gang stays placed), and reported
  ``wait`` ("k/N reserved") until ``timeout_s`` after the gang's first wait, then
  ``unschedulable`` ("timed out"), after which a later attempt starts a new window.
  Time is the snapshot's ``now`` (pure; the simulator's clock works too).
- A member asking for more replicas than ``gang_size`` allows is not an error: the
  gang counts tasks, not replicas (each task's replicas are already all-or-nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from scheduler.framework import CycleState, Status
from scheduler.models import NodeInfo, Snapshot, Task
from scheduler.plugins.base import Args, parse_args


class GangArgs(Args):
    timeout_s: float = Field(default=60.0, gt=0)


@dataclass(slots=True)
class _Gang:
    size: int
    since: float
    members: dict[str, None] = field(default_factory=dict)
    reserved: int = 0


class Gang:
    name = "gang"

    def __init__(self, args: dict[str, Any]) -> None:
        self.a = parse_args(self.name, GangArgs, args)
        self.gangs: dict[str, _Gang] = {}

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status:
        if task.gang is None:
            return Status.skip(self.name)
        if task.gang_size < 1:
            return Status.unresolvable(f"gang {task.gang}: gang_size must be >= 1, "
                                       f"got {task.gang_size}")
        state["gang_now"] = snap.now
        return Status.success()

    def reserve(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        return Status.success()

    def unreserve(self, state: CycleState, task: Task, node: NodeInfo) -> None:
        g = self.gangs.get(task.gang) if task.gang is not None else None
        if g is not None:
            g.members.pop(task.id, None)

    def permit(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        if task.gang is None or task.gang_size <= 1:
            return Status.success()
        g = self.gangs.get(task.gang)
        if g is None:
            g = self.gangs[task.gang] = _Gang(task.gang_size, state.get("gang_now", 0.0))
        g.size = max(g.size, task.gang_size)
        g.members[task.id] = None
        g.reserved = len(g.members)
        if g.reserved >= g.size:
            state["allow"] = [m for m in g.members if m != task.id]
            del self.gangs[task.gang]
            return Status.success()
        return Status.wait(f"gang {task.gang}: {g.reserved}/{g.size} reserved",
                           plugin=self.name)

    def wait_over(self, task: Task, now: float) -> Status | None:
        """Why ``task``'s wait ended with the pass: still waiting or timed out."""
        g = self.gangs.get(task.gang) if task.gang is not None else None
        if g is None:
            return None
        waited = now - g.since
        if waited >= self.a.timeout_s:
            if not g.members:  # last member told: the next attempt opens a new window
                del self.gangs[task.gang]  # type: ignore[arg-type]
            return Status.unschedulable(
                f"gang {task.gang}: timed out after {waited:.0f} s with {g.reserved}/{g.size} "
                "reserved; all released", plugin=self.name)
        return Status.wait(f"gang {task.gang}: {g.reserved}/{g.size} reserved, waiting "
                           f"(timeout in {self.a.timeout_s - waited:.0f} s)", plugin=self.name)
