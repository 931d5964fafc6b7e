"""Network-aware plug-ins: network-aware, QoS/QoE-first, SLA targets, interconnect
priority (GBA-6.5f-6, GBA-6.5f-8, WP-3.3.3 SLA, GBA-5.2).

Rules:
- PreFilter computes the path view (delay, jitter, loss, bottleneck bandwidth) from
  the task's ``origin`` once per origin and caches it in the snapshot; a task with no
  origin skips these plug-ins.
- ``network-aware`` filters sites beyond ``max_latency_ms``, without the requested
  bandwidth, or over ``max_loss_pct``; scores delay, jitter and loss.
- ``qos-first`` scores the joint path + cluster quality (delay and CATS L2).
- ``sla`` filters sites that would miss the task's SLA latency target, and prefers
  the biggest margin.
- ``interconnect`` scores by GBA-5.2 order: hubs OTN > IP-private > Internet, other
  sites IP-private > OTN > Internet (worst kind on the path counts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from controller.models import InterconnectKind, SiteKind, interconnect_preference
from scheduler.framework import CycleState, Status
from scheduler.models import NodeInfo, SiteNet, Snapshot, Task
from scheduler.network import views_from
from scheduler.plugins.base import Args, parse_args

if TYPE_CHECKING:
    from scheduler.table import F64, I64, Bools, NodeTable


def path_views(task: Task, snap: Snapshot) -> dict[str, SiteNet] | None:
    if task.origin is None:
        return None
    views = snap.net.get(task.origin)
    if views is None:
        views = views_from(snap.graph, task.origin)
        snap.net[task.origin] = views
    return views


class _NetBase:
    name = ""

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status:
        views = path_views(task, snap)
        if views is None:
            return Status.skip(self.name)
        state["net"] = views
        return Status.success()


class _SiteScored(_NetBase):
    """A score that depends only on the node's site (one value per site, per node and
    batched alike); subclasses define ``_site_score``."""

    def _site_score(self, state: CycleState, task: Task, site: str) -> float:
        raise NotImplementedError

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        return self._site_score(state, task, node.site)

    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> F64:
        return tab.site_values(idx, lambda s, _k: self._site_score(state, task, s))


class NetworkAwareArgs(Args):
    delay_ref_ms: float = Field(default=50.0, gt=0)
    max_loss_pct: float = Field(default=100.0, ge=0, le=100)
    w_delay: float = Field(default=0.6, ge=0)
    w_jitter: float = Field(default=0.2, ge=0)
    w_loss: float = Field(default=0.2, ge=0)


class NetworkAware(_SiteScored):
    name = "network-aware"

    def __init__(self, args: dict[str, Any]) -> None:
        self.a = parse_args(self.name, NetworkAwareArgs, args)

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        return self._site_filter(state, task, node.site)

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        return tab.site_values(
            idx, lambda s, _k: float(self._site_filter(state, task, s).ok)) > 0.5

    def _site_filter(self, state: CycleState, task: Task, site: str) -> Status:
        v: SiteNet | None = state["net"].get(site)
        if v is None:
            return Status.unresolvable(f"no path from {task.origin}", plugin=self.name)
        if task.max_latency_ms is not None and v.delay_ms > task.max_latency_ms:
            return Status.unresolvable(
                f"path delay {v.delay_ms:g} ms > max_latency_ms {task.max_latency_ms:g}",
                plugin=self.name)
        bw = task.requests.get("bandwidth", 0.0)
        if bw > v.bandwidth_mbps:
            return Status.unschedulable(f"path bandwidth {v.bandwidth_mbps:g} < {bw:g} Mbit/s",
                                        plugin=self.name)
        if v.loss_pct > self.a.max_loss_pct:
            return Status.unschedulable(f"path loss {v.loss_pct:.2g} %", plugin=self.name)
        return Status.success()

    def _site_score(self, state: CycleState, task: Task, site: str) -> float:
        v: SiteNet = state["net"][site]
        a = self.a
        tot = a.w_delay + a.w_jitter + a.w_loss or 1.0
        d = max(0.0, 1.0 - v.delay_ms / a.delay_ref_ms)
        j = max(0.0, 1.0 - v.jitter_ms / (a.delay_ref_ms / 5))
        loss = max(0.0, 1.0 - v.loss_pct / 5.0)
        return 100.0 * (a.w_delay * d + a.w_jitter * j + a.w_loss * loss) / tot


class QosFirst(_NetBase):
    name = "qos-first"

    def __init__(self, args: dict[str, Any]) -> None:
        self.a = parse_args(self.name, NetworkAwareArgs, args)

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        v: SiteNet | None = state["net"].get(node.site)
        ref = task.max_latency_ms or self.a.delay_ref_ms
        d = 0.0 if v is None else max(0.0, 1.0 - v.delay_ms / ref)
        c = (node.l2 / 10.0) if node.l2 is not None else max(0.0, 1.0 - node.load())
        return 100.0 * (0.5 * d + 0.5 * c)


class Sla(_SiteScored):
    name = "sla"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status:
        if task.sla_ms is None:
            return Status.skip(self.name)
        return super().pre_filter(state, task, snap)

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        if self._site_ok(state, task, node.site):
            return Status.success()
        return Status.unresolvable(f"SLA {task.sla_ms:g} ms missed", plugin=self.name)

    def _site_ok(self, state: CycleState, task: Task, site: str) -> bool:
        v = state["net"].get(site)
        assert task.sla_ms is not None
        return not (v is None or v.delay_ms > task.sla_ms)

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> Bools:
        return tab.site_values(idx, lambda s, _k: float(self._site_ok(state, task, s))) > 0.5

    def _site_score(self, state: CycleState, task: Task, site: str) -> float:
        v: SiteNet = state["net"][site]
        assert task.sla_ms is not None
        return 100.0 * max(0.0, 1.0 - v.delay_ms / task.sla_ms)


def interconnect_rank(site_kind: SiteKind, kinds: str) -> int:
    """0 = best. The worst interconnect kind on the path decides."""
    pref = interconnect_preference(site_kind)
    worst = 0
    for k in filter(None, kinds.split(",")):
        worst = max(worst, pref.index(InterconnectKind(k)))
    return worst


class Interconnect(_NetBase):
    name = "interconnect"

    def __init__(self, args: dict[str, Any]) -> None:
        parse_args(self.name, Args, args)

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        return self._site_score(state, node.site, node.site_kind)

    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64) -> F64:
        return tab.site_values(idx, lambda s, k: self._site_score(state, s, k))

    def _site_score(self, state: CycleState, site: str, kind: SiteKind) -> float:
        v: SiteNet | None = state["net"].get(site)
        if v is None:
            return 0.0
        return 100.0 - 50.0 * interconnect_rank(kind, v.interconnect)
