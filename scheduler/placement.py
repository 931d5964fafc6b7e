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
- The FULL model is every flow × every (site, candidate path) within its bounds
  (``scheduler.fullmodel``). Greedy and CP-SAT work on restricted options per flow
  (the ``max_options`` cheapest, the best path of each site first, plus the current
  one, plus every column LP pricing brought in); every bound reported is a bound of
  the full model, never of the restricted one.
- ``time_limit_s`` covers everything: options, greedy, LP bound, CP-SAT. Greedy
  answers at once and is the hint; a solver failure returns the greedy plan.
- Bound: the LP relaxation of the full model by column generation (HiGHS on the
  restricted columns, every other column priced by its reduced cost; the Lagrangian
  bound of each round is valid). ``mode``: ``"lp-guided"`` (default) — above
  ``SMALL_MODEL_VARS`` option variables, keep the flows the LP places integrally and
  give CP-SAT the fractional rest; ``"exact"`` skips that step. Then, while the gap is
  above ``gap_limit``: CP-SAT on every column within the gap in Lagrangian reduced
  cost when they are few enough (that model holds every plan as good as the best
  known, so its CP-SAT bound is the full model's too), else on the restricted
  options (improvement only; that bound is not reported).
- ``status`` says what was proven: ``optimal (proven for the full model …)`` only when
  the objective equals the full model's bound, else ``feasible, gap X % to the full
  model's bound B``, followed by what was run.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from controller.models import SiteKind
from scheduler import fullmodel
from scheduler.fullmodel import SCALE, FullModel
from scheduler.models import Resources
from scheduler.paths import SitePath

_new = tuple.__new__


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


def build_options(p: PlacementProblem, fixed: set[str] | None = None
                  ) -> tuple[dict[str, list[Option]], dict[str, int]]:
    """The restricted options per flow and the unplaced penalty per flow."""
    m = build_model(p, fixed)
    return m.options, m.penalty


@dataclass(slots=True)
class Model:
    """``fm`` (the full model, ``scheduler.fullmodel``), ``options`` (the restricted
    options per flow: the ``max_options`` cheapest — the best path of each site first —
    plus the current one), ``penalty`` (unplaced, per flow), ``qs`` (global path index
    of each option, parallel to ``options``)."""

    fm: FullModel
    options: dict[str, list[Option]]
    penalty: dict[str, int]
    qs: dict[str, list[int]]

    def add(self, cf: Sequence[int], cq: Sequence[int]) -> int:
        """Add columns (flow index, path index) to the restricted options; returns how
        many were new."""
        fm, n = self.fm, 0
        seen: dict[str, set[int]] = {}
        for f, q in zip(cf, cq, strict=True):
            fid = fm.flows[f].id
            have = seen.get(fid)
            if have is None:
                have = seen[fid] = set(self.qs[fid])
            if q in have:
                continue
            have.add(q)
            self.qs[fid].append(q)
            self.options[fid].append(_new(Option, (fm.sites[int(fm.path_site[q])],
                                                   fm.paths[q], fm.cost(f, q))))
            n += 1
        return n


def build_model(p: PlacementProblem, fixed: set[str] | None = None) -> Model:
    """The full model and the restricted options (the cyclic GC is paused meanwhile:
    tens of thousands of acyclic tuples would trigger repeated generation scans)."""
    was = gc.isenabled()
    gc.disable()
    try:
        fm = fullmodel.build(p)
        options: dict[str, list[Option]] = {}
        penalty: dict[str, int] = {}
        qs: dict[str, list[int]] = {}
        site_of = [fm.sites[i] for i in fm.path_site.tolist()]
        paths = fm.paths
        cur_l = fm.cur_q.tolist()
        pen = fm.penalty.tolist()
        for g in fm.groups:
            picks = fullmodel.cheapest(fm, g, p.max_options)
            costs = g.cost.tolist()
            for r, fi in enumerate(g.flows.tolist()):
                f = fm.flows[fi]
                js = [j + g.path0 for j in picks[r]]
                c = cur_l[fi]
                if c >= 0 and c not in js:
                    js.append(c)
                if fixed is not None and f.id in fixed and c >= 0:
                    js = [c]
                row = costs[r]
                # tuple.__new__ skips the NamedTuple's Python-level __new__
                options[f.id] = [_new(Option, (site_of[q], paths[q], row[q - g.path0]))
                                 for q in js]
                qs[f.id] = js
                penalty[f.id] = pen[fi]
        return Model(fm, options, penalty, qs)
    finally:
        if was:
            gc.enable()


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

    def take(self, f: PFlow, o: Option, sign: float = 1.0) -> None:
        free = self.site_free[o.site]
        for r, v in f.demand.items():
            free[r] = free.get(r, 0.0) - sign * v
        b = sign * f.bandwidth_mbps
        for ln in o.path.links:
            self.link_free[ln] = self.link_free.get(ln, 0.0) - b
            if f.slice in self.slice_use:
                u = self.slice_use[f.slice]
                u[ln] = u.get(ln, 0.0) + b

    def give(self, f: PFlow, o: Option) -> None:
        """Undo ``take``."""
        self.take(f, o, -1.0)


Built = tuple[dict[str, list[Option]], dict[str, int]]


def greedy(p: PlacementProblem, fixed: set[str] | None = None, built: Built | None = None
           ) -> tuple[dict[str, Option | None], int]:
    """The instant answer: first-fit in the order of costs with site prices
    (``_site_prices``), then the local search (``_improve``) on the true costs."""
    options, penalty = built if built is not None else build_options(p, fixed)
    return _first_fit(p, options, penalty, _priced_order(p, options))


#: subgradient rounds for the site prices of greedy
PRICE_ROUNDS = 25


def _priced_order(p: PlacementProblem, options: Mapping[str, list[Option]]
                  ) -> dict[str, list[tuple[float, Option]]]:
    """Each flow's options with their priced cost, cheapest first. Site prices (cost
    units per resource unit) come from a few subgradient rounds: every flow takes its
    cheapest priced option, over-subscribed sites get dearer. They steer first-fit away
    from the sites every flow wants first (a Lagrangian heuristic for the capacities)."""
    sites = [s.name for s in p.sites]
    sidx = {n: i for i, n in enumerate(sites)}
    res = sorted({r for s in p.sites for r in s.capacity})
    flows = [f for f in p.flows if options[f.id]]
    out: dict[str, list[tuple[float, Option]]] = {
        f.id: [] for f in p.flows if not options[f.id]}
    if not flows:
        return out
    free = np.array([[s.capacity.get(r, 0.0) - s.used.get(r, 0.0) for r in res]
                     for s in p.sites]).reshape(len(sites), len(res))
    counts = np.array([len(options[f.id]) for f in flows])
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    o_site = np.array([sidx[o.site] for f in flows for o in options[f.id]])
    o_cost = np.array([o.cost for f in flows for o in options[f.id]], dtype=np.float64)
    dem = np.array([[f.demand.get(r, 0.0) for r in res] for f in flows]).reshape(
        len(flows), len(res))
    o_dem = np.repeat(dem, counts, axis=0)
    flow_of = np.repeat(np.arange(len(flows)), counts)
    lam = np.zeros_like(free)
    unit = float(np.median(o_cost[starts]) / max(1e-9, float(dem.sum(axis=1).mean())))
    step = 0.5 * unit
    adj = o_cost
    for _ in range(PRICE_ROUNDS if len(res) else 0):
        low = np.minimum.reduceat(adj, starts)
        pick = np.zeros(len(flows), dtype=np.int64)
        hit = np.flatnonzero(adj <= low[flow_of])
        pick[flow_of[hit[::-1]]] = hit[::-1]  # first cheapest option of each flow
        load = np.zeros_like(free)
        np.add.at(load, o_site[pick], dem)
        with np.errstate(over="ignore", invalid="ignore"):  # capacities near 1e308
            lam = np.maximum(0.0, lam + step * (load - free) / np.maximum(free, 1e-9))
        lam = np.nan_to_num(lam, nan=0.0, posinf=0.0)
        step *= 0.85
        adj = o_cost + (o_dem * lam[o_site]).sum(axis=1)
    order = np.lexsort((adj, flow_of))  # by flow, then priced cost (stable on ties)
    adj_l = adj[order].tolist()
    # map the sorted positions back to each flow's own options
    pos = order - np.repeat(starts, counts)
    pos_l = pos.tolist()
    k = 0
    for f in flows:
        opts = options[f.id]
        n = len(opts)
        out[f.id] = list(zip(adj_l[k:k + n], [opts[j] for j in pos_l[k:k + n]],
                             strict=True))
        k += n
    return out


def _first_fit(p: PlacementProblem, options: Mapping[str, list[Option]],
               penalty: Mapping[str, int], ranked: Mapping[str, list[tuple[float, Option]]]
               ) -> tuple[dict[str, Option | None], int]:
    use = _Usage(p)
    out: dict[str, Option | None] = {}
    by_id = {f.id: f for f in p.flows}
    cur_first = [f for f in p.flows if f.id in p.current]
    srt = {fid: [o for _, o in r] for fid, r in ranked.items()}

    def regret(f: PFlow) -> tuple[int, float, str]:
        # Serve first the flows that lose most if their best option is taken.
        r = ranked[f.id]
        if len(r) < 2:
            return (0, -float("inf"), f.id)
        # delay-bound flows with few options first, then by regret per unit of demand
        return (0 if len(r) < p.max_options // 2 else 1,
                -(r[1][0] - r[0][0]) / max(1e-9, sum(f.demand.values())), f.id)

    rest = sorted((f for f in p.flows if f.id not in p.current), key=regret)
    for f in cur_first:  # keep current assignments first: migration-free start
        cur = p.current[f.id]
        o = next((o for o in options[f.id] if (o.site, o.path.links) == cur), None)
        if o is not None and use.fits(f, o):
            use.take(f, o)
            out[f.id] = o
    for f in [x for x in cur_first if x.id not in out] + rest:
        choice = next((o for o in srt[f.id] if use.fits(f, o)), None)
        if choice is not None:
            use.take(f, choice)
        out[f.id] = choice
    by_cost = {fid: sorted(opts, key=_cost) for fid, opts in options.items()}
    _improve(by_id, by_cost, penalty, out, use)
    obj = sum(o.cost if o is not None else penalty[fid] for fid, o in out.items())
    assert set(out) == set(by_id)
    return out, obj


def _cost(o: Option) -> int:
    return o.cost


#: local-search passes after greedy (each: every flow once, plus the ejections)
IMPROVE_PASSES = 3
#: ejection attempts per pass (bounds greedy's time at thousands of flows)
EJECT_BUDGET = 3000


def _improve(by_id: Mapping[str, PFlow], srt: Mapping[str, list[Option]],
             penalty: Mapping[str, int], out: dict[str, Option | None], use: _Usage) -> None:
    """Local search on the greedy plan, cheapest moves only, never a violation:
    (1) each flow moves to its cheapest option that fits once its own share is given
    back, when cheaper; (2) a flow (unplaced ones first) takes a cheaper option whose
    site is full by moving one flow already there to that flow's cheapest other
    option that fits, when the sum gets lower."""
    def cost(fid: str, o: Option | None) -> int:
        return o.cost if o is not None else penalty[fid]

    at_site: dict[str, set[str]] = {}
    for fid, o in out.items():
        if o is not None:
            at_site.setdefault(o.site, set()).add(fid)

    def move(fid: str, new: Option | None) -> None:
        old = out[fid]
        f = by_id[fid]
        if old is not None:
            use.give(f, old)
            at_site[old.site].discard(fid)
        if new is not None:
            use.take(f, new)
            at_site.setdefault(new.site, set()).add(fid)
        out[fid] = new

    def cheapest_fit(fid: str, below: int, avoid: str | None = None) -> Option | None:
        f = by_id[fid]
        for o in srt[fid]:
            if o.cost >= below:
                return None
            if o.site != avoid and use.fits(f, o):
                return o
        return None

    for _ in range(IMPROVE_PASSES):
        better = False
        # largest possible saving first
        order = sorted(out, key=lambda x: (srt[x][0].cost - cost(x, out[x])
                                           if srt[x] else 0, x))
        for fid in order:
            cur = out[fid]
            now = cost(fid, cur)
            if not srt[fid] or srt[fid][0].cost >= now:
                continue
            f = by_id[fid]
            if cur is not None:
                use.give(f, cur)
            o = cheapest_fit(fid, now)
            if cur is not None:
                use.take(f, cur)
            if o is not None:
                move(fid, o)
                better = True
        # ejection: a flow takes a cheaper option whose site is full by moving one flow
        # there to that flow's cheapest other option (a swap when it takes the freed
        # place); unplaced flows first, then by the saving at stake
        budget = EJECT_BUDGET
        order = sorted(out, key=lambda x: (out[x] is not None, srt[x][0].cost - cost(x, out[x])
                                           if srt[x] else 0, x))
        for fid in order:
            if budget <= 0:
                break
            f = by_id[fid]
            cur = out[fid]
            now = cost(fid, cur)
            for o in srt[fid][:8]:
                if o.cost >= now or budget <= 0:
                    break
                done = False
                for gid in sorted(at_site.get(o.site, ())):
                    if gid == fid:
                        continue
                    budget -= 1
                    g_old = out[gid]
                    assert g_old is not None
                    move(gid, None)
                    move(fid, None)
                    if use.fits(f, o):
                        move(fid, o)
                        g_new = cheapest_fit(gid, 1 << 62, avoid=o.site)
                        if g_new is not None and (o.cost + g_new.cost < now + g_old.cost):
                            move(gid, g_new)
                            better = done = True
                            break
                        move(fid, None)
                    move(fid, cur)
                    move(gid, g_old)
                if done:
                    break
        if not better:
            break


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
    """Greedy, then the full-model bound and CP-SAT within ``time_limit_s`` in all
    (see module rules)."""
    if mode not in ("lp-guided", "exact"):
        raise ValueError(f"placement mode {mode!r}: use 'lp-guided' or 'exact'")
    t0 = time.perf_counter()
    model = build_model(p, fixed)
    options, penalty = model.options, model.penalty
    g_choice, g_obj = greedy(p, fixed, (options, penalty))
    t_greedy = time.perf_counter() - t0
    # L(0): every flow at its cheapest full-model option — a bound of the full model
    fm = model.fm
    m0 = fm.penalty.copy()
    for g in fm.groups:
        if g.npaths:
            m0[g.flows] = np.minimum(m0[g.flows], np.where(g.ok, g.cost, m0[g.flows][:, None])
                                     .min(axis=1))
    trivial_bound = sum(options[f.id][0].cost if fixed is not None and f.id in fixed
                        and len(options[f.id]) == 1 else int(m0[i])
                        for i, f in enumerate(fm.flows))
    plan = _to_plan(p, g_choice, g_obj, trivial_bound, "greedy",
                    f"feasible (greedy), bound of the full model: every flow at its "
                    f"cheapest option, {trivial_bound / SCALE:.2f}")
    plan.greedy_objective, plan.greedy_s = g_obj / SCALE, t_greedy
    if not use_cpsat or not p.flows:
        return plan
    from scheduler import solver

    t1 = time.perf_counter()
    try:
        better = solver.optimise(p, model, g_choice, g_obj, fixed, t0 + time_limit_s,
                                 workers, gap_limit, mode == "exact", SMALL_MODEL_VARS)
    except Exception as exc:  # never no plan: fall back to greedy
        plan.status = f"cp-sat failed ({type(exc).__name__}: {exc}); greedy plan"
        plan.solve_s = time.perf_counter() - t1
        return plan
    solve_s = time.perf_counter() - t1
    choice, obj, bound, detail = better
    bound = max(bound, trivial_bound)  # both are valid lower bounds of the full model
    if obj > g_obj:
        choice, obj = g_choice, g_obj
        detail += "; greedy kept: better"
    n_opts = int(sum(int(g.ok.sum()) for g in fm.groups))
    # What was proven, of the full model: optimal only when nothing lies below.
    proven = (f"optimal (proven for the full model: {len(fm.flows)} flows, {n_opts} "
              f"options)" if obj <= bound else
              f"feasible, gap {(obj - bound) / max(1, abs(obj)):.2%} to the full model's "
              f"bound {bound / SCALE:.2f} ({len(fm.flows)} flows, {n_opts} options)")
    out = _to_plan(p, choice, obj, bound, "cp-sat", f"{proven}; {detail}")
    out.greedy_objective, out.greedy_s, out.solve_s = g_obj / SCALE, t_greedy, solve_s
    return out


#: Free models up to this many option variables go to CP-SAT whole (no LP fixing).
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
