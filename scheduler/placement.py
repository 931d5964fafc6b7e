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
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from controller.models import InterconnectKind, SiteKind, interconnect_preference
from scheduler.models import Resources
from scheduler.paths import CandidatePath

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
    paths: Mapping[tuple[str, str], Sequence[CandidatePath]]
    links: Mapping[str, float]
    slices: Mapping[str, float] = field(default_factory=dict)
    current: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    weights: PlacementWeights = field(default_factory=PlacementWeights)
    max_options: int = 24


@dataclass(frozen=True, slots=True)
class Option:
    site: str
    path: CandidatePath
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


def _ic_rank(kind: SiteKind, kinds: frozenset[str]) -> int:
    pref = interconnect_preference(kind)
    return max((pref.index(InterconnectKind(k)) for k in kinds if k), default=0)


def build_options(p: PlacementProblem, fixed: set[str] | None = None
                  ) -> tuple[dict[str, list[Option]], dict[str, int]]:
    """Cheapest options per flow and the unplaced penalty per flow."""
    w = p.weights
    options: dict[str, list[Option]] = {}
    penalty: dict[str, int] = {}
    for f in p.flows:
        size = sum(f.demand.values())
        cur = p.current.get(f.id)
        opts: list[Option] = []
        for s in p.sites:
            if f.allowed_sites is not None and s.name not in f.allowed_sites:
                continue
            if any(v > s.capacity.get(r, 0.0) for r, v in f.demand.items()):
                continue
            util = [(s.used.get(r, 0.0) + f.demand.get(r, 0.0)) / c
                    for r, c in s.capacity.items() if c > 0]
            base = (w.price * s.price * size + w.energy * s.energy_w * size / 100.0
                    + w.load * (sum(util) / len(util) if util else 0.0))
            for path in p.paths.get((f.origin, s.name), ()):
                if f.max_delay_ms is not None and path.delay_ms > f.max_delay_ms:
                    continue
                c = base + w.delay * path.delay_ms + w.interconnect * _ic_rank(s.kind,
                                                                               path.kinds)
                is_cur = cur is not None and cur == (s.name, path.links)
                if cur is not None and not is_cur:
                    c += w.migration
                opts.append(Option(s.name, path, round(c * SCALE)))
        opts.sort(key=lambda o: (o.cost, o.site, o.path.links))
        keep = opts[: p.max_options]
        if cur is not None and not any((o.site, o.path.links) == cur for o in keep):
            keep += [o for o in opts if (o.site, o.path.links) == cur]
        if fixed is not None and f.id in fixed and cur is not None:
            keep = [o for o in keep if (o.site, o.path.links) == cur] or keep
        options[f.id] = keep
        worst = max((o.cost for o in keep), default=0)
        penalty[f.id] = 10 * worst + 1000 * SCALE
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


def greedy(p: PlacementProblem, fixed: set[str] | None = None
           ) -> tuple[dict[str, Option | None], int]:
    options, penalty = build_options(p, fixed)
    use = _Usage(p)
    out: dict[str, Option | None] = {}
    by_id = {f.id: f for f in p.flows}
    cur_first = [f for f in p.flows if f.id in p.current]
    rest = sorted((f for f in p.flows if f.id not in p.current),
                  key=lambda f: (len(options[f.id]), -sum(f.demand.values()),
                                 -f.bandwidth_mbps, f.id))
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
          use_cpsat: bool = True) -> PlacementPlan:
    """Greedy, then CP-SAT from the greedy hint (see module rules)."""
    t0 = time.perf_counter()
    g_choice, g_obj = greedy(p, fixed)
    t_greedy = time.perf_counter() - t0
    options, penalty = build_options(p, fixed)
    trivial_bound = sum(min((o.cost for o in options[f.id]), default=penalty[f.id])
                        for f in p.flows)
    plan = _to_plan(p, g_choice, g_obj, trivial_bound, "greedy", "feasible")
    plan.greedy_objective, plan.greedy_s = g_obj / SCALE, t_greedy
    if not use_cpsat or not p.flows:
        return plan
    t1 = time.perf_counter()
    try:
        better = _cpsat(p, options, penalty, g_choice, fixed, time_limit_s, workers,
                        gap_limit)
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
    bound = max(bound, trivial_bound)
    if obj > g_obj:
        choice, obj = g_choice, g_obj
        status += " (greedy kept: better)"
    out = _to_plan(p, choice, obj, bound, "cp-sat", status)
    out.greedy_objective, out.greedy_s, out.solve_s = g_obj / SCALE, t_greedy, solve_s
    return out


def _cpsat(p: PlacementProblem, options: dict[str, list[Option]], penalty: dict[str, int],
           hint: Mapping[str, Option | None], fixed: set[str] | None, time_limit_s: float,
           workers: int, gap_limit: float
           ) -> tuple[dict[str, Option | None], int, int, str] | None:
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    xs: dict[str, list[tuple[Option, cp_model.IntVar]]] = {}
    unplaced: dict[str, cp_model.IntVar] = {}
    site_terms: dict[tuple[str, str], list[tuple[int, cp_model.IntVar]]] = {}
    link_terms: dict[str, list[tuple[int, cp_model.IntVar, str | None]]] = {}
    obj_terms = []
    for f in p.flows:
        u = m.new_bool_var(f"u_{f.id}")
        unplaced[f.id] = u
        row = []
        for i, o in enumerate(options[f.id]):
            x = m.new_bool_var(f"x_{f.id}_{i}")
            row.append((o, x))
            obj_terms.append(o.cost * x)
            for r, v in f.demand.items():
                site_terms.setdefault((o.site, r), []).append((round(v * 1000), x))
            bw = round(f.bandwidth_mbps * 10)
            if bw > 0:
                for ln in o.path.links:
                    link_terms.setdefault(ln, []).append((bw, x, f.slice))
            h = hint.get(f.id)
            m.add_hint(x, 1 if h is not None and h == o else 0)
        m.add_hint(u, 1 if hint.get(f.id) is None else 0)
        xs[f.id] = row
        m.add_exactly_one([x for _, x in row] + [u])
        obj_terms.append(penalty[f.id] * u)
        if fixed is not None and f.id in fixed and f.id in p.current:
            cur = p.current[f.id]
            for o, x in row:
                if (o.site, o.path.links) == cur:
                    m.add(x == 1)
    sites = {s.name: s for s in p.sites}
    for (site, r), terms in site_terms.items():
        s = sites[site]
        cap = round((s.capacity.get(r, 0.0) - s.used.get(r, 0.0)) * 1000)
        m.add(sum(c * x for c, x in terms) <= cap)
    for ln, lterms in link_terms.items():
        avail = round(p.links.get(ln, 0.0) * 10)
        m.add(sum(c * x for c, x, _ in lterms) <= avail)
        for sname, reserve in p.slices.items():
            others = [(c, x) for c, x, sl in lterms if sl != sname]
            if reserve > 0 and others:
                m.add(sum(c * x for c, x in others) <= max(0, avail - round(reserve * 10)))
    m.minimize(sum(obj_terms))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = workers
    solver.parameters.relative_gap_limit = gap_limit
    st = solver.solve(m)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    choice: dict[str, Option | None] = {}
    for f in p.flows:
        choice[f.id] = next((o for o, x in xs[f.id] if solver.value(x)), None)
    obj = round(solver.objective_value)
    return choice, obj, round(solver.best_objective_bound), solver.status_name(st).lower()


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
