"""Incremental re-planning of joint placement on events (WP-3.3, GBA-6.5f-8).

Rules:
- ``IncrementalPlanner`` keeps the last inputs (flows, sites, links) and the current
  assignment. On ``update`` it re-plans: flows whose own input is unchanged and whose
  current (site, path) is still a valid, feasible option are kept; new or changed
  flows, and flows whose site or path changed (capacity cut, link down, delay bound
  now broken), are placed again — with the migration cost so moves stay few.
- Unchanged input therefore moves nothing; departed flows are dropped.
- Pure: the caller feeds it problems built from the store and applies the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.placement import PFlow, PlacementPlan, PlacementProblem, replan


@dataclass(slots=True)
class IncrementalPlanner:
    time_limit_s: float = 5.0
    workers: int = 2
    previous: dict[str, PFlow] = field(default_factory=dict)
    current: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    last: PlacementPlan | None = None

    def update(self, problem: PlacementProblem, *, full: bool = False) -> PlacementPlan:
        ids = {f.id for f in problem.flows}
        current = {f: a for f, a in self.current.items() if f in ids}
        problem.current = current
        plan = replan(problem, self.previous, full=full, time_limit_s=self.time_limit_s,
                      workers=self.workers)
        self.previous = {f.id: f for f in problem.flows}
        self.current = {f: a for f, a in plan.assign.items() if a is not None}
        self.last = plan
        return plan
