"""GBA-6.5f single-criterion policies: manual, load-aware, energy-aware, price-aware.

Rules:
- ``manual`` (GBA-6.5f-1): a task naming a site runs only there; an unknown site is
  unresolvable. Tasks naming no site are skipped by this plug-in.
- ``load-aware``: prefer low CATS load — the L2 score (0–10) when reported, else
  the node's own utilisation.
- ``energy-aware`` / ``price-aware``: prefer low W / low price per resource-hour,
  min-max normalised across the feasible nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scheduler.framework import CycleState, Status
from scheduler.models import NodeInfo, Snapshot, Task
from scheduler.plugins.base import Args, normalize_minmax, normalize_minmax_batch, parse_args

if TYPE_CHECKING:
    from scheduler.table import F64, I64, Bools, NodeTable


class Manual:
    name = "manual"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status:
        if task.site is None:
            return Status.skip(self.name) if not task.avoid else Status.success()
        if task.site not in snap.site_kinds:
            return Status.unresolvable(f"manual site {task.site!r} does not exist")
        return Status.success()

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        if task.site is not None and node.site != task.site:
            return Status.unresolvable(f"manual placement on {task.site}", plugin=self.name)
        if node.site in task.avoid:  # its centre refused this job lately (GBA-6.3)
            return Status.unschedulable(f"centre {node.site} refused this job",
                                        plugin=self.name)
        return Status.success()

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        import numpy as np

        ok = np.ones(len(idx), dtype=np.bool_) if task.site is None \
            else tab.site_mask(idx, (task.site,))
        if task.avoid:
            ok &= ~tab.site_mask(idx, task.avoid)
        return ok


class LoadAware:
    name = "load-aware"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        if node.l2 is not None:
            return 10.0 * node.l2
        return 100.0 * (1.0 - min(1.0, node.load()))


class EnergyAware:
    name = "energy-aware"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        # A sleeping node must be woken: count its whole idle draw.
        return node.energy_w * (1.0 if node.awake else 2.0)

    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> F64:
        import numpy as np

        return tab.energy[idx] * np.where(tab.awake[idx], 1.0, 2.0)

    def normalize(self, state: CycleState, task: Task, scores: dict[str, float]) -> None:
        normalize_minmax(scores, reverse=True)

    def normalize_batch(self, state: CycleState, task: Task, raw: F64) -> F64:
        return normalize_minmax_batch(raw, reverse=True)


class PriceAware:
    name = "price-aware"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        return node.price_per_hour

    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> F64:
        return tab.price[idx]

    def normalize(self, state: CycleState, task: Task, scores: dict[str, float]) -> None:
        normalize_minmax(scores, reverse=True)

    def normalize_batch(self, state: CycleState, task: Task, raw: F64) -> F64:
        return normalize_minmax_batch(raw, reverse=True)
