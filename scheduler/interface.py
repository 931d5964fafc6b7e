"""Scheduling plug-in interfaces: one small Protocol per extension point (WP-3.3.1).

Rules (kube-scheduler's ``framework/interface.go`` is the model):
- A plug-in is any object with a ``name`` that implements one or more of these
  Protocols; it implements only the points it needs. ``Framework`` finds a plug-in's
  points by these Protocols (``points_of``) and calls each one through its guarded
  call, so an exception inside a plug-in becomes ``Status.error`` naming it — at every
  point, PostFilter and Unreserve included — and never escapes the scheduler.
- Expected outcomes are ``Status`` values (success, unschedulable, unresolvable,
  error, skip, wait), never exceptions.
- Scores are 0–100 after NormalizeScore; the framework rejects anything else.
- Unreserve must be idempotent (it runs for every Reserve plug-in on the way back, also
  for the one whose Reserve failed).
- ``inactive``: points a plug-in's configuration turns into no-ops (not called).
- The ``*_batch`` variants are optional speed-ups over the snapshot's ``NodeTable``
  columns; the per-node method stays the reference and must give the same result.
- ``batch_key(state, task) -> Hashable | None`` (optional, with a ``*_batch`` method):
  "my batch result is row-wise — a node's value depends only on that node's table
  row and this key". The framework then keeps one column over every node per key,
  refreshed only on the rows Reserve/Unreserve changed (``NodeTable.column``).
  Return None when the result reads anything else (cycle state, other nodes).
  ``table_static = True`` adds: the result reads only columns Reserve never changes
  (awake, overloaded, site kind), so the cached column is never refreshed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from scheduler.framework import Status
    from scheduler.models import NodeInfo, Snapshot, Task
    from scheduler.table import F64, I64, Bools, NodeTable

#: Per scheduling cycle scratch space shared by the plug-ins of one task.
CycleState = dict[str, Any]


@runtime_checkable
class Plugin(Protocol):
    """Every plug-in: a unique ``name`` (the config refers to it)."""

    name: str


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    """Once per task before Filter: may narrow ``state["candidates"]``, answer ``skip``
    (its Filter is not run for this task) or refuse the task outright."""

    def pre_filter(self, state: CycleState, task: Task, snap: Snapshot) -> Status: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    """Per node: can the task run there?"""

    def filter(self, state: CycleState, task: Task, node: NodeInfo) -> Status: ...


@runtime_checkable
class BatchFilterPlugin(FilterPlugin, Protocol):
    """Filter over table rows: True where the node passes."""

    def filter_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64
                     ) -> Bools: ...


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    """When no node passed Filter (``failed``: node → its Status): may make room
    (preemption, reservation) and nominate a node."""

    def post_filter(self, state: CycleState, task: Task, snap: Snapshot,
                    failed: dict[str, Status]) -> tuple[Status, NodeInfo | None]: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    """Per feasible node: a raw score (0–100 unless the plug-in normalises)."""

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float: ...


@runtime_checkable
class BatchScorePlugin(ScorePlugin, Protocol):
    def score_batch(self, state: CycleState, task: Task, tab: NodeTable, idx: I64
                    ) -> F64: ...


@runtime_checkable
class NormalizeScorePlugin(ScorePlugin, Protocol):
    """Rewrites its own raw scores (node name → score) in place onto 0–100."""

    def normalize(self, state: CycleState, task: Task, scores: dict[str, float]) -> None: ...


@runtime_checkable
class BatchNormalizeScorePlugin(NormalizeScorePlugin, Protocol):
    def normalize_batch(self, state: CycleState, task: Task, raw: F64) -> F64: ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    """Claim the chosen node's resources; ``unreserve`` gives them back (idempotent)."""

    def reserve(self, state: CycleState, task: Task, node: NodeInfo) -> Status: ...

    def unreserve(self, state: CycleState, task: Task, node: NodeInfo) -> None: ...


@runtime_checkable
class PermitPlugin(Plugin, Protocol):
    """Once per task after every replica is reserved: allow, refuse or ``wait``."""

    def permit(self, state: CycleState, task: Task, node: NodeInfo) -> Status: ...


@runtime_checkable
class WaitingPermitPlugin(PermitPlugin, Protocol):
    """A Permit that can hold tasks: at the end of the pass, why a waiting task stops
    waiting (None: not this plug-in's task)."""

    def wait_over(self, task: Task, now: float) -> Status | None: ...


@runtime_checkable
class BindPlugin(Plugin, Protocol):
    """Bind one replica to its node; ``skip`` passes to the next Bind plug-in."""

    def bind(self, state: CycleState, task: Task, node: NodeInfo) -> Status: ...


#: extension point → the Protocol a plug-in implements for it
POINTS: dict[str, type] = {
    "pre_filter": PreFilterPlugin,
    "filter": FilterPlugin,
    "post_filter": PostFilterPlugin,
    "score": ScorePlugin,
    "normalize": NormalizeScorePlugin,
    "reserve": ReservePlugin,
    "permit": PermitPlugin,
    "bind": BindPlugin,
}


def points_of(plugin: object) -> list[str]:
    """The extension points ``plugin`` implements (minus its ``inactive`` ones)."""
    inactive = getattr(plugin, "inactive", ())
    return [point for point, proto in POINTS.items()
            if isinstance(plugin, proto) and point not in inactive]
