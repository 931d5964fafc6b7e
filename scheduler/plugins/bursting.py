"""Cloud bursting (WP-3.3.3): use ``cloud`` sites only when local capacity is out.

Rules:
- Score: non-cloud nodes 100, cloud nodes 0. With the profile's weight above the
  sum of the others, a cloud node wins only when no local node is feasible.
- ``allow: false`` filters cloud sites out entirely (a tenant that may not burst).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controller.models import SiteKind
from scheduler.framework import CycleState, Status
from scheduler.models import NodeInfo, Task
from scheduler.plugins.base import Args, parse_args

if TYPE_CHECKING:
    from scheduler.table import F64, I64, Bools, NodeTable


class BurstArgs(Args):
    allow: bool = True


class CloudBursting:
    name = "cloud-bursting"
    static = True
    table_static = True  # site kind only: never changed by Reserve

    def __init__(self, args: dict[str, Any]) -> None:
        self.a = parse_args(self.name, BurstArgs, args)
        self.inactive = frozenset() if not self.a.allow else frozenset({"filter"})

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        if not self.a.allow and node.site_kind is SiteKind.CLOUD:
            return Status.unresolvable("cloud bursting not allowed", plugin=self.name)
        return Status.success()

    def batch_key(self, state: CycleState, task: Task) -> tuple[()]:
        return ()  # node-only (site kind) and this plug-in's own arguments

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        import numpy as np

        if self.a.allow:
            return np.ones(len(idx), dtype=np.bool_)
        return ~tab.cloud[idx]

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        return 0.0 if node.site_kind is SiteKind.CLOUD else 100.0

    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> F64:
        import numpy as np

        return np.where(tab.cloud[idx], 0.0, 100.0)
