"""The FULL joint-placement model as arrays, and its Lagrangian bound (issue #19).

Rules:
- The full model: every flow × every (site, candidate path) that meets the flow's
  delay bound, allowed sites and the site's whole capacity, plus "unplaced" at the
  flow's penalty. Nothing is pruned here: the solver works on a restricted set of
  these columns, and every bound it reports is a bound of THIS model.
- Columns are (flow f, path q): q indexes the global path table (``path_site``,
  ``paths``, links in CSR ``path_ptr``/``path_link``). Costs are the integers of
  ``placement.Option.cost``, one (flows × paths) matrix per origin group; a flow's
  penalty is 2 × its dearest full-model option + 100 × SCALE.
- Rows: ("site", s, r) = ``s * R + r``; ("link", l) = ``S*R + l``; ("slice", k, l) =
  ``S*R + L + k*L + l`` (bandwidth of flows outside slice k on link l, bounded by
  available − reserve). ``rhs`` holds the right-hand sides.
- ``lagrangian(y)``: for multipliers y ≥ 0 on the rows,
  L(y) = Σ_f min(penalty_f, min_o c_o + y·a_o) − y·b is a lower bound of every plan of
  the full model (and of its LP relaxation). At the LP optimum of a restricted model
  whose columns all price out non-negative it equals the full model's LP bound.
- ``within(y, m, slack)``: the columns whose Lagrangian reduced cost
  δ_o = (c_o + y·a_o) − m_f is ≤ slack. A restricted model holding every column with
  δ ≤ UB − L(y) holds every plan of cost ≤ UB, so its proven bound is the full model's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from controller.models import InterconnectKind, SiteKind, interconnect_preference

if TYPE_CHECKING:
    from scheduler.paths import SitePath
    from scheduler.placement import PFlow, PlacementProblem

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
SCALE = 100  # cost units per objective unit (CP-SAT needs integers)
#: options costing this much or more (objective units) are not offered
MAX_COST = 1e12


@cache
def ic_rank(kind: SiteKind, kinds: frozenset[str]) -> int:
    """GBA-5.2 rank (0 = preferred) of the worst interconnect kind on a path."""
    pref = interconnect_preference(kind)
    return max((pref.index(InterconnectKind(k)) for k in kinds if k), default=0)


@dataclass(slots=True)
class Group:
    """Flows of one origin: ``flows`` (global flow indices), their paths
    ``path0 .. path0 + npaths`` of the global table, ``cost`` and ``ok`` (flows × paths),
    ``tier`` (per path: 0 = its site's best path, 1 = second …)."""

    origin: str
    flows: I64
    path0: int
    npaths: int
    cost: I64
    ok: Bools
    tier: I64


@dataclass(slots=True)
class FullModel:
    flows: list[PFlow]
    index: dict[str, int]
    sites: list[str]
    res: list[str]
    links: list[str]
    slices: list[tuple[str, float]]
    paths: list[SitePath]
    path_site: I64
    path_ptr: I64
    path_link: I64
    dem: F64
    bw: F64
    fslice: I64
    penalty: I64
    cur_q: I64  # the flow's current column (global path index) or -1
    groups: list[Group]
    group_of: I64  # flow → group index
    row_of: I64  # flow → row in its group
    rhs: F64

    @property
    def nrows(self) -> int:
        return len(self.sites) * len(self.res) + len(self.links) * (1 + len(self.slices))

    def costs(self, cf: I64, cq: I64) -> I64:
        """Costs of columns (cf[j], cq[j]), vectorised."""
        out = np.zeros(len(cf), dtype=np.int64)
        gi = self.group_of[cf]
        for g_i in np.unique(gi).tolist():
            g = self.groups[g_i]
            m = gi == g_i
            out[m] = g.cost[self.row_of[cf[m]], cq[m] - g.path0]
        return out

    def cost(self, f: int, q: int) -> int:
        g = self.groups[int(self.group_of[f])]
        return int(g.cost[self.row_of[f], q - g.path0])

    def row_key(self, i: int) -> tuple[str, ...]:
        sr = len(self.sites) * len(self.res)
        if i < sr:
            return ("site", self.sites[i // len(self.res)], self.res[i % len(self.res)])
        i -= sr
        nl = len(self.links)
        if i < nl:
            return ("link", self.links[i])
        k, l_ = divmod(i - nl, nl)
        return ("slice", self.slices[k][0], self.links[l_])


def build(p: PlacementProblem) -> FullModel:
    """Every option of every flow (see module rules); vectorised per origin."""
    w = p.weights
    sites = list(p.sites)
    names = [s.name for s in sites]
    res = sorted({r for s in sites for r in s.capacity})
    cap = np.array([[s.capacity.get(r, 0.0) for r in res] for s in sites]).reshape(
        len(sites), len(res))
    used = np.array([[s.used.get(r, 0.0) for r in res] for s in sites]).reshape(
        len(sites), len(res))
    price = np.array([s.price for s in sites])
    energy = np.array([s.energy_w for s in sites])
    has_cap = cap > 0
    inv_cap = np.where(has_cap, 1.0 / np.where(has_cap, cap, 1.0), 0.0)
    n_cap = np.maximum(has_cap.sum(axis=1), 1)
    u0 = (used * inv_cap).sum(axis=1)
    site_index = {n: i for i, n in enumerate(names)}
    links = list(p.links)
    link_index = {k: i for i, k in enumerate(links)}
    slices = [(s, r) for s, r in p.slices.items() if r > 0]
    slice_index = {s: k for k, (s, _) in enumerate(slices)}
    flows = list(p.flows)
    nf = len(flows)
    index = {f.id: i for i, f in enumerate(flows)}
    dem = np.array([[f.demand.get(r, 0.0) for r in res] for f in flows]).reshape(nf, len(res))
    bw = np.array([max(0.0, f.bandwidth_mbps) for f in flows], dtype=np.float64)
    fslice = np.array([slice_index.get(f.slice, -1) if f.slice else -1 for f in flows],
                      dtype=np.int64)
    penalty = np.full(nf, 100 * SCALE, dtype=np.int64)
    cur_q = np.full(nf, -1, dtype=np.int64)
    group_of = np.zeros(nf, dtype=np.int64)
    row_of = np.zeros(nf, dtype=np.int64)
    by_origin: dict[str, list[int]] = {}
    for i, f in enumerate(flows):
        by_origin.setdefault(f.origin, []).append(i)
    all_paths: list[SitePath] = []
    p_site: list[int] = []
    p_links: list[int] = []
    p_ptr = [0]
    groups: list[Group] = []
    for origin, members in by_origin.items():
        idx: list[int] = []
        dl: list[float] = []
        ic: list[float] = []
        plist: list[SitePath] = []
        for i, st in enumerate(sites):
            for path in p.paths.get((origin, st.name), ()):
                idx.append(i)
                dl.append(path.delay_ms)
                ic.append(ic_rank(st.kind, path.kinds))
                plist.append(path)
        path0 = len(all_paths)
        for path, si in zip(plist, idx, strict=True):
            all_paths.append(path)
            p_site.append(si)
            p_links.extend(link_index.get(k, -1) for k in path.links)
            p_ptr.append(len(p_links))
        fi = np.array(members, dtype=np.int64)
        gf = [flows[i] for i in members]
        sidx = np.array(idx, dtype=np.int64)
        delay = np.array(dl, dtype=np.float64)
        net = w.delay * delay + w.interconnect * np.array(ic, dtype=np.float64)
        gdem = dem[fi]
        unknown = np.array([any(r not in res for r in f.demand) for f in gf])
        size = np.array([sum(f.demand.values()) for f in gf])
        fits = np.all(gdem[:, None, :] <= cap[None, :, :] + 1e-9, axis=2) & ~unknown[:, None]
        with np.errstate(over="ignore", invalid="ignore"):  # absurd inputs: see below
            util = (u0[None, :] + gdem @ inv_cap.T) / n_cap[None, :]
            base = (size[:, None] * (w.price * price + w.energy * energy / 100.0)[None, :]
                    + w.load * util)
            cost = base[:, sidx] + net[None, :]
        # an option whose cost is not a sane finite number (demand or price near the
        # float limit) is never offered: integer costs must not overflow
        sane = np.isfinite(cost) & (np.abs(cost) < MAX_COST)
        cost = np.where(sane, cost, 0.0)
        ok = fits[:, sidx] & sane
        bounds = np.array([f.max_delay_ms if f.max_delay_ms is not None else np.inf
                           for f in gf])
        ok &= delay[None, :] <= bounds[:, None]
        for r, f in enumerate(gf):
            if f.allowed_sites is not None:
                allowed = np.array([st.name in f.allowed_sites for st in sites], dtype=bool)
                ok[r] &= allowed[sidx] if len(sidx) else ok[r]
        has_cur = np.array([f.id in p.current for f in gf], dtype=bool)
        gcur = np.full(len(gf), -1, dtype=np.int64)
        for r, f in enumerate(gf):
            cur = p.current.get(f.id)
            if cur is None:
                continue
            ci = site_index.get(cur[0], -1)
            for j in np.nonzero(ok[r] & (sidx == ci))[0]:
                if plist[j].links == cur[1]:
                    gcur[r] = j
        cost = cost + np.where(has_cur, w.migration, 0.0)[:, None]
        rows = np.nonzero(gcur >= 0)[0]
        cost[rows, gcur[rows]] -= w.migration
        icost = np.rint(cost * SCALE).astype(np.int64).reshape(len(gf), len(plist))
        tiers = [0] * len(idx)
        for t in range(1, len(idx)):
            if idx[t] == idx[t - 1]:
                tiers[t] = tiers[t - 1] + 1
        worst = np.where(ok, icost, 0).max(axis=1) if len(plist) else np.zeros(len(gf))
        penalty[fi] = 2 * np.maximum(worst, 0).astype(np.int64) + 100 * SCALE
        cur_q[fi] = np.where(gcur >= 0, gcur + path0, -1)
        group_of[fi] = len(groups)
        row_of[fi] = np.arange(len(gf))
        groups.append(Group(origin, fi, path0, len(plist), icost, ok.reshape(icost.shape),
                            np.array(tiers, dtype=np.int64)))
    path_link = np.array(p_links, dtype=np.int64)
    if (path_link < 0).any():  # a path over a link with no capacity entry: 0 available
        extra = sorted({k for pa in all_paths for k in pa.links if k not in link_index})
        for key in extra:
            link_index[key] = len(links)
            links.append(key)
        path_link = np.array([link_index[k] for pa in all_paths for k in pa.links],
                             dtype=np.int64)
    rhs = np.zeros(len(names) * len(res) + len(links) * (1 + len(slices)))
    rhs[: len(names) * len(res)] = (cap - used).reshape(-1)
    avail = np.array([p.links.get(k, 0.0) for k in links], dtype=np.float64)
    off = len(names) * len(res)
    rhs[off:off + len(links)] = avail
    for ki, (_, reserve) in enumerate(slices):
        at = off + len(links) * (1 + ki)
        rhs[at:at + len(links)] = avail - reserve
    return FullModel(flows, index, names, res, links, slices, all_paths,
                     np.array(p_site, dtype=np.int64), np.array(p_ptr, dtype=np.int64),
                     path_link, dem, bw, fslice, penalty, cur_q, groups, group_of, row_of,
                     rhs)


def entries(fm: FullModel, cf: I64, cq: I64) -> tuple[I64, I64, F64]:
    """COO (row, column, value) of the capacity rows for columns (cf[j], cq[j])."""
    R = len(fm.res)
    rows: list[I64] = []
    cols: list[I64] = []
    vals: list[F64] = []
    ncol = np.arange(len(cf), dtype=np.int64)
    site = fm.path_site[cq]
    for r in range(R):
        d = fm.dem[cf, r]
        m = d != 0
        rows.append(site[m] * R + r)
        cols.append(ncol[m])
        vals.append(d[m])
    b = fm.bw[cf]
    has = b > 0
    if has.any():
        q, c, bb, fs = cq[has], ncol[has], b[has], fm.fslice[cf[has]]
        counts = fm.path_ptr[q + 1] - fm.path_ptr[q]
        total = int(counts.sum())
        starts = np.repeat(fm.path_ptr[q], counts)
        offs = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        link = fm.path_link[starts + offs]
        col = np.repeat(c, counts)
        val = np.repeat(bb, counts)
        fsl = np.repeat(fs, counts)
        base = len(fm.sites) * R
        nl = len(fm.links)
        rows.append(base + link)
        cols.append(col)
        vals.append(val)
        for k in range(len(fm.slices)):
            m = fsl != k
            rows.append(base + nl * (1 + k) + link[m])
            cols.append(col[m])
            vals.append(val[m])
    return (np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
            np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64),
            np.concatenate(vals) if vals else np.zeros(0))


def _path_duals(fm: FullModel, y: F64) -> tuple[F64, F64]:
    """Per path: Σ over its links of (link + every slice row) multipliers, and per
    slice k the part from slice k's rows (slices × paths)."""
    base = len(fm.sites) * len(fm.res)
    nl = len(fm.links)
    per_link = y[base:base + nl].copy()
    ks = len(fm.slices)
    sl = y[base + nl:].reshape(ks, nl) if ks else np.zeros((0, nl))
    per_link += sl.sum(axis=0)
    counts = np.diff(fm.path_ptr)
    seg = np.repeat(np.arange(len(counts)), counts)
    npaths = len(counts)
    total: F64 = np.bincount(seg, weights=per_link[fm.path_link], minlength=npaths).astype(
        np.float64) if len(seg) else np.zeros(npaths)
    per_slice = np.zeros((ks, npaths))
    for k in range(ks):
        if len(seg):
            per_slice[k] = np.bincount(seg, weights=sl[k][fm.path_link], minlength=npaths)
    return total, per_slice


def adjusted(fm: FullModel, y: F64, g: Group, total: F64, per_slice: F64) -> F64:
    """c_o + y·a_o for the group's flows × paths (inf where the option is not allowed)."""
    R = len(fm.res)
    ysite = y[: len(fm.sites) * R].reshape(len(fm.sites), R)
    sl = slice(g.path0, g.path0 + g.npaths)
    dem = fm.dem[g.flows]
    site_term = (dem @ ysite.T)[:, fm.path_site[sl]]
    bw = fm.bw[g.flows]
    pd = np.broadcast_to(total[sl], (len(g.flows), g.npaths)).copy()
    fs = fm.fslice[g.flows]
    for k in range(per_slice.shape[0]):
        rows = fs == k
        if rows.any():
            pd[rows] -= per_slice[k, sl]
    adj = g.cost + site_term + bw[:, None] * pd
    return np.where(g.ok, adj, np.inf)


def lagrangian(fm: FullModel, y: F64, active: Bools, rhs: F64
               ) -> tuple[float, F64, list[F64]]:
    """(L(y), per-flow minimum m_f, per-group adjusted matrices) over the active flows."""
    y = np.maximum(y, 0.0)
    total, per_slice = _path_duals(fm, y)
    m = fm.penalty.astype(np.float64).copy()
    adjs: list[F64] = []
    for g in fm.groups:
        adj = adjusted(fm, y, g, total, per_slice)
        adjs.append(adj)
        if g.npaths:
            m[g.flows] = np.minimum(m[g.flows], adj.min(axis=1))
    return float(m[active].sum() - y @ rhs), m, adjs


def within(fm: FullModel, adjs: Sequence[F64], m: F64, active: Bools, slack: float
           ) -> tuple[I64, I64]:
    """Columns (f, q) of active flows with δ = adjusted − m_f ≤ slack."""
    fs: list[I64] = []
    qs: list[I64] = []
    for g, adj in zip(fm.groups, adjs, strict=True):
        if not g.npaths:
            continue
        ok = (adj - m[g.flows][:, None] <= slack) & active[g.flows][:, None]
        r, c = np.nonzero(ok)
        fs.append(g.flows[r])
        qs.append(c + g.path0)
    if not fs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(fs), np.concatenate(qs)


def cheapest(fm: FullModel, g: Group, k: int) -> list[list[int]]:
    """Per flow of ``g``: up to ``k`` allowed paths (local indices), the best path of
    each site first (diverse sites), then second paths …; within a tier by cost."""
    if not g.npaths:
        return [[] for _ in g.flows]
    big = np.int64(2**40)
    masked = np.where(g.ok, g.cost + g.tier[None, :] * big, np.iinfo(np.int64).max)
    n = masked.shape[1]
    if n > k:
        top = np.argpartition(masked, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(n), (len(g.flows), n))
    order = np.argsort(np.take_along_axis(masked, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    good = np.take_along_axis(g.ok, top, axis=1)
    return [[j for j, ok in zip(t, o, strict=True) if ok]
            for t, o in zip(top.tolist(), good.tolist(), strict=True)]


def describe(fm: FullModel) -> Mapping[str, Any]:
    """Size of the full model (for status and benches)."""
    n_opts = int(sum(int(g.ok.sum()) for g in fm.groups))
    return {"flows": len(fm.flows), "options": n_opts, "rows": fm.nrows}


#: grid cells per resource for the per-site knapsacks of ``knapsack_bound``
KNAP_GRID = 256


def knapsack_bound(fm: FullModel, y: F64, pi: F64, active: Bools, rhs: F64,
                   upper: float | None = None, deadline: float | None = None) -> float:
    """A bound of the full model at least as strong as the LP's at LP-optimal (π, y):
    the Lagrangian of the assignment rows (π) and the network rows (y ≥ 0) that KEEPS
    each site's capacity rows — one small 0/1 knapsack per site (up to two resources,
    the most binding by their multipliers; demands floored onto a grid of at most
    ``KNAP_GRID`` cells, which only loosens the knapsack, so the bound stays valid):
    L(π) = Σ_f π_f + Σ_f min(0, penalty_f − π_f) − y_net·b_net + Σ_s K_s(π).
    With ``upper`` (a known plan's cost) and ``deadline``, π is then improved by
    subgradient steps (Polyak step towards ``upper``); the best L(π) is returned —
    every one is valid."""
    import time

    R = len(fm.res)
    ns = len(fm.sites)
    nsr = ns * R
    y = np.maximum(y, 0.0)
    ysite = y[:nsr].reshape(ns, R).copy()
    ynet = y.copy()
    ynet[:nsr] = 0.0
    total_d, per_slice = _path_duals(fm, ynet)
    act = np.flatnonzero(active)
    const = float(-(ynet @ rhs))
    # per group: flows × sites of the best network-adjusted cost (π-free part)
    parts: list[tuple[Group, I64, F64]] = []
    for g in fm.groups:
        if not g.npaths:
            continue
        adj = adjusted(fm, ynet, g, total_d, per_slice)
        psite = fm.path_site[g.path0:g.path0 + g.npaths]
        starts = np.flatnonzero(np.r_[True, psite[1:] != psite[:-1]])
        parts.append((g, psite[starts], np.minimum.reduceat(adj, starts, axis=1)))
    dims_of = [[int(r) for r in np.argsort(-ysite[s], kind="stable")[:2]] for s in range(ns)]
    caps_of = [[max(0.0, float(rhs[s * R + r])) for r in dims_of[s]] for s in range(ns)]
    scale_of = [[1.0 if c <= KNAP_GRID else KNAP_GRID / c for c in caps_of[s]]
                for s in range(ns)]
    size_of = [[int(np.floor(c * sc + 1e-9)) + 1 for c, sc in
                zip(caps_of[s], scale_of[s], strict=True)] for s in range(ns)]
    wgrid = [np.floor(fm.dem[:, dims_of[s]] * np.array(scale_of[s]) + 1e-9).astype(np.int64)
             for s in range(ns)]

    def evaluate(pi: F64) -> tuple[float, F64]:
        """L(π) and its subgradient (1 − times each flow is taken)."""
        taken = np.zeros(len(fm.flows))
        out = const + float(pi[act].sum())
        unpl = fm.penalty[act] - pi[act]
        out += float(np.minimum(0.0, unpl).sum())
        taken[act[unpl < 0]] += 1
        items: list[list[tuple[int, float]]] = [[] for _ in range(ns)]
        for g, sites, best in parts:
            val = best - pi[g.flows][:, None]
            val[~active[g.flows]] = np.inf
            rr, cc = np.nonzero(val < 0)
            for r_, c_ in zip(rr.tolist(), cc.tolist(), strict=True):
                items[int(sites[c_])].append((int(g.flows[r_]), float(val[r_, c_])))
        for s in range(ns):
            its = items[s]
            if not its:
                continue
            size = size_of[s]
            table = np.zeros(size)
            keep: list[tuple[int, list[int], Any]] = []
            for f, v in its:
                w = wgrid[s][f].tolist()
                if any(wi >= si for wi, si in zip(w, size, strict=True)):
                    continue  # cannot fit even alone
                if len(w) == 1:
                    a = w[0]
                    cand = table[:size[0] - a] + v
                    took = cand < table[a:]
                    table[a:] = np.where(took, cand, table[a:])
                else:
                    a, b = w
                    cand = table[:size[0] - a, :size[1] - b] + v
                    took = cand < table[a:, b:]
                    table[a:, b:] = np.where(took, cand, table[a:, b:])
                keep.append((f, w, took))
            out += float(table.reshape(-1)[-1])
            at = [si - 1 for si in size]  # walk back: which items the optimum took
            for f, w, took in reversed(keep):
                rel = [x - wi for x, wi in zip(at, w, strict=True)]
                if min(rel) < 0:
                    continue
                if bool(took[tuple(rel)]):
                    taken[f] += 1
                    at = rel
        return out, 1.0 - taken

    lower, grad = evaluate(pi)
    if upper is None or deadline is None:
        return lower
    best = lower
    pi = pi.copy()
    step = 1.0
    for _ in range(60):
        if time.perf_counter() > deadline or upper <= best:
            break
        sg = grad.copy()
        sg[~active] = 0.0
        norm = float(sg @ sg)
        if norm == 0:
            break
        pi = pi + step * (upper - lower) / norm * sg
        lower, grad = evaluate(pi)
        if lower > best:
            best = lower
        else:
            step *= 0.7
    return best
