"""The allocation stage: kube-scheduler style extension points (WP-3.3.1, GBA-6.5f).

Rules:
- A plug-in implements only the extension points it needs, each a Protocol in
  ``scheduler.interface`` (PreFilter, Filter, PostFilter, Score, NormalizeScore,
  Reserve/Unreserve, Permit, Bind); a plug-in with half an interface (``reserve``
  without ``unreserve``) or none at all is refused when the profile is built.
  Expected outcomes are ``Status`` values, never exceptions.
- Every extension point is called guarded: an exception inside a plug-in — at any
  point, PostFilter and Unreserve included — becomes ``Status.error`` naming the
  plug-in and the point; what the task had reserved is given back and its victims
  restored, and the error is the task's decision. Nothing a plug-in raises escapes.
- Scores are 0–100 after NormalizeScore; the framework rejects a score out of range
  (an Error status naming the plug-in), then weights and sums them.
- Like kube-scheduler's ``percentageOfNodesToScore``, filtering stops after enough
  feasible nodes were found (adaptive: 50 % − nodes/125, at least 5 %, at least 100
  nodes), starting where the previous cycle stopped so the whole cluster is visited.
- A PreFilter may narrow the nodes to visit (``state["candidates"]``, like
  kube-scheduler's PreFilterResult); the others are not visited.
- Replicas are placed all-or-nothing: if replica k fails, replicas 0..k-1 are
  unreserved and the task is reported unschedulable.
- Permit runs once per task, after every replica is reserved (kube: once per pod);
  Bind runs per replica after Permit allows. A Permit may answer ``wait``: the
  reservations are held (``waiting``) and the decision's code is ``wait``; when a
  later task's Permit puts ids in ``state["allow"]`` those tasks are bound and their
  success decisions ride on that task's decision (``released``). ``end_pass`` ends
  the wait of whoever is still waiting: all their replicas are unreserved and each
  plug-in with ``wait_over(task, now)`` says why (still waiting / timed out).
- Pure: the ``Snapshot`` is mutated only through Reserve/Unreserve — and by a
  PostFilter that preempts: it removes its victims from their node and records each
  as ``state["preempted"]`` (node, task id, (priority, requests), end); if the task then
  fails (a later replica, Permit, Bind) they are put back and the decision names no
  victims. A task that succeeds or begins a Permit ``wait`` keeps its victims evicted
  (kube-scheduler: preemption is committed on nomination) and every later decision
  about it — bound, still waiting, timed out — names them so the edge requeues them.
- A score plug-in with ``static = True`` depends on the node only; its scores are
  cached per snapshot.
- Vectorised path (``vectorise=True``, the default): when every active Filter plug-in
  has ``filter_batch(state, task, table, rows) -> bool array``, filtering runs over the
  snapshot's ``NodeTable`` columns a chunk of rows at a time, visiting the same nodes
  in the same order and stopping at the same feasible count as the per-node loop.
  Scoring uses ``score_batch(state, task, table, rows) -> float array`` (and
  ``normalize_batch``) where a plug-in has it, the per-node method where not. The
  results are IDENTICAL to the per-node path (same floats, same tie-break by node
  name); when no node is feasible the per-node loop is re-run so PostFilter and the
  "0/N nodes available" summary get every node's own Status.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from scheduler.interface import POINTS, CycleState, points_of
from scheduler.models import Decision, NodeInfo, Snapshot, Task

if TYPE_CHECKING:
    from collections.abc import Hashable

    from scheduler.table import I64, Bools, CachedColumn, NodeTable


class Code(StrEnum):
    SUCCESS = "success"
    UNSCHEDULABLE = "unschedulable"
    UNRESOLVABLE = "unschedulable-and-unresolvable"
    ERROR = "error"
    SKIP = "skip"
    WAIT = "wait"  # Permit: hold the reservation until the plug-in allows (gang)


@dataclass(frozen=True, slots=True)
class Status:
    """An extension point's outcome: ``code``, ``reasons``, ``plugin``."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @staticmethod
    def success() -> Status:
        return _SUCCESS

    @staticmethod
    def unschedulable(*reasons: str, plugin: str = "") -> Status:
        return Status(Code.UNSCHEDULABLE, reasons, plugin)

    @staticmethod
    def unresolvable(*reasons: str, plugin: str = "") -> Status:
        return Status(Code.UNRESOLVABLE, reasons, plugin)

    @staticmethod
    def error(*reasons: str, plugin: str = "") -> Status:
        return Status(Code.ERROR, reasons, plugin)

    @staticmethod
    def skip(plugin: str = "") -> Status:
        st = _SKIPS.get(plugin)  # immutable: one per plug-in (PreFilter skips each task)
        if st is None:
            st = _SKIPS[plugin] = Status(Code.SKIP, (), plugin)
        return st

    @staticmethod
    def wait(*reasons: str, plugin: str = "") -> Status:
        return Status(Code.WAIT, reasons, plugin)


_SUCCESS = Status()
_SKIPS: dict[str, Status] = {}


class PluginFailed(Exception):
    """A plug-in raised inside the cycle; ``status`` is the ``Status.error`` naming it.
    Internal: ``Framework.schedule`` turns it into the task's decision."""

    def __init__(self, status: Status) -> None:
        self.status = status
        super().__init__(str(status.reasons))


def _raised(plugin: str, point: str, exc: BaseException) -> Status:
    return Status.error(f"{point} raised {type(exc).__name__}: {exc}", plugin=plugin)


__all__ = ["Code", "CycleState", "Framework", "Profile", "Registry", "Status"]


class Registry:
    """Plug-in factories by name; duplicate names are refused."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[dict[str, Any]], Any]] = {}

    def register(self, name: str, factory: Callable[[dict[str, Any]], Any]) -> None:
        if name in self._factories:
            raise ValueError(f"scheduler plug-in {name!r} is already registered")
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def build(self, name: str, args: dict[str, Any]) -> Any:
        try:
            factory = self._factories[name]
        except KeyError:
            raise ValueError(
                f"unknown scheduler plug-in {name!r}; known: {', '.join(self.names())}"
            ) from None
        return factory(args)


@dataclass(slots=True)
class Profile:
    """Plug-ins for one queue/tenant (WP-3.3.1 policy configuration layer): ``name``,
    ``plugins`` (in order) and ``weights`` (score plug-in name → weight)."""

    name: str
    plugins: list[Any]
    weights: dict[str, float] = field(default_factory=dict)
    _points: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [p.name for p in self.plugins]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"profile {self.name!r}: plug-in(s) listed twice: {sorted(dup)}")
        self._points = {point: [] for point in POINTS}
        for p in self.plugins:
            for point, proto in POINTS.items():
                if hasattr(p, point) and not isinstance(p, proto):
                    missing = [m for m in dir(proto) if not m.startswith("_")
                               and not hasattr(p, m)]
                    raise ValueError(f"profile {self.name!r}: plug-in {p.name!r} implements "
                                     f"{point} but not {', '.join(missing) or 'its interface'}"
                                     " (scheduler.interface)")
            points = points_of(p)
            if not points and not getattr(p, "inactive", ()):
                raise ValueError(f"profile {self.name!r}: plug-in {p.name!r} implements no "
                                 "extension point (scheduler.interface)")
            for point in points:
                self._points[point].append(p)

    def at(self, point: str) -> list[Any]:
        return self._points[point]


def feasible_target(total: int, percentage: float | None = None) -> int:
    """kube-scheduler's adaptive number of feasible nodes to find."""
    if total < 100:
        return total
    pct = percentage if percentage is not None else max(5.0, 50.0 - total / 125.0)
    return max(100, int(total * pct / 100.0))


class Framework:
    """Runs one profile's allocation stage over a snapshot."""

    def __init__(self, profile: Profile, percentage: float | None = None,
                 vectorise: bool = True) -> None:
        self.profile = profile
        self.percentage = percentage
        self.vectorise = vectorise
        #: row-wise plug-in results cached per table (``batch_key``); off = every
        #: task recomputes its columns (the variant before; benches compare both)
        self.column_cache = True
        self._next = 0
        self._static: dict[str, dict[str, float]] = {}
        self._static_snap: int | None = None
        #: Permit ``wait``: task id → (task, reserved nodes, cycle state, decision)
        self.waiting: dict[str, tuple[Task, list[NodeInfo], CycleState, Decision]] = {}

    # ------------------------------------------------------------------ cycle
    def schedule(self, task: Task, snap: Snapshot) -> Decision:
        """Place every replica of ``task`` (all or nothing) and return the decision."""
        if self._static_snap != id(snap):
            self._static, self._static_snap = {}, id(snap)
        placed: list[NodeInfo] = []
        state: CycleState = {}
        try:
            return self._schedule(task, snap, state, placed)
        except PluginFailed as exc:  # a plug-in raised: give back, restore, report it
            undone = self._undo(state, task, placed)
            self._restore_victims(state)
            return self._fail(task, exc.status if undone.ok else undone)

    def _schedule(self, task: Task, snap: Snapshot, state: CycleState,
                  placed: list[NodeInfo]) -> Decision:
        last = Decision(task.id, Code.SUCCESS.value)
        for _ in range(max(1, task.replicas)):
            d, node = self._one(task, snap, state)
            if node is None:
                undone = self._undo(state, task, placed)
                self._restore_victims(state)
                if not undone.ok:
                    return self._fail(task, undone)
                extra = (f"replica {len(placed) + 1}/{task.replicas}",) if task.replicas > 1 \
                    else ()
                return Decision(task.id, d.code, (), None, d.reasons + extra, d.scores,
                                (), d.inputs)
            placed.append(node)
            last = d
        nodes = tuple(n.name for n in placed)
        wait: Status | None = None
        for p in self.profile.at("permit"):
            st = self._call(p, "permit", state, task, placed[0])
            if st.code is Code.WAIT:
                wait = wait or st
            elif not st.ok:
                undone = self._undo(state, task, placed)
                self._restore_victims(state)
                return self._fail(task, st if undone.ok else undone)
        done = Decision(task.id, Code.SUCCESS.value, nodes, placed[0].site, last.reasons,
                        last.scores, tuple(state.get("victims", ())), last.inputs)
        if wait is not None:
            self.waiting[task.id] = (task, placed, state, done)
            return replace(done, code=Code.WAIT.value,
                           reasons=done.reasons + tuple(f"{wait.plugin}: {x}"
                                                        for x in wait.reasons))
        st = self._bind(state, task, placed)
        if not st.ok:
            self._restore_victims(state)
            return self._fail(task, st)
        released = []
        for tid in state.get("allow", ()):
            held = self.waiting.pop(tid, None)
            if held is None:
                continue
            wt, wnodes, wstate, wdone = held
            wst = self._bind(wstate, wt, wnodes)
            # its victims were evicted when it began to wait: the decision keeps them
            released.append(wdone if wst.ok else replace(self._fail(wt, wst),
                                                         victims=wdone.victims))
        return replace(done, released=tuple(released)) if released else done

    @staticmethod
    def _restore_victims(state: CycleState) -> None:
        """The task failed after PostFilter preempted for it: put the victims back on
        their nodes (only this task's own, already undone, reservations came between)."""
        for node, tid, (prio, req), end in reversed(state.pop("preempted", [])):
            node.add(tid, prio, req, None)
            if end is not None:
                node.ends[tid] = end
        state.pop("victims", None)

    def _bind(self, state: CycleState, task: Task, placed: list[NodeInfo]) -> Status:
        """Bind every replica; on a failure unreserve them all."""
        for node in placed:
            for p in self.profile.at("bind"):
                st = self._call(p, "bind", state, task, node)
                if st.code is Code.SKIP:
                    continue
                if not st.ok:
                    undone = self._undo(state, task, placed)
                    return st if undone.ok else undone
                break
        return _SUCCESS

    def end_pass(self, now: float) -> list[Decision]:
        """End every Permit wait: unreserve the held replicas (all-or-nothing) and
        report each task as still waiting (``wait``) or given up (plug-in's code)."""
        out = []
        for tid, (task, placed, state, _) in list(self.waiting.items()):
            del self.waiting[tid]
            undone = self._undo(state, task, placed)
            verdict = Status.wait("permit wait ended with the pass")
            for p in self.profile.at("permit"):
                if hasattr(p, "wait_over"):
                    try:
                        st = p.wait_over(task, now)
                    except Exception as exc:
                        st = _raised(p.name, "wait_over", exc)
                    if st is not None:
                        verdict = st if st.plugin else Status(st.code, st.reasons, p.name)
                        break
            if not undone.ok:
                verdict = undone
            out.append(Decision(tid, verdict.code.value, reasons=tuple(
                f"{verdict.plugin}: {x}" if verdict.plugin else x for x in verdict.reasons)))
        return out

    def _one(self, task: Task, snap: Snapshot,
             state: CycleState) -> tuple[Decision, NodeInfo | None]:
        prof = self.profile
        for p in prof.at("pre_filter"):
            st = self._call(p, "pre_filter", state, task, snap)
            if st.code is Code.SKIP:
                state.setdefault("skip", set()).add(p.name)
            elif not st.ok:
                return self._fail(task, st), None
        skip: set[str] = state.get("skip", set())
        filters = [p for p in prof.at("filter") if p.name not in skip]
        rows: I64 | None = None
        feasible: Sequence[NodeInfo]
        if self.vectorise and all(hasattr(p, "filter_batch") for p in filters):
            feasible, rows, nfailed = self._find_feasible_batch(state, task, snap, filters)
            failed: dict[str, Status] = {}
            if not feasible:  # every node's own Status, for PostFilter and the summary
                rows = None
                feasible, failed = self._find_feasible(state, task, snap, filters)
                nfailed = len(failed)
        else:
            feasible, failed = self._find_feasible(state, task, snap, filters)
            nfailed = len(failed)
        if not feasible:
            for p in prof.at("post_filter"):
                try:
                    st, nominated = p.post_filter(state, task, snap, failed)
                except Exception as exc:
                    raise PluginFailed(_raised(p.name, "post_filter", exc)) from exc
                if st.code is Code.ERROR:
                    raise PluginFailed(st if st.plugin else Status(st.code, st.reasons,
                                                                   p.name))
                if st.ok and nominated is not None:
                    feasible = [nominated]
                    break
        if not feasible:
            d = self._no_fit(task, failed, len(snap.nodes))
            return replace(d, inputs={**d.inputs, "sites": site_verdicts(
                state, task, snap, filters, (), [], failed)}), None
        if rows is not None and len(rows) == len(feasible):
            best, ranked = self._score_batch(state, task, feasible, snap.table(), rows, skip)
        else:
            best, ranked = self._score(state, task, feasible, skip)
        if isinstance(best, Status):
            return self._fail(task, best), None
        for i, p in enumerate(prof.at("reserve")):
            st = self._call(p, "reserve", state, task, best)
            if not st.ok:
                undone = self._unreserve(state, task, best, prof.at("reserve")[: i + 1])
                return self._fail(task, st if undone.ok else undone), None
        inputs = {"feasible": len(feasible), "filtered_out": nfailed,
                  "profile": prof.name, "requests": task.requests,
                  # {}: the same verdicts whether filtering ran per node or batched
                  "sites": site_verdicts(state, task, snap, filters, feasible, ranked,
                                         {}, best)}
        return Decision(task.id, Code.SUCCESS.value, (best.name,), best.site,
                        tuple(state.get("notes", ())), tuple(ranked[:3]), (), inputs), best

    def _unreserve(self, state: CycleState, task: Task, node: NodeInfo,
                   plugins: Sequence[Any] | None = None) -> Status:
        """Unreserve ``node`` in every Reserve plug-in (in reverse), guarded: one that
        raises does not stop the others; the first error is returned."""
        first = _SUCCESS
        for q in reversed(self.profile.at("reserve") if plugins is None else plugins):
            try:
                q.unreserve(state, task, node)
            except Exception as exc:  # a plug-in bug must not take the scheduler down
                if first.ok:
                    first = _raised(q.name, "unreserve", exc)
        return first

    def _undo(self, state: CycleState, task: Task, placed: Sequence[NodeInfo]) -> Status:
        """Give back every placed replica (last first); the first Unreserve error."""
        first = _SUCCESS
        for n in reversed(placed):
            st = self._unreserve(state, task, n)
            if first.ok and not st.ok:
                first = st
        return first

    def _find_feasible(self, state: CycleState, task: Task, snap: Snapshot,
                       filters: Sequence[Any]) -> tuple[list[NodeInfo], dict[str, Status]]:
        order: list[str] = state.get("candidates") or snap.order
        total = len(order)
        want = feasible_target(len(snap.order), self.percentage)
        feasible: list[NodeInfo] = []
        failed: dict[str, Status] = {}
        start = self._next % total if total else 0
        nodes = snap.nodes
        fns = [(p.filter, p.name) for p in filters]
        visited = 0
        ok = _SUCCESS
        pname = ""
        try:  # one try around the loop: free while nothing raises (the hot path)
            for k in range(total):
                node = nodes[order[(start + k) % total]]
                visited = k + 1
                for fn, pname in fns:
                    st = fn(state, task, node)
                    if st is not ok and st.code is not Code.SUCCESS:
                        failed[node.name] = st if st.plugin else Status(st.code, st.reasons,
                                                                        pname)
                        break
                else:
                    feasible.append(node)
                    if len(feasible) >= want:
                        break
        except Exception as exc:
            raise PluginFailed(_raised(pname, "filter", exc)) from exc
        self._next = start + visited
        return feasible, failed

    def _find_feasible_batch(self, state: CycleState, task: Task, snap: Snapshot,
                             filters: Sequence[Any]) -> tuple[Sequence[NodeInfo], I64, int]:
        """``_find_feasible`` over table columns: same nodes visited in the same order,
        same stop point, same ``_next``. Returns (feasible, their rows, failed count)."""
        import numpy as np

        tab = snap.table()
        cands: list[str] | None = state.get("candidates")
        order = tab.rows_of(cands) if cands else tab.order
        total = len(order)
        want = feasible_target(len(snap.order), self.percentage)
        start = self._next % total if total else 0
        chunk = max(2 * want, 256)
        picked: list[I64] = []
        found = visited = 0
        # Row-wise filters (``batch_key``): one cached column over every node, kept
        # current by the table; the others run on each segment.
        live: list[Any] = []
        cached: list[tuple[Any, Hashable, CachedColumn]] = []
        for p in filters:
            key = self._key(p, "filter_batch", state, task)
            col = self._column(p, "filter_batch", state, task, tab, key)
            if col is None:
                live.append(p)
            else:
                cached.append((p, key, col))
        full: Bools | None = None
        if len(cached) == 1:
            full = cached[0][2].values
        elif cached:  # their AND over every row: a few C passes over bytes, cheaper
            # than caching it (one column per combination of keys — e.g. request shape
            # × anti-affinity group — filled the table's column budget and evicted the
            # columns worth keeping)
            full = cached[0][2].values & cached[1][2].values
            for _, _, c in cached[2:]:
                full &= c.values
        # rows = positions (the snapshot's own order, every filter cached): slice the
        # cached column, no gathers — same segments, same stop point as below
        sliced = full if not live and order is tab.order else None
        while sliced is not None and visited < total and found < want:
            a, b = start + visited, min(start + visited + chunk, start + total)
            if b <= total:
                hits = np.flatnonzero(sliced[a:b]) + a
            elif a >= total:
                hits = np.flatnonzero(sliced[a - total:b - total]) + (a - total)
            else:  # wraps: positions a..total-1, then 0..b-total-1 (no copies)
                hits = np.concatenate((np.flatnonzero(sliced[a:]) + a,
                                       np.flatnonzero(sliced[:b - total])))
            need = want - found
            if len(hits) >= need:
                picked.append(hits[:need])
                last = int(hits[need - 1])
                visited += (last - (a % total)) % total + 1
                found = want
                break
            picked.append(hits)
            found += len(hits)
            visited += b - a
        while sliced is None and visited < total and found < want:
            a, b = start + visited, min(start + visited + chunk, start + total)
            if b <= total:
                seg = order[a:b]
            elif a >= total:
                seg = order[a - total:b - total]
            else:
                seg = np.concatenate((order[a:], order[:b - total]))
            mask = full[seg] if full is not None else np.ones(len(seg), dtype=np.bool_)
            for p in live:
                try:
                    mask &= p.filter_batch(state, task, tab, seg)
                except Exception as exc:
                    raise PluginFailed(_raised(p.name, "filter_batch", exc)) from exc
            hits = np.flatnonzero(mask)
            need = want - found
            if len(hits) >= need:
                picked.append(seg[hits[:need]])
                visited += int(hits[need - 1]) + 1
                found = want
                break
            picked.append(seg[hits])
            found += len(hits)
            visited += len(seg)
        self._next = start + visited
        rows = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
        from scheduler.table import RowNodes

        return RowNodes(tab.nodes, rows), rows, visited - found

    def _score_batch(self, state: CycleState, task: Task, feasible: Sequence[NodeInfo],
                     tab: NodeTable, rows: I64, skip: set[str],
                     ) -> tuple[NodeInfo | Status, list[tuple[str, float]]]:
        """``_score`` over table columns (per-node fallback per plug-in)."""
        import numpy as np

        prof = self.profile
        plan = [(p, w) for p in prof.at("score") if p.name not in skip
                and (w := prof.weights.get(p.name, 1.0)) != 0]
        summed = self._summed(plan, state, task, tab)
        if summed is not None:  # every score row-wise and in range: one cached column
            totals = summed[rows]
            plan = []
        else:
            totals = np.zeros(len(rows), dtype=np.float64)
        for p, w in plan:
            point = "score"
            col = self._column(p, "score_batch", state, task, tab)
            try:
                if col is not None:
                    raw = col.values[rows]
                    if col.in_range is None:
                        v = col.values
                        col.in_range = bool(((v >= 0.0) & (v <= 100.0)).all())
                elif hasattr(p, "score_batch"):
                    raw = np.asarray(p.score_batch(state, task, tab, rows), dtype=np.float64)
                else:
                    raw = np.array(self._raw(p, state, task, feasible), dtype=np.float64)
                if hasattr(p, "normalize"):
                    point = "normalize"
                    if hasattr(p, "normalize_batch"):
                        raw = np.asarray(p.normalize_batch(state, task, raw),
                                         dtype=np.float64)
                    else:
                        scores = {n.name: float(v) for n, v in zip(feasible, raw,
                                                                    strict=True)}
                        p.normalize(state, task, scores)
                        raw = np.array([scores[n.name] for n in feasible], dtype=np.float64)
            except Exception as exc:
                raise PluginFailed(_raised(p.name, point, exc)) from exc
            if point == "score" and col is not None and col.in_range:
                pass  # every node's value is within 0-100: so is this subset
            elif (bad_mask := ~((raw >= 0.0) & (raw <= 100.0))).any():  # NaN fails both
                i = int(np.flatnonzero(bad_mask)[0])
                return Status.error(f"score {float(raw[i])!r} for {feasible[i].name} "
                                    "outside 0-100", plugin=p.name), []
            totals = totals + w * raw
        from scheduler.table import top3

        top = top3(totals, tab.rank, rows)
        ranked = [(feasible[i].name, float(totals[i])) for i in top]
        return feasible[top[0]], ranked

    def _key(self, p: Any, point: str, state: CycleState, task: Task) -> Hashable | None:
        """The plug-in's ``batch_key`` for this task (None: not row-wise, or no
        ``point``)."""
        keyfn = getattr(p, "batch_key", None)
        if keyfn is None or not hasattr(p, point) or not self.column_cache:
            return None
        try:
            key: Hashable | None = keyfn(state, task)
        except Exception as exc:
            raise PluginFailed(_raised(p.name, point, exc)) from exc
        return key

    def _column(self, p: Any, point: str, state: CycleState, task: Task,
                tab: NodeTable, key: Hashable | None = None) -> CachedColumn | None:
        """The plug-in's ``point`` (``filter_batch``/``score_batch``) over every node,
        cached on the table, when the plug-in declares it row-wise for this task
        (``batch_key`` not None); else None."""
        key = key if key is not None else self._key(p, point, state, task)
        if key is None:
            return None
        fn = getattr(p, point)
        try:
            return tab.column((point, p, key), lambda idx: fn(state, task, tab, idx),
                              bool(getattr(p, "table_static", False)))
        except Exception as exc:
            raise PluginFailed(_raised(p.name, point, exc)) from exc

    def _summed(self, plan: Sequence[tuple[Any, float]], state: CycleState, task: Task,
                tab: NodeTable) -> Any:
        """The weighted score total over every node as one cached column, when every
        scoring plug-in is row-wise, does not normalise, and scores every node within
        0–100 (so no subset can fail the range check); else None. Summed in the
        profile's order from 0.0, as the per-task loop does: the very same floats."""
        import numpy as np

        if not plan or any(hasattr(p, "normalize") for p, _ in plan):
            return None
        keys = [self._key(p, "score_batch", state, task) for p, _ in plan]
        if any(k is None for k in keys):
            return None
        cols = []
        for (p, _), k in zip(plan, keys, strict=True):
            col = self._column(p, "score_batch", state, task, tab, k)
            assert col is not None
            if col.in_range is None:
                v = col.values
                col.in_range = bool(((v >= 0.0) & (v <= 100.0)).all())
            if not col.in_range:
                return None
            cols.append(col)

        def total(idx: I64) -> Any:
            t = np.zeros(len(idx), dtype=np.float64)
            for (_, w), c in zip(plan, cols, strict=True):
                t = t + w * c.values[idx]
            return t

        key = ("summed", tuple((p, w, k) for (p, w), k in zip(plan, keys, strict=True)))
        return tab.column(key, total, all(c.static for c in cols)).values

    def _raw(self, p: Any, state: CycleState, task: Task,
             feasible: Sequence[NodeInfo]) -> list[float]:
        fn = p.score
        if getattr(p, "static", False):
            # node-only score (no task input): computed once per node and snapshot
            cache = self._static.setdefault(p.name, {})
            raw = []
            for n in feasible:
                v = cache.get(n.name)
                if v is None:
                    v = cache[n.name] = float(fn(state, task, n))
                raw.append(v)
            return raw
        return [float(fn(state, task, n)) for n in feasible]

    def _score(self, state: CycleState, task: Task, feasible: Sequence[NodeInfo],
               skip: set[str]) -> tuple[NodeInfo | Status, list[tuple[str, float]]]:
        prof = self.profile
        totals = [0.0] * len(feasible)
        for p in prof.at("score"):
            if p.name in skip:
                continue
            w = prof.weights.get(p.name, 1.0)
            if w == 0:
                continue
            point = "score"
            try:
                raw = self._raw(p, state, task, feasible)
                if hasattr(p, "normalize"):
                    point = "normalize"
                    scores = {n.name: v for n, v in zip(feasible, raw, strict=True)}
                    p.normalize(state, task, scores)
                    raw = [scores[n.name] for n in feasible]
            except Exception as exc:
                raise PluginFailed(_raised(p.name, point, exc)) from exc
            total = sum(raw)  # NaN anywhere makes the sum NaN: C-speed checks only
            if total != total or min(raw) < 0.0 or max(raw) > 100.0:
                bad = next(v for v in raw if not 0.0 <= v <= 100.0)
                name = feasible[raw.index(bad)].name
                return Status.error(f"score {bad!r} for {name} outside 0-100",
                                    plugin=p.name), []
            totals = [t + w * v for t, v in zip(totals, raw, strict=True)]
        ranked = heapq.nsmallest(3, ((-t, n.name, i) for i, (t, n) in
                                     enumerate(zip(totals, feasible, strict=True))))
        top = [(name, -neg) for neg, name, _ in ranked]
        return feasible[ranked[0][2]], top

    def _call(self, plugin: Any, point: str, *args: Any) -> Status:
        try:
            st: Status = getattr(plugin, point)(*args)
        except Exception as exc:  # a plug-in bug must not take the scheduler down
            return _raised(plugin.name, point, exc)
        if not st.plugin and st.code is not Code.SUCCESS:  # a success names no one
            st = Status(st.code, st.reasons, plugin.name)
        return st

    @staticmethod
    def _fail(task: Task, st: Status) -> Decision:
        reasons = tuple(f"{st.plugin}: {r}" for r in st.reasons) or (f"{st.plugin}: {st.code}",)
        return Decision(task.id, st.code.value, reasons=reasons)

    @staticmethod
    def _no_fit(task: Task, failed: dict[str, Status], total: int) -> Decision:
        # Summarise like kube-scheduler: "0/N nodes available: 3 Insufficient gpu, ...".
        counts: dict[str, int] = {}
        resolvable = False
        for st in failed.values():
            key = f"{st.plugin}: {'; '.join(st.reasons)}" if st.reasons else st.plugin
            counts[key] = counts.get(key, 0) + 1
            resolvable |= st.code is not Code.UNRESOLVABLE
        code = Code.UNSCHEDULABLE if resolvable or not failed else Code.UNRESOLVABLE
        if not failed:
            code = Code.UNRESOLVABLE
        head = f"0/{total} nodes available"
        parts = [f"{c} {k}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1])[:5]]
        return Decision(task.id, code.value, reasons=(head, *parts))


#: above this many sites a decision records no per-site verdicts (cost per decision)
VERDICT_SITES = 64
#: nodes of a site whose filters are run to say why the site was refused
VERDICT_NODES = 4


def site_verdicts(state: CycleState, task: Task, snap: Snapshot, filters: Sequence[Any],
                  feasible: Sequence[NodeInfo], ranked: Sequence[tuple[str, float]],
                  failed: dict[str, Status],
                  best: NodeInfo | None = None) -> list[dict[str, Any]]:
    """One verdict per site for the stored decision (``scheduler.decisions``): chosen,
    feasible with its score, or the first filter that refused its nodes (constraint
    family + the filter's words). Runs the filters on at most ``VERDICT_NODES`` nodes of
    each site nothing is known about yet; none at all above ``VERDICT_SITES`` sites."""
    from scheduler.decisions import classify

    tab = snap.table()
    if len(tab.sites) > VERDICT_SITES:  # before any per-node work: O(1) per decision
        return []
    by_site = tab.by_site()
    score = dict(ranked)
    net = state.get("net") or {}
    free_of: dict[str, Any] = {}

    def figures(site: str) -> dict[str, float]:
        n = by_site[site][0]
        f = {"price_per_hour": n.price_per_hour, "energy_w": n.energy_w}
        if n.l2 is not None:
            f["l2"] = n.l2
        for r in ("cpu", "memory", "gpu"):
            if r in task.requests or r in n.capacity:
                col = free_of.get(r)
                if col is None:  # per site, summed over the table's columns
                    col = free_of[r] = tab.site_free(r)
                f[f"free_{r}"] = float(col[tab.site_code[site]])
        v = net.get(site)
        if v is not None:
            for k in ("delay_ms", "loss_pct", "bandwidth_mbps"):
                x = float(getattr(v, k))
                if x != float("inf"):
                    f[k] = x
        return f

    ok_sites: dict[str, str] = {}
    for n in feasible:
        ok_sites.setdefault(n.site, n.name)
    out: list[dict[str, Any]] = []
    for site, nodes in sorted(by_site.items()):
        if best is not None and site == best.site:
            out.append({"site": site, "constraint": "chosen", "node": best.name,
                        "score": score.get(best.name), "figures": figures(site)})
            continue
        if site in ok_sites:
            top = max((s for n, s in ranked if n.split("/", 1)[0] == site), default=None)
            out.append({"site": site, "constraint": "score", "node": ok_sites[site],
                        "score": top, "reason": "feasible" if top is not None else
                        "feasible, outside the three best scores",
                        "figures": figures(site)})
            continue
        seen = [(n.name, failed[n.name]) for n in nodes if n.name in failed]
        passed = False
        if not seen:
            for n in nodes[:VERDICT_NODES]:
                for p in filters:
                    try:
                        st = p.filter(state, task, n)
                    except Exception as exc:  # reported, never raised from here
                        st = Status(Code.ERROR, (f"filter raised {exc!r}",), p.name)
                    if not st.ok:
                        seen.append((n.name, st if st.plugin else
                                     Status(st.code, st.reasons, p.name)))
                        break
                else:
                    passed = True  # feasible: the cycle did not reach it
                    break
        if passed or not seen:
            out.append({"site": site, "constraint": "not-evaluated",
                        "reason": "filters pass here; the cycle stopped before this site "
                                  "(percentage of nodes to score)",
                        "figures": figures(site)})
            continue
        name, st = seen[0]
        why = "; ".join(st.reasons) or st.code.value
        out.append({"site": site, "constraint": classify(st.plugin, why), "node": name,
                    "reason": f"{st.plugin}: {why}" if st.plugin else why,
                    "figures": figures(site)})
    return out
