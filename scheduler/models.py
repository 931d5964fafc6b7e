"""The scheduler's working values: tasks, nodes, snapshots, decisions (WP-3.3, GBA-6.5).

Rules:
- Pure values; the scheduler never reads the store. ``Snapshot`` is built by the
  edge (component, simulator, bench) from domain objects and handed in.
- Resource amounts are keyed by name: ``cpu`` (cores), ``memory`` (GiB), ``gpu``,
  ``npu``, ``tpu`` (devices), ``bandwidth`` (Mbit/s) and any extended resource name
  (WP-3.3.3 extended resources) — so new resource kinds need no code.
- ``NodeInfo.used`` is the only mutable part; Reserve adds, Unreserve subtracts —
  through ``add``/``remove``, which keep the snapshot's ``NodeTable`` in step.
  Assigning a node attribute outright (``node.used = {...}``) marks the table stale
  (rebuilt on next use); editing a node's dicts in place is not seen — don't.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from controller.models import Job, Requirements, SiteKind
from srv6.paths.topology import Topology

if TYPE_CHECKING:
    from scheduler.table import NodeTable

Resources = dict[str, float]


def requests_of(req: Requirements) -> Resources:
    """Domain ``Requirements`` → resource vector (zero entries dropped)."""
    out = {"cpu": req.cpu_cores, "memory": req.memory_gib, "gpu": req.gpu, "npu": req.npu,
           "bandwidth": req.bandwidth_mbps}
    return {k: v for k, v in out.items() if v > 0}


@dataclass(slots=True)
class Task:
    """One unit to place: ``id``, ``tenant``, ``queue``, ``requests`` (per replica),
    ``replicas``, ``priority`` (0–1000), ``submitted`` (epoch s), ``kind`` (job kind /
    workload class: vision, nlp, tensor …), ``site`` (manual placement), ``data_site``,
    ``data_gib``, ``data_private``, ``runtime_s`` (estimate), ``max_latency_ms``,
    ``origin`` (topology node the traffic comes from), ``group`` (anti-affinity group),
    ``labels``, ``policy`` (profile name), ``sla_ms`` (SLA latency target), ``gang``
    and ``gang_size`` (co-scheduling group and its member count; job params ``gang``,
    ``gang_size``), ``avoid`` (sites whose centre refused this task lately: the
    ``manual`` filter keeps it away from them)."""

    id: str
    tenant: str = "default"
    queue: str = "default"
    requests: Resources = field(default_factory=dict)
    replicas: int = 1
    priority: int = 100
    submitted: float = 0.0
    kind: str = "other"
    site: str | None = None
    data_site: str | None = None
    data_gib: float = 0.0
    data_private: bool = False
    runtime_s: float | None = None
    max_latency_ms: float | None = None
    origin: str | None = None
    group: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    policy: str | None = None
    sla_ms: float | None = None
    gang: str | None = None
    gang_size: int = 0
    avoid: tuple[str, ...] = ()

    @classmethod
    def from_job(cls, job: Job) -> Task:
        s = job.spec
        p: dict[str, Any] = s.params
        reqs = requests_of(s.requirements)
        for k, v in dict(p.get("extended", {})).items():
            reqs[str(k)] = float(v)
        return cls(
            id=job.id, tenant=job.tenant, queue=s.queue, requests=reqs, replicas=s.replicas,
            priority=s.priority, submitted=job.submitted_at.timestamp(),
            kind=str(p.get("workload", s.kind.value)), site=s.site, data_site=s.data_site,
            data_gib=s.data_gib, data_private=bool(p.get("data_private", False)),
            runtime_s=s.runtime_estimate_s or s.walltime_s,
            max_latency_ms=s.requirements.max_latency_ms,
            origin=p.get("origin"), group=p.get("anti_affinity"),
            policy=s.policy, sla_ms=p.get("sla_ms"),
            gang=str(p["gang"]) if p.get("gang") else None, gang_size=int(p.get("gang_size", 0)),
        )


#: NodeInfo attributes a NodeTable copies; assigning one marks the tables stale
_TABLED = frozenset({"name", "site", "site_kind", "capacity", "used", "awake",
                     "price_per_hour", "energy_w", "overloaded", "groups"})


@dataclass(slots=True)
class NodeInfo:
    """A place a task can land: a compute node of a site (or the site as one node).

    ``name`` (``site/node``), ``site``, ``site_kind``, ``region``, ``capacity`` and
    ``used`` (resource vectors), ``awake``, ``price_per_hour``, ``energy_w``, ``l2``
    (0–10, CATS), ``overloaded``, ``labels``, ``groups`` (anti-affinity groups present
    → count), ``tasks`` (task ids placed here with priority, for preemption), ``ends`` (task id →
expected end epoch s, from runtime estimates, for reservation/backfill)."""

    name: str
    site: str
    site_kind: SiteKind = SiteKind.COMPUTE_CENTRE
    region: str = ""
    capacity: Resources = field(default_factory=dict)
    used: Resources = field(default_factory=dict)
    awake: bool = True
    price_per_hour: float = 1.0
    energy_w: float = 100.0
    l2: float | None = None
    overloaded: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, tuple[int, Resources]] = field(default_factory=dict)
    ends: dict[str, float] = field(default_factory=dict)
    #: NodeTables (and this node's row in each) kept in step by ``add``/``remove``
    _watch: list[tuple[NodeTable, int]] = field(default_factory=list, repr=False,
                                                 compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _TABLED:  # replaced outright (not via add/remove): tables rebuild
            for tab, _ in getattr(self, "_watch", ()):
                tab.stale = True

    def free(self, res: str) -> float:
        return self.capacity.get(res, 0.0) - self.used.get(res, 0.0)

    def fits(self, req: Resources) -> str | None:
        """None if ``req`` fits, else the first resource short (for the reason)."""
        cap, used = self.capacity, self.used
        for r, v in req.items():
            if v > cap.get(r, 0.0) - used.get(r, 0.0) + 1e-9 and r != "bandwidth":
                return r
        return None

    def load(self) -> float:
        """Mean utilisation over resources with capacity (0–1)."""
        vals = [self.used.get(r, 0.0) / c for r, c in self.capacity.items() if c > 0]
        return sum(vals) / len(vals) if vals else 0.0

    def add(self, task_id: str, prio: int, req: Resources, group: str | None) -> None:
        for r, v in req.items():
            self.used[r] = self.used.get(r, 0.0) + v
        prev = self.tasks.get(task_id)
        if prev is not None:
            merged = {r: prev[1].get(r, 0.0) + req.get(r, 0.0) for r in set(prev[1]) | set(req)}
            self.tasks[task_id] = (prio, merged)
        else:
            self.tasks[task_id] = (prio, dict(req))
        if group:
            self.groups[group] = self.groups.get(group, 0) + 1
        for tab, row in self._watch:
            tab.sync(row, self, req, group)

    def remove(self, task_id: str, req: Resources, group: str | None) -> None:
        """Undo ``add``; a task not on this node is ignored (idempotent)."""
        if task_id not in self.tasks:
            return
        for r, v in req.items():
            self.used[r] = max(0.0, self.used.get(r, 0.0) - v)
        prev = self.tasks.get(task_id)
        if prev is not None:
            left = {r: prev[1].get(r, 0.0) - req.get(r, 0.0) for r in prev[1]}
            if all(v <= 1e-9 for v in left.values()):
                del self.tasks[task_id]
                self.ends.pop(task_id, None)
            else:
                self.tasks[task_id] = (prev[0], left)
        if group and self.groups.get(group, 0) > 0:
            self.groups[group] -= 1
            if not self.groups[group]:
                del self.groups[group]
        for tab, row in self._watch:
            tab.sync(row, self, req, group)


@dataclass(slots=True)
class SiteNet:
    """Network view of a site from a task's origin: ``delay_ms``, ``jitter_ms``,
    ``loss_pct``, ``bandwidth_mbps`` (bottleneck available), ``interconnect``."""

    delay_ms: float
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    bandwidth_mbps: float = float("inf")
    interconnect: str = ""


def empty_graph() -> Topology:
    return Topology.build([])


@dataclass(slots=True)
class Snapshot:
    """Everything one scheduling cycle may read: ``nodes`` (by name), ``now`` (epoch s),
    ``net`` (origin → site → ``SiteNet``; filled lazily by the network plug-ins from
    ``graph``), ``graph`` (the network, ``srv6.paths.graph.network_graph``),
    ``site_kinds``, ``order`` (node visiting order), ``reservations`` (node → (task id,
expected start epoch s) for large jobs; kept by the edge across cycles)."""

    nodes: dict[str, NodeInfo]
    now: float = 0.0
    net: dict[str, dict[str, SiteNet]] = field(default_factory=dict)
    graph: Topology = field(default_factory=empty_graph)
    site_kinds: dict[str, SiteKind] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    reservations: dict[str, tuple[str, float]] = field(default_factory=dict)
    _index: dict[str, list[str]] | None = field(default=None, repr=False)
    _table: NodeTable | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.order:
            self.order = sorted(self.nodes)
        for n in self.nodes.values():
            self.site_kinds.setdefault(n.site, n.site_kind)

    def resource_index(self) -> dict[str, list[str]]:
        """resource → names of nodes with capacity > 0 (visiting order); cached."""
        if self._index is None:
            idx: dict[str, list[str]] = {}
            for name in self.order:
                for r, c in self.nodes[name].capacity.items():
                    if c > 0:
                        idx.setdefault(r, []).append(name)
            self._index = idx
        return self._index

    def table(self) -> NodeTable:
        """The nodes as numpy columns for the vectorised path; built once, then kept
        in step by ``NodeInfo.add``/``remove`` (see ``scheduler.table``)."""
        t = self._table
        if t is None or t.stale or t.order_ref is not self.order or t.size != len(self.nodes):
            from scheduler.table import NodeTable

            if t is not None:
                t.detach()
            t = self._table = NodeTable(self)
        return t

    def totals(self) -> Resources:
        out: Resources = {}
        for n in self.nodes.values():
            for r, v in n.capacity.items():
                out[r] = out.get(r, 0.0) + v
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one task: ``task``, ``code`` (Status code name), ``nodes``
    (one per replica), ``site`` (first replica's), ``reasons``, ``scores`` (top
    candidates: node → weighted total), ``victims`` (preempted task ids),
    ``inputs`` (what the decision read, for the journal — WP-3.3.4), ``released``
    (tasks whose Permit wait this task ended: their success decisions)."""

    task: str
    code: str
    nodes: tuple[str, ...] = ()
    site: str | None = None
    reasons: tuple[str, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()
    victims: tuple[str, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)
    released: tuple[Decision, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == "success"

    def explain(self) -> str:
        head = f"{self.code}"
        if self.site:
            head += f" on {','.join(self.nodes)}"
        if self.reasons:
            head += ": " + "; ".join(self.reasons)
        if self.scores:
            head += " | scores " + ", ".join(f"{n}={s:.1f}" for n, s in self.scores)
        return head


def epoch(dt: datetime) -> float:
    return dt.timestamp()
