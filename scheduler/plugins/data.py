"""Data-aware placement (GBA-6.5f-7): move small data to the best centre; run next to
big or private data.

Rules:
- Private data never leaves its site: the task is filtered to ``data_site``.
- Data at or above ``big_gib`` pulls the task to ``data_site`` (100) and scores
  other sites by the transfer time over the path's bottleneck bandwidth.
- Small data is cheap to move: every site scores 100 (other plug-ins decide).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from scheduler.framework import CycleState, Status
from scheduler.models import NodeInfo, SiteNet, Snapshot, Task
from scheduler.network import views_from
from scheduler.plugins.base import Args, parse_args

if TYPE_CHECKING:
    from scheduler.table import F64, I64, Bools, NodeTable


class DataAwareArgs(Args):
    big_gib: float = Field(default=100.0, ge=0)
    transfer_ref_s: float = Field(default=3600.0, gt=0)


class DataAware:
    name = "data-aware"

    def __init__(self, args: dict[str, Any]) -> None:
        self.a = parse_args(self.name, DataAwareArgs, args)

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status:
        if task.data_site is None:
            return Status.skip(self.name)
        if task.data_site not in snap.site_kinds:
            return Status.unresolvable(f"data_site {task.data_site!r} does not exist")
        views = snap.net.get(task.data_site)
        if views is None:
            views = views_from(snap.graph, task.data_site)
            snap.net[task.data_site] = views
        state["data_net"] = views
        return Status.success()

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        if task.data_private and node.site != task.data_site:
            return Status.unresolvable(f"private data stays at {task.data_site}",
                                       plugin=self.name)
        return Status.success()

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        import numpy as np

        if task.data_private and task.data_site is not None:
            return tab.site_mask(idx, (task.data_site,))
        return np.ones(len(idx), dtype=np.bool_)

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        return self._site_score(state, task, node.site)

    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> F64:
        return tab.site_values(idx, lambda site, _kind: self._site_score(state, task, site))

    def _site_score(self, state: CycleState, task: Task, site: str) -> float:
        if site == task.data_site or task.data_gib < self.a.big_gib:
            return 100.0
        v: SiteNet | None = state["data_net"].get(site)
        if v is None or v.bandwidth_mbps <= 0:
            return 0.0
        seconds = task.data_gib * 8192.0 / v.bandwidth_mbps + v.delay_ms / 1000.0
        return 100.0 * max(0.0, 1.0 - seconds / self.a.transfer_ref_s)
