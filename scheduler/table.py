"""NodeTable: a snapshot's nodes as numpy columns for the vectorised Filter/Score path.

Rules:
- One row per node: the rows of ``Snapshot.order`` first (in order), then any other
  node. Columns: ``cap[r]`` / ``used[r]`` per resource name (float64), ``awake``,
  ``overloaded``, ``price``, ``energy``, ``cloud`` (site kind is ``cloud``), ``site``
  (site code into ``sites``), ``pair`` ((site, site kind) code into ``pairs``), ``rank`` (position
  of the node name in sorted order: the per-node path breaks score ties by name).
- Built lazily, once per snapshot (``Snapshot.table()``). The node-only columns
  (capacity, awake, price, site …) are read at build time: like the static-score
  cache, they must not change while the snapshot is scheduled.
- ``used`` and the anti-affinity groups change only through ``NodeInfo.add`` /
  ``NodeInfo.remove`` (Reserve/Unreserve, preemption, eviction); those call
  ``sync`` which COPIES the node's values into the row, so the columns always hold
  the very floats the per-node path reads and both paths compute identical scores.
- Assigning a node attribute outright (``node.used = {...}``) sets ``stale``; the
  snapshot then builds a fresh table. In-place edits of a node's dicts are not seen.
- A resource seen for the first time (e.g. ``bandwidth`` added to ``used``) gets a
  zero column; a resource no node has reads as 0 capacity / 0 used.
- ``column(key, fn)``: a plug-in's batch result over EVERY row, kept current — each
  ``sync`` logs its row in ``changed``, and a cached column recomputes only the rows
  logged since it was last read (all rows again past ``size / 8`` of them). Valid only
  for results that are row-wise (a row's value depends on that row and the key, never
  on which other rows were asked): the plug-in's ``batch_key`` promises it. Columns
  take at most ``COLUMN_BYTES`` per table (least recently used dropped first).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from controller.models import SiteKind

if TYPE_CHECKING:
    from scheduler.models import NodeInfo, Snapshot

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


#: memory for cached plug-in columns per table (64 MB = 400 float columns at 20k nodes)
COLUMN_BYTES = 64 << 20


class CachedColumn:
    """One plug-in result over every row: ``values``; ``pos`` (how much of the table's
    ``changed`` log it has absorbed); ``in_range`` (score columns: True = every value
    is within 0–100, None = not checked, False = some is not)."""

    __slots__ = ("in_range", "pos", "static", "used", "values")

    def __init__(self, values: npt.NDArray[Any], pos: int, static: bool = False) -> None:
        self.values, self.pos, self.static = values, pos, static
        self.in_range: bool | None = None
        self.used = 0


class NodeTable:
    """Column view of one snapshot's nodes, kept in step with Reserve/Unreserve."""

    def __init__(self, snap: Snapshot) -> None:
        seen = set(snap.order)
        names = list(snap.order) + sorted(n for n in snap.nodes if n not in seen)
        self.names = names
        self.nodes: list[NodeInfo] = [snap.nodes[n] for n in names]
        self.row = {n: i for i, n in enumerate(names)}
        size = len(names)
        self.size = size
        self.order: I64 = np.arange(len(snap.order), dtype=np.int64)
        self.order_ref = snap.order  # a new order list or node set: the snapshot rebuilds
        ranks = sorted(range(size), key=names.__getitem__)
        self.rank: I64 = np.empty(size, dtype=np.int64)
        self.rank[ranks] = np.arange(size, dtype=np.int64)
        self.sites: list[str] = []
        self.site_code: dict[str, int] = {}
        codes = []
        for node in self.nodes:
            c = self.site_code.get(node.site)
            if c is None:
                c = self.site_code[node.site] = len(self.sites)
                self.sites.append(node.site)
            codes.append(c)
        self.site: I64 = np.array(codes, dtype=np.int64)
        # (site, site kind) pairs: what the network/data plug-ins' scores depend on
        self.pairs: list[tuple[str, SiteKind]] = []
        pair_code: dict[tuple[str, SiteKind], int] = {}
        pcodes = []
        for node in self.nodes:
            key = (node.site, node.site_kind)
            c = pair_code.get(key)
            if c is None:
                c = pair_code[key] = len(self.pairs)
                self.pairs.append(key)
            pcodes.append(c)
        self.pair: I64 = np.array(pcodes, dtype=np.int64)
        self.awake: Bools = np.array([n.awake for n in self.nodes], dtype=np.bool_)
        self.overloaded: Bools = np.array([n.overloaded for n in self.nodes], dtype=np.bool_)
        self.cloud: Bools = np.array([n.site_kind is SiteKind.CLOUD for n in self.nodes],
                                     dtype=np.bool_)
        self.price: F64 = np.array([n.price_per_hour for n in self.nodes], dtype=np.float64)
        self.energy: F64 = np.array([n.energy_w for n in self.nodes], dtype=np.float64)
        self.cap: dict[str, F64] = {}
        self.used: dict[str, F64] = {}
        for i, node in enumerate(self.nodes):
            for r, v in node.capacity.items():
                self._col(self.cap, r)[i] = v
            for r, v in node.used.items():
                self._col(self.used, r)[i] = v
        self._groups: dict[str, Bools] = {}
        self._group_rows: dict[str, set[int]] = {}  # until a group's column exists
        for i, node in enumerate(self.nodes):
            if node.groups:
                for g, c in node.groups.items():
                    if c:
                        self._group_rows.setdefault(g, set()).add(i)
        self._cands: dict[int, tuple[list[str], I64]] = {}
        self.all_rows: I64 = np.arange(size, dtype=np.int64)
        self.changed: list[int] = []  # rows synced, in order (see ``column``)
        self._columns: dict[Hashable, CachedColumn] = {}
        self._tick = 0
        self._snap_nodes = snap.nodes
        self._by_site: dict[str, list[NodeInfo]] | None = None
        self.stale = False
        for i, node in enumerate(self.nodes):
            node._watch.append((self, i))

    def detach(self) -> None:
        """Stop following the nodes (the snapshot replaces this table)."""
        for node in self.nodes:
            node._watch[:] = [w for w in node._watch if w[0] is not self]

    # ----------------------------------------------------------------- columns
    def _col(self, cols: dict[str, F64], r: str) -> F64:
        col = cols.get(r)
        if col is None:
            col = cols[r] = np.zeros(self.size, dtype=np.float64)
        return col

    def cap_of(self, r: str, idx: I64) -> F64:
        col = self.cap.get(r)
        return col[idx] if col is not None else np.zeros(len(idx), dtype=np.float64)

    def used_of(self, r: str, idx: I64) -> F64:
        col = self.used.get(r)
        return col[idx] if col is not None else np.zeros(len(idx), dtype=np.float64)

    def has_group(self, group: str) -> Bools:
        """Bool column: the node holds a member of anti-affinity ``group``."""
        col = self._groups.get(group)
        if col is None:
            col = np.zeros(self.size, dtype=np.bool_)
            col[sorted(self._group_rows.pop(group, ()))] = True
            self._groups[group] = col
        return col

    def rows_of(self, names: list[str]) -> I64:
        """Row numbers of ``names`` (cached per list object, e.g. a PreFilter's
        candidate list from ``Snapshot.resource_index``)."""
        hit = self._cands.get(id(names))
        if hit is not None and hit[0] is names:
            return hit[1]
        rows = np.array([self.row[n] for n in names], dtype=np.int64)
        self._cands[id(names)] = (names, rows)
        return rows

    def site_values(self, idx: I64, fn: Callable[[str, SiteKind], float]) -> F64:
        """``fn(site_name, site_kind)`` once per distinct (site, kind) of ``idx``,
        spread to the rows: for values that depend on the node's site only."""
        codes = self.pair[idx]
        out = np.zeros(len(self.pairs), dtype=np.float64)
        for c in np.unique(codes).tolist():
            out[c] = float(fn(*self.pairs[c]))
        return out[codes]

    def site_mask(self, idx: I64, sites: Iterable[str]) -> Bools:
        """True where the node's site is one of ``sites``."""
        codes = [self.site_code[s] for s in sites if s in self.site_code]
        if not codes:
            return np.zeros(len(idx), dtype=np.bool_)
        return np.isin(self.site[idx], np.array(codes, dtype=np.int64))

    def column(self, key: Hashable, fn: Callable[[I64], npt.NDArray[Any]],
               static: bool = False) -> CachedColumn:
        """``fn(rows)`` over every row, cached under ``key`` and brought up to date
        with the rows changed since (see module rules); ``static``: the values read
        only columns Reserve never changes (never refreshed)."""
        cols, log = self._columns, self.changed
        self._tick += 1
        col = cols.get(key)
        if col is None:
            if len(cols) >= max(16, COLUMN_BYTES // (8 * max(1, self.size))):
                del cols[min(cols, key=lambda k: cols[k].used)]  # least recently used
            col = cols[key] = CachedColumn(np.array(fn(self.all_rows)), len(log), static)
        elif col.pos < len(log) and not col.static:
            if (len(log) - col.pos) * 8 > self.size:
                col.values, col.in_range = np.array(fn(self.all_rows)), None
            else:
                rows = np.array(log[col.pos:], dtype=np.int64)  # repeats are harmless
                fresh = np.asarray(fn(rows))
                col.values[rows] = fresh
                if col.in_range and not bool(((fresh >= 0.0) & (fresh <= 100.0)).all()):
                    col.in_range = False
            col.pos = len(log)
        col.used = self._tick
        return col

    def by_site(self) -> dict[str, list[NodeInfo]]:
        """Site name → its nodes in the snapshot's ``nodes`` order (built once: a
        node's site never changes while the table lives)."""
        if self._by_site is None:
            out: dict[str, list[NodeInfo]] = {}
            for n in self._snap_nodes.values():
                out.setdefault(n.site, []).append(n)
            self._by_site = out
        return self._by_site

    def site_free(self, r: str) -> F64:
        """Free ``r`` (capacity − used) summed per site code (one C pass)."""
        cap = self.cap.get(r)
        if cap is None:
            return np.zeros(len(self.sites), dtype=np.float64)
        used = self.used.get(r)
        free = cap - used if used is not None else cap
        out: F64 = np.bincount(self.site, weights=free, minlength=len(self.sites)).astype(
            np.float64, copy=False)
        return out

    # -------------------------------------------------------------------- sync
    def sync(self, row: int, node: NodeInfo, resources: Iterable[str],
             group: str | None) -> None:
        """Copy ``node``'s used values (and group membership) into ``row``."""
        if self.nodes[row] is not node:  # a copy of a watched node: not ours
            return
        self.changed.append(row)
        for r in resources:
            self._col(self.used, r)[row] = node.used.get(r, 0.0)
        if group is not None:
            present = bool(node.groups.get(group))
            col = self._groups.get(group)
            if col is not None:
                col[row] = present
            elif present:
                self._group_rows.setdefault(group, set()).add(row)
            else:
                self._group_rows.get(group, set()).discard(row)


def _least3(ranks: I64) -> list[int]:
    """Positions of the three smallest (distinct) ranks: three argmin passes."""
    out = []
    for _ in range(3):
        j = int(ranks.argmin())
        out.append(j)
        ranks[j] = np.iinfo(np.int64).max
    return out


def top3(totals: F64, rank: I64, rows: I64) -> list[int]:
    """Positions in ``totals`` of the three highest totals, highest first, ties by
    node name (``rank[rows[i]]``) — as ``heapq.nsmallest(3, (-t, name, i))``, in
    O(n) C passes: a maximum, and a partition only when fewer than three nodes share
    it (many nodes tie in practice: identical free nodes)."""
    n = len(totals)
    if n <= 3:
        pick = np.arange(n)
    else:
        hi = np.flatnonzero(totals == totals.max())
        if len(hi) >= 3:
            pick = hi if len(hi) == 3 else hi[_least3(rank[rows[hi]])]
        else:  # cut = the 3rd highest value: fewer than 3 above it, 3+ at or above
            cut = np.partition(totals, n - 3)[n - 3]
            above = np.flatnonzero(totals > cut)
            at = np.flatnonzero(totals == cut)
            need = 3 - len(above)
            if len(at) > need:
                at = at[np.argpartition(rank[rows[at]], need - 1)[:need]]
            pick = np.concatenate((above, at))
    order = np.lexsort((rank[rows[pick]], -totals[pick]))
    out: list[int] = pick[order].tolist()
    return out


class RowNodes(Sequence["NodeInfo"]):
    """The feasible nodes of the vectorised path, materialised only when read."""

    __slots__ = ("_nodes", "_rows")

    def __init__(self, nodes: list[NodeInfo], rows: I64) -> None:
        self._nodes, self._rows = nodes, rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._nodes[k] for k in self._rows[i].tolist()]
        return self._nodes[int(self._rows[i])]

    def __iter__(self) -> Iterator[NodeInfo]:
        nodes = self._nodes
        return iter([nodes[k] for k in self._rows.tolist()])
