"""Compute affinity and anti-affinity (WP-3.3.3).

Rules:
- ``compute-affinity``: a workload class maps to preferred accelerators (tensor →
  NPU/TPU, image/vision → GPU, by default; configurable). Nodes with a preferred
  accelerator score 100, nodes with none 0; with ``required: true`` they are filtered.
- ``anti-affinity``: replicas of one group never share a node (``scope: node``) or a
  site (``scope: site``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from scheduler.framework import CycleState, Status
from scheduler.models import NodeInfo, Snapshot, Task
from scheduler.plugins.base import Args, parse_args

if TYPE_CHECKING:
    from scheduler.table import F64, I64, Bools, NodeTable

DEFAULT_MAP = {"tensor": ["npu", "tpu"], "image": ["gpu"], "vision": ["gpu"],
               "ai-training": ["gpu", "npu", "tpu"], "nlp": ["gpu", "npu"]}


class AffinityArgs(Args):
    classes: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_MAP))
    required: bool = False


class ComputeAffinity:
    name = "compute-affinity"

    def __init__(self, args: dict[str, Any]) -> None:
        self.a = parse_args(self.name, AffinityArgs, args)
        self.inactive = frozenset() if self.a.required else frozenset({"filter"})

    def _match(self, task: Task, node: NodeInfo) -> bool | None:
        want = self.a.classes.get(task.kind)
        if not want:
            return None
        return any(node.capacity.get(r, 0.0) > 0 for r in want)

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status:
        # a workload class with no preferred accelerator scores all nodes alike
        return Status.success() if task.kind in self.a.classes else Status.skip(self.name)

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        if self.a.required and self._match(task, node) is False:
            return Status.unresolvable(f"no {'/'.join(self.a.classes[task.kind])} for "
                                       f"{task.kind}", plugin=self.name)
        return Status.success()

    def _match_batch(self, task: Task, tab: NodeTable, idx: I64) -> Bools | None:
        import numpy as np

        want = self.a.classes.get(task.kind)
        if not want:
            return None
        m = np.zeros(len(idx), dtype=np.bool_)
        for r in want:
            m |= tab.cap_of(r, idx) > 0
        return m

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        import numpy as np

        m = self._match_batch(task, tab, idx) if self.a.required else None
        return np.ones(len(idx), dtype=np.bool_) if m is None else m

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        m = self._match(task, node)
        return 50.0 if m is None else (100.0 if m else 0.0)

    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> F64:
        import numpy as np

        m = self._match_batch(task, tab, idx)
        return np.full(len(idx), 50.0) if m is None else np.where(m, 100.0, 0.0)


class AntiAffinityArgs(Args):
    scope: Literal["node", "site"] = "node"


class AntiAffinity:
    name = "anti-affinity"

    def __init__(self, args: dict[str, Any]) -> None:
        self.a = parse_args(self.name, AntiAffinityArgs, args)
        self._snap: Snapshot | None = None

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status:
        if task.group is None:
            return Status.skip(self.name)
        if self.a.scope == "site":
            state["aa_sites"] = {n.site for n in snap.nodes.values()
                                 if n.groups.get(task.group)}
        return Status.success()

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        g = task.group
        if g is None:
            return Status.success()
        if self.a.scope == "site":
            if node.site in state["aa_sites"]:
                return Status.unschedulable(f"group {g} already at site", plugin=self.name)
        elif node.groups.get(g):
            return Status.unschedulable(f"group {g} already on node", plugin=self.name)
        return Status.success()

    def batch_key(self, state: CycleState, task: Task) -> str | None:
        # node scope is row-wise (the node's own group column); site scope reads the
        # cycle state (sites already holding the group): not cacheable
        return None if self.a.scope == "site" or task.group is None else task.group

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        import numpy as np

        if task.group is None:
            return np.ones(len(idx), dtype=np.bool_)
        if self.a.scope == "site":
            return ~tab.site_mask(idx, state["aa_sites"])
        return ~tab.has_group(task.group)[idx]

    def reserve(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        if self.a.scope == "site" and task.group is not None:
            state.setdefault("aa_sites", set()).add(node.site)
        return Status.success()

    def unreserve(self, state: CycleState, task: Task, node: NodeInfo) -> None:
        if self.a.scope == "site" and task.group is not None:
            state.setdefault("aa_sites", set()).discard(node.site)
