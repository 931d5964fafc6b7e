"""Joint compute + network placement with OR-Tools CP-SAT (WP-3.3, GBA-6.5f-8, GBA-5.2).

Rules:
- Pure: a ``PlacementProblem`` in, a ``PlacementPlan`` out. Each flow (or service
  instance, or job) gets one site *and* one of the k candidate paths from its origin
  to that site — or is left unplaced (a large penalty), so a plan always exists.
- Hard constraints: per-site, per-resource capacity; per-link available bandwidth;
  per-flow delay bound (options over it are never generated); slice guarantees (on
  every link, flows outside slice S leave ``S.reserve_mbps`` free); ``allowed_sites``.
- Objective (integer, lower is better): weighted delay, price, energy, load balance
  (site utilisation after placement), GBA-5.2 interconnect rank, plus a migration
  cost for every existing flow moved off its current (site, path).
- Sticky flows (``AffinityMode.sticky``) whose current option is still feasible are
  fixed. ``replan`` is incremental: flows whose input is unchanged keep their
  assignment when still feasible, so re-planning unchanged input moves nothing.
- Greedy answers instantly and is the CP-SAT hint; CP-SAT (``workers`` threads,
  ``time_limit_s``) improves it and reports objective, proven bound and gap. A
  CP-SAT failure or timeout without a better solution returns the greedy plan.
- Options per flow are pruned to the ``max_options`` cheapest (the current option is
  always kept); the bound reported is the bound of that pruned model.
- ``mode``: ``"lp-guided"`` (default) fixes the flows the LP relaxation makes integral
  on models above ``SMALL_MODEL_VARS`` option variables and gives CP-SAT the rest;
  while the gap to the whole model's bound is above ``gap_limit`` and budget remains,
  CP-SAT then runs on the whole model, hinted with the best plan so far. ``"exact"``
  gives CP-SAT the whole model from the start. The bound is always of the whole model
  (LP bound or CP-SAT bound of the whole model); ``status`` starts with ``optimal``
  only when the objective equals that bound, else ``feasible, gap …``.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import NamedTuple

from controller.models import InterconnectKind, SiteKind, interconnect_preference
from scheduler.models import Resources
from scheduler.paths import SitePath

_new = tuple.__new__
SCALE = 100  # cost units per objective unit (CP-SAT needs integers)


@dataclass(frozen=True, slots=True)
class PSite:
    """A site: ``name``, ``kind``, ``capacity``/``used`` (resources), ``price`` (per
    resource-unit hour), ``energy_w`` (W per resource unit)."""

    name: str
    capacity: Resources
    used: Resources = field(default_factory=dict)
    kind: SiteKind = SiteKind.COMPUTE_CENTRE
    price: float = 1.0
    energy_w: float = 10.0


@dataclass(frozen=True, slots=True)
class PFlow:
    """A flow/service/job to place: ``id``, ``origin``, ``demand`` (resources),
    ``bandwidth_mbps``, ``max_delay_ms``, ``slice``, ``allowed_sites``, ``sticky``."""

    id: str
    origin: str
    demand: Resources
    bandwidth_mbps: float = 0.0
    max_delay_ms: float | None = None
    slice: str | None = None
    allowed_sites: tuple[str, ...] | None = None
    sticky: bool = False


@dataclass(frozen=True, slots=True)
class PlacementWeights:
    delay: float = 1.0
    price: float = 1.0
    energy: float = 0.1
    load: float = 20.0
    interconnect: float = 5.0
    migration: float = 50.0


@dataclass(slots=True)
class PlacementProblem:
    """``sites``, ``flows``, ``paths`` ((origin, site) → candidates), ``links``
    (key → available Mbit/s), ``slices`` (name → reserved Mbit/s per link), ``current``
    (flow → (site, path links)), ``weights``, ``max_options``."""

    sites: Sequence[PSite]
    flows: Sequence[PFlow]
    paths: Mapping[tuple[str, str], Sequence[SitePath]]
    links: Mapping[str, float]
    slices: Mapping[str, float] = field(default_factory=dict)
    current: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    weights: PlacementWeights = field(default_factory=PlacementWeights)
    max_options: int = 24


class Option(NamedTuple):
    """One (site, path) choice of a flow and its integer cost (a tuple: built by the
    ten thousand, so cheap to create)."""

    site: str
    path: SitePath
    cost: int


@dataclass(slots=True)
class PlacementPlan:
    """``assign`` (flow → (site, path links) or None = unplaced), ``objective``,
    ``bound``, ``gap`` (relative), ``solver``, ``status``, ``greedy_objective``,
    ``greedy_s``, ``solve_s``, ``moved`` (flows moved from their current option)."""

    assign: dict[str, tuple[str, tuple[str, ...]] | None]
    objective: float
    bound: float
    gap: float
    solver: str
    status: str
    greedy_objective: float = 0.0
    greedy_s: float = 0.0
    solve_s: float = 0.0
    moved: list[str] = field(default_factory=list)

    @property
    def unplaced(self) -> list[str]:
        return sorted(f for f, a in self.assign.items() if a is None)


@cache
def _ic_rank(kind: SiteKind, kinds: frozenset[str]) -> int:
    """GBA-5.2 rank (0 = preferred) of the worst interconnect kind on a path."""
    pref = interconnect_preference(kind)
    return max((pref.index(InterconnectKind(k)) for k in kinds if k), default=0)


def build_options(p: PlacementProblem, fixed: set[str] | None = None
                  ) -> tuple[dict[str, list[Option]], dict[str, int]]:
    """See ``_build_options``; the cyclic GC is paused meanwhile (tens of thousands of
    acyclic tuples would otherwise trigger repeated generation-0/1 scans)."""
    was = gc.isenabled()
    gc.disable()
    try:
        return _build_options(p, fixed)
    finally:
        if was:
            gc.enable()


def _build_options(p: PlacementProblem, fixed: set[str] | None = None
                   ) -> tuple[dict[str, list[Option]], dict[str, int]]:
    """Cheapest options per flow and the unplaced penalty per flow.

    Vectorised with numpy: flows are grouped by origin; per origin the (site, path)
    table is built once and the group's costs are one (flows x options) matrix."""
    import numpy as np

    w = p.weights
    sites = list(p.sites)
    res_names = sorted({r for s in sites for r in s.capacity})
    cap = np.array([[s.capacity.get(r, 0.0) for r in res_names] for s in sites])
    used = np.array([[s.used.get(r, 0.0) for r in res_names] for s in sites])
    price = np.array([s.price for s in sites])
    energy = np.array([s.energy_w for s in sites])
    has_cap = cap > 0
    inv_cap = np.where(has_cap, 1.0 / np.where(has_cap, cap, 1.0), 0.0)  # S x R
    n_cap = np.maximum(has_cap.sum(axis=1), 1)
    u0 = (used * inv_cap).sum(axis=1)  # S
    site_index = {s.name: i for i, s in enumerate(sites)}
    names = [s.name for s in sites]
    groups: dict[str, list[PFlow]] = {}
    for f in p.flows:
        groups.setdefault(f.origin, []).append(f)
    options: dict[str, list[Option]] = {}
    penalty: dict[str, int] = {}
    k = p.max_options
    for origin, flows in groups.items():
        idx: list[int] = []
        dl: list[float] = []
        ic: list[float] = []
        plist: list[SitePath] = []
        for i, st in enumerate(sites):
            for path in p.paths.get((origin, st.name), ()):
                idx.append(i)
                dl.append(path.delay_ms)
                ic.append(_ic_rank(st.kind, path.kinds))
                plist.append(path)
        if not plist:
            for f in flows:
                options[f.id], penalty[f.id] = [], 100 * SCALE
            continue
        sidx = np.array(idx, dtype=np.int64)
        delay = np.array(dl)
        net = w.delay * delay + w.interconnect * np.array(ic)  # P
        dem = np.array([[f.demand.get(r, 0.0) for r in res_names] for f in flows])  # F x R
        unknown = np.array([any(r not in res_names for r in f.demand) for f in flows])
        size = np.array([sum(f.demand.values()) for f in flows])  # F
        fits = np.all(dem[:, None, :] <= cap[None, :, :] + 1e-9, axis=2)  # F x S
        fits &= ~unknown[:, None]
        util = (u0[None, :] + dem @ inv_cap.T) / n_cap[None, :]  # F x S
        base = (size[:, None] * (w.price * price + w.energy * energy / 100.0)[None, :]
                + w.load * util)
        cost = base[:, sidx] + net[None, :]  # F x P
        ok = fits[:, sidx]
        bounds = np.array([f.max_delay_ms if f.max_delay_ms is not None else np.inf
                           for f in flows])
        ok &= delay[None, :] <= bounds[:, None]
        for fi, f in enumerate(flows):
            if f.allowed_sites is not None:
                allowed = np.array([st.name in f.allowed_sites for st in sites])
                ok[fi] &= allowed[sidx]
        cur_i = np.full(len(flows), -1)
        has_cur = np.array([f.id in p.current for f in flows])
        for fi, f in enumerate(flows):
            cur = p.current.get(f.id)
            if cur is None:
                continue
            ci = site_index.get(cur[0], -1)
            for j in np.nonzero(ok[fi] & (sidx == ci))[0]:
                if plist[j].links == cur[1]:
                    cur_i[fi] = j
        cost = cost + np.where(has_cur, w.migration, 0.0)[:, None]
        rows = np.nonzero(cur_i >= 0)[0]
        cost[rows, cur_i[rows]] -= w.migration
        icost = np.rint(cost * SCALE).astype(np.int64)
        # Selection key: the best path of each site first (diverse sites), then the
        # sites' second paths, and so on; within a tier by cost.
        tiers = [0] * len(idx)
        for t in range(1, len(idx)):
            if idx[t] == idx[t - 1]:
                tiers[t] = tiers[t - 1] + 1
        tier = np.array(tiers, dtype=np.int64)
        big = np.int64(2**40)
        masked = np.where(ok, icost + tier[None, :] * big, np.iinfo(np.int64).max)
        n_opt = masked.shape[1]
        if n_opt > k:
            top = np.argpartition(masked, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(n_opt), (len(flows), n_opt))
        top_cost = np.take_along_axis(masked, top, axis=1)
        order = np.argsort(top_cost, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_l = top.tolist()
        ok_l = np.take_along_axis(ok, top, axis=1).tolist()
        cost_l = icost.tolist()
        cur_l = cur_i.tolist()
        site_of = [names[i] for i in idx]
        for fi, f in enumerate(flows):
            js = [j for j, good in zip(top_l[fi], ok_l[fi], strict=True) if good]
            c = cur_l[fi]
            if c >= 0 and c not in js:
                js.append(c)
            if fixed is not None and f.id in fixed and c >= 0:
                js = [c]
            row = cost_l[fi]
            # tuple.__new__ skips the NamedTuple's Python-level __new__ (24k per plan)
            keep = [_new(Option, (site_of[j], plist[j], row[j])) for j in js]
            options[f.id] = keep
            worst = max((row[j] for j in js), default=0)
            penalty[f.id] = 2 * worst + 100 * SCALE
    return options, penalty


class _Usage:
    """Residual capacities for greedy and for plan checking."""

    def __init__(self, p: PlacementProblem) -> None:
        self.site_free = {s.name: {r: c - s.used.get(r, 0.0) for r, c in s.capacity.items()}
                          for s in p.sites}
        self.link_free = dict(p.links)
        self.slices = dict(p.slices)
        self.slice_use: dict[str, dict[str, float]] = {s: {} for s in p.slices}

    def fits(self, f: PFlow, o: Option) -> bool:
        free = self.site_free[o.site]
        if any(v > free.get(r, 0.0) + 1e-9 for r, v in f.demand.items()):
            return False
        b = f.bandwidth_mbps
        if b <= 0:
            return True
        for ln in o.path.links:
            left = self.link_free.get(ln, 0.0)
            if b > left + 1e-9:
                return False
            for s, reserve in self.slices.items():
                if s == f.slice:
                    continue
                # flows outside slice s may not eat into s's guarantee (unused part)
                unused = max(0.0, reserve - self.slice_use[s].get(ln, 0.0))
                if b > left - unused + 1e-9:
                    return False
        return True

    def take(self, f: PFlow, o: Option) -> None:
        free = self.site_free[o.site]
        for r, v in f.demand.items():
            free[r] = free.get(r, 0.0) - v
        for ln in o.path.links:
            self.link_free[ln] = self.link_free.get(ln, 0.0) - f.bandwidth_mbps
            if f.slice in self.slice_use:
                u = self.slice_use[f.slice]
                u[ln] = u.get(ln, 0.0) + f.bandwidth_mbps


Built = tuple[dict[str, list[Option]], dict[str, int]]


def greedy(p: PlacementProblem, fixed: set[str] | None = None, built: Built | None = None
           ) -> tuple[dict[str, Option | None], int]:
    options, penalty = built if built is not None else build_options(p, fixed)
    use = _Usage(p)
    out: dict[str, Option | None] = {}
    by_id = {f.id: f for f in p.flows}
    cur_first = [f for f in p.flows if f.id in p.current]
    def regret(f: PFlow) -> tuple[int, float, str]:
        # Serve first the flows that lose most if their best option is taken.
        o = options[f.id]
        if len(o) < 2:
            return (0, -float("inf"), f.id)
        # delay-bound flows with few options first, then by regret per unit of demand
        return (0 if len(o) < p.max_options // 2 else 1,
                -(o[1].cost - o[0].cost) / max(1e-9, sum(f.demand.values())), f.id)

    rest = sorted((f for f in p.flows if f.id not in p.current), key=regret)
    for f in cur_first:  # keep current assignments first: migration-free start
        cur = p.current[f.id]
        o = next((o for o in options[f.id] if (o.site, o.path.links) == cur), None)
        if o is not None and use.fits(f, o):
            use.take(f, o)
            out[f.id] = o
    for f in [x for x in cur_first if x.id not in out] + rest:
        choice = next((o for o in options[f.id] if use.fits(f, o)), None)
        if choice is not None:
            use.take(f, choice)
        out[f.id] = choice
    obj = sum(o.cost if o is not None else penalty[fid] for fid, o in out.items())
    assert set(out) == set(by_id)
    return out, obj


def _to_plan(p: PlacementProblem, chosen: Mapping[str, Option | None], obj: int, bound: int,
             solver: str, status: str) -> PlacementPlan:
    assign = {fid: (o.site, o.path.links) if o is not None else None
              for fid, o in chosen.items()}
    moved = sorted(f for f, cur in p.current.items() if f in assign and assign[f] != cur)
    gap = (obj - bound) / max(1, abs(obj)) if obj else 0.0
    return PlacementPlan(assign, obj / SCALE, bound / SCALE, max(0.0, gap), solver, status,
                         moved=moved)


def solve(p: PlacementProblem, *, time_limit_s: float = 10.0, workers: int = 2,
          gap_limit: float = 0.005, fixed: set[str] | None = None,
          use_cpsat: bool = True, mode: str = "lp-guided") -> PlacementPlan:
    """Greedy, then CP-SAT from the greedy hint (see module rules)."""
    if mode not in ("lp-guided", "exact"):
        raise ValueError(f"placement mode {mode!r}: use 'lp-guided' or 'exact'")
    t0 = time.perf_counter()
    options, penalty = build_options(p, fixed)
    g_choice, g_obj = greedy(p, fixed, (options, penalty))
    t_greedy = time.perf_counter() - t0
    trivial_bound = sum(min((o.cost for o in options[f.id]), default=penalty[f.id])
                        for f in p.flows)
    plan = _to_plan(p, g_choice, g_obj, trivial_bound, "greedy", "feasible")
    plan.greedy_objective, plan.greedy_s = g_obj / SCALE, t_greedy
    if not use_cpsat or not p.flows:
        return plan
    t1 = time.perf_counter()
    try:
        better = _lp_guided(p, options, penalty, g_choice, fixed, time_limit_s, workers,
                            gap_limit, mode == "exact")
    except Exception as exc:  # never no plan: fall back to greedy
        plan.status = f"cp-sat failed ({type(exc).__name__}: {exc}); greedy plan"
        plan.solve_s = time.perf_counter() - t1
        return plan
    solve_s = time.perf_counter() - t1
    if better is None:
        plan.status = "cp-sat found nothing in time; greedy plan"
        plan.solve_s = solve_s
        return plan
    choice, obj, bound, status = better
    bound = max(bound, trivial_bound)  # both are valid lower bounds
    if obj > g_obj:
        choice, obj = g_choice, g_obj
        status += "; greedy kept: better"
    # What was proven, of the whole model: optimal only when nothing lies below.
    proven = ("optimal" if obj <= bound else
              f"feasible, gap {(obj - bound) / max(1, abs(obj)):.2%} to the whole model's bound")
    status = f"{proven}; CP-SAT: {status}"
    out = _to_plan(p, choice, obj, bound, "cp-sat", status)
    out.greedy_objective, out.greedy_s, out.solve_s = g_obj / SCALE, t_greedy, solve_s
    return out


def _lp_guided(p: PlacementProblem, options: dict[str, list[Option]],
               penalty: dict[str, int], hint: Mapping[str, Option | None],
               fixed: set[str] | None, time_limit_s: float, workers: int, gap_limit: float,
               exact: bool = False
               ) -> tuple[dict[str, Option | None], int, int, str] | None:
    """Fixed flows (incremental re-plan, sticky) are decided first and charged to the
    capacities. A small model goes to CP-SAT whole (its bound is then exact); a large
    one is LP-guided (see ``scheduler.solver``)."""
    from scheduler.solver import base_rhs, cpsat_exact, lp_bound, option_rows

    t0 = time.perf_counter()
    rhs = base_rhs(p)
    decided: dict[str, Option | None] = {}

    def charge(f: PFlow, o: Option) -> None:
        decided[f.id] = o
        for key, coef in option_rows(f, o, p.slices):
            rhs[key] = rhs.get(key, 0.0) - coef

    for f in p.flows:
        if fixed is not None and f.id in fixed and len(options[f.id]) == 1:
            charge(f, options[f.id][0])
    rest = [f for f in p.flows if f.id not in decided]
    n_vars = sum(len(options[f.id]) for f in rest)
    note = f"CP-SAT on all {len(rest)} free flows"
    lp_val: float | None = None
    whole_rhs = dict(rhs)
    if n_vars > SMALL_MODEL_VARS and not exact:
        lp_val, integral = lp_bound(p, rest, options, penalty, rhs)
        for f in rest:
            i = integral[f.id]
            if i is not None:
                charge(f, options[f.id][i])
        note = (f"CP-SAT on the {len(p.flows) - len(decided)} LP-fractional flows, "
                f"{len(rest) - (len(p.flows) - len(decided))} LP-integral kept")
    free = [f for f in p.flows if f.id not in decided]
    fixed_cost = sum(o.cost for o in decided.values() if o is not None)
    left = time_limit_s - (time.perf_counter() - t0)
    got = cpsat_exact(p, free, options, penalty, rhs, hint, left, workers, gap_limit)
    if got is None:
        return None
    choice, obj, bound, status = got
    choice.update(decided)
    forced = sum(o.cost for f, o in decided.items()
                 if o is not None and fixed is not None and f in fixed)
    # With LP fixing, CP-SAT's bound holds only for the LP-restricted model; the LP
    # bound (plus the cost of flows fixed by the problem itself) is the valid one.
    bound = math.ceil(lp_val - 1e-6) + forced if lp_val is not None else bound + fixed_cost
    obj += fixed_cost
    status = f"{status} on the restricted model ({note})" if lp_val is not None else \
        f"{status} ({note})"
    left = time_limit_s - (time.perf_counter() - t0)
    if lp_val is not None and obj - bound > gap_limit * max(1, abs(obj)) and left > 0.2:
        # Gap above target and budget left: the whole model, hinted with the best plan.
        whole = cpsat_exact(p, rest, options, penalty, whole_rhs, choice, left, workers,
                            gap_limit)
        if whole is not None:
            w_choice, w_obj, w_bound, w_status = whole
            bound = max(bound, w_bound + forced)
            status += f"; then {w_status} on all {len(rest)} free flows"
            if w_obj + forced < obj:
                w_choice.update({f: o for f, o in decided.items()
                                 if fixed is not None and f in fixed})
                choice, obj = w_choice, w_obj + forced
    return choice, obj, bound, status


#: Models up to this many option variables are solved by CP-SAT whole.
SMALL_MODEL_VARS = 5000


def replan(p: PlacementProblem, previous_inputs: Mapping[str, PFlow] | None = None, *,
           full: bool = False, **kw: float | int | bool) -> PlacementPlan:
    """Incremental re-plan: flows with unchanged input (same ``PFlow`` as before) and a
    current assignment are fixed unless ``full``; sticky flows are always fixed."""
    fixed: set[str] = set()
    for f in p.flows:
        if f.id not in p.current:
            continue
        unchanged = previous_inputs is not None and previous_inputs.get(f.id) == f
        if f.sticky or (unchanged and not full):
            fixed.add(f.id)
    return solve(p, fixed=fixed, **kw)  # type: ignore[arg-type]


def check_plan(p: PlacementProblem, plan: PlacementPlan) -> list[str]:
    """Violations of the hard constraints (empty = valid); used by tests and benches."""
    errs: list[str] = []
    flows = {f.id: f for f in p.flows}
    site_free = {s.name: {r: c - s.used.get(r, 0.0) for r, c in s.capacity.items()}
                 for s in p.sites}
    link_use: dict[str, float] = {}
    slice_other: dict[tuple[str, str], float] = {}
    for fid, a in plan.assign.items():
        if a is None:
            continue
        f = flows[fid]
        site, links = a
        for r, v in f.demand.items():
            site_free[site][r] = site_free[site].get(r, 0.0) - v
        delay = next((c.delay_ms for c in p.paths.get((f.origin, site), ())
                      if c.links == links), None)
        if delay is None:
            errs.append(f"{fid}: path not a candidate")
        elif f.max_delay_ms is not None and delay > f.max_delay_ms + 1e-9:
            errs.append(f"{fid}: delay {delay} > {f.max_delay_ms}")
        for ln in links:
            link_use[ln] = link_use.get(ln, 0.0) + f.bandwidth_mbps
            for s in p.slices:
                if s != f.slice:
                    slice_other[(s, ln)] = slice_other.get((s, ln), 0.0) + f.bandwidth_mbps
    for site, free in site_free.items():
        errs += [f"site {site} {r} over by {-v:g}" for r, v in free.items() if v < -1e-6]
    errs += [f"link {ln} over" for ln, u in link_use.items() if u > p.links.get(ln, 0) + 1e-6]
    errs += [f"slice {s} guarantee broken on {ln}" for (s, ln), u in slice_other.items()
             if u > p.links.get(ln, 0) - p.slices[s] + 1e-6 and u > 0]
    return errs
