"""Make-before-break policy switch across nodes (GBA-6.4.3c; RFC 9256 §2.9 path change).

Rules:
- ``plan_switch`` is pure: actual state per node + target state per node → ``SwitchPlan``,
  four phases, each a list of ``Step(phase, node, desired)``:
  1. ``make``   — every node gets the target's new seg6local SIDs *added* (old kept);
  2. ``verify`` — the new SIDs are read back from every such node;
  3. ``switch`` — each headend's steering routes move to the target in one commit, whose
     ops are atomic ``replace``s (``NLM_F_REPLACE``): no instant without a route (a plan
     may move several headends' policies at once: one switch step per headend);
  4. ``break``  — every node converges to the target (old SIDs and routes removed).
- ``execute`` runs a plan through ``PolicyProgrammer``s and times every step. A failure
  in ``make``/``verify``/``switch`` undoes what this switch added (nodes go back to their
  pre-switch state) and the report says which step failed; after ``switch`` succeeded, a
  ``break`` failure leaves traffic on the new path and only reports the leftovers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .programmer import PolicyProgrammer, Result
from .state import NodeState, Seg6LocalRoute, Seg6Route

Phase = Literal["make", "verify", "switch", "break"]


@dataclass(frozen=True, slots=True)
class Step:
    """One step: load ``desired`` on ``node`` and commit (``verify``: read back and check
    that ``desired`` ⊆ actual)."""

    phase: Phase
    node: str
    desired: NodeState


@dataclass(frozen=True, slots=True)
class SwitchPlan:
    headend: str
    steps: tuple[Step, ...]
    before: Mapping[str, NodeState]
    headends: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        return [f"{s.phase}:{s.node} ({len(s.desired)} routes)" for s in self.steps]


@dataclass
class StepReport:
    phase: Phase
    node: str
    ok: bool
    elapsed_ms: float
    result: Result | None = None
    error: str = ""


@dataclass
class SwitchReport:
    """``ok``; ``failed_step`` (``phase:node``) and ``error`` if not; ``steps`` timed;
    ``elapsed_ms`` total; ``switch_ms`` = the headend replace step alone."""

    ok: bool
    steps: list[StepReport] = field(default_factory=list)
    failed_step: str = ""
    error: str = ""
    elapsed_ms: float = 0.0

    @property
    def switch_ms(self) -> float:
        return sum(s.elapsed_ms for s in self.steps if s.phase == "switch")


def plan_switch(actual: Mapping[str, NodeState], target: Mapping[str, NodeState],
                headend: str | Sequence[str]) -> SwitchPlan:
    """The four-phase plan moving every node from ``actual`` to ``target``; ``headend``
    names the node (or nodes) whose steering routes move in the ``switch`` phase."""
    heads = (headend,) if isinstance(headend, str) else tuple(sorted(set(headend)))
    nodes = sorted(set(actual) | set(target))
    empty = NodeState()
    steps: list[Step] = []
    made: dict[str, NodeState] = {}
    for n in nodes:
        have, want = actual.get(n, empty), target.get(n, empty)
        new_sids = [r for r in want.only(Seg6LocalRoute) if r not in have]
        if new_sids:
            made[n] = have.merged(new_sids)
            steps.append(Step("make", n, made[n]))
    for n in made:
        steps.append(Step("verify", n, NodeState.of(
            r for r in target.get(n, empty).only(Seg6LocalRoute))))
    steered: dict[str, NodeState] = {}
    for h in heads:
        head_now = made.get(h, actual.get(h, empty))
        head_steer = head_now.merged(target.get(h, empty).only(Seg6Route))
        steered[h] = head_steer
        if head_steer != head_now:
            steps.append(Step("switch", h, head_steer))
    for n in nodes:
        now = steered[n] if n in steered else made.get(n, actual.get(n, empty))
        want = target.get(n, empty)
        if want != now:
            steps.append(Step("break", n, want))
    return SwitchPlan(heads[0] if heads else "", tuple(steps), dict(actual), heads)


def execute(plan: SwitchPlan, programmers: Mapping[str, PolicyProgrammer]) -> SwitchReport:
    """Run ``plan``; see the module rules for failure handling."""
    t0 = time.perf_counter()
    report = SwitchReport(ok=True)
    touched: list[str] = []
    for step in plan.steps:
        prog = programmers[step.node]
        ts = time.perf_counter()
        if step.phase == "verify":
            actual = prog.read_actual()
            missing = [r for r in step.desired if r not in actual]
            ok, res, err = not missing, None, (f"SIDs not in kernel: {missing}" if missing
                                               else "")
        else:
            prog.load(step.desired)
            res = prog.commit()
            ok, err = not res.failed, res.error
            if res.changed and step.node not in touched:
                touched.append(step.node)
        report.steps.append(StepReport(step.phase, step.node, ok,
                                       (time.perf_counter() - ts) * 1e3, res, err))
        if not ok:
            report.ok, report.failed_step, report.error = False, f"{step.phase}:{step.node}", err
            if step.phase != "break":
                _undo(plan, programmers, touched)
            break
    report.elapsed_ms = (time.perf_counter() - t0) * 1e3
    return report


def _undo(plan: SwitchPlan, programmers: Mapping[str, PolicyProgrammer],
          touched: list[str]) -> None:
    # Steering first (headends), then SIDs: the reverse of make-before-break.
    heads = set(plan.headends or (plan.headend,))
    order = sorted(touched, key=lambda n: n not in heads)
    for n in order:
        programmers[n].load(plan.before.get(n, NodeState()))
        programmers[n].commit()


def switch(programmers: Mapping[str, PolicyProgrammer], target: Mapping[str, NodeState],
           headend: str | Sequence[str]) -> SwitchReport:
    """Read every node, plan, execute: the controller's one call to move a policy."""
    actual = {n: p.read_actual() for n, p in programmers.items()}
    return execute(plan_switch(actual, target, headend), programmers)
