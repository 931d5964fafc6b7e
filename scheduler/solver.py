"""Bound and search for joint placement (used by ``scheduler.placement.solve``).

Rules:
- Rows are capacities: ``("site", name, resource)``, ``("link", key)`` and
  ``("slice", name, link)`` (bandwidth of flows *outside* the slice on that link,
  bounded by available − reserve). Flows already decided are subtracted from the
  right-hand sides, so a sub-model is exact for the free flows.
- Bound (``column_generation``): the LP relaxation (HiGHS) of a restricted set of
  columns, priced against EVERY column of the full model (``scheduler.fullmodel``):
  columns with negative reduced cost join and the LP is solved again, until none is
  left or the time share is spent. Every round's Lagrangian bound L(y) is a valid
  lower bound of the full model; the best one is kept. With no negative reduced cost
  left it is the full model's LP bound.
- Search (``cpsat_exact``): CP-SAT on given columns and residual capacities, hinted.
  Its proven bound counts for the full model only when the columns given hold every
  column whose Lagrangian reduced cost is ≤ UB − L (the caller checks that).
- Any failure raises; the caller falls back to greedy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from scheduler.fullmodel import (
    F64,
    I64,
    Bools,
    FullModel,
    entries,
    knapsack_bound,
    lagrangian,
    within,
)

if TYPE_CHECKING:
    from scheduler.placement import Model, Option, PFlow, PlacementProblem

Row = tuple[str, ...]
RES_SCALE = 1000
BW_SCALE = 10


def base_rhs(p: PlacementProblem) -> dict[Row, float]:
    rhs: dict[Row, float] = {}
    for s in p.sites:
        for r, c in s.capacity.items():
            rhs[("site", s.name, r)] = c - s.used.get(r, 0.0)
    for ln, avail in p.links.items():
        rhs[("link", ln)] = avail
        for sl, reserve in p.slices.items():
            if reserve > 0:
                rhs[("slice", sl, ln)] = avail - reserve
    return rhs


def option_rows(f: PFlow, o: Option, slices: Mapping[str, float]) -> list[tuple[Row, float]]:
    out: list[tuple[Row, float]] = [(("site", o.site, r), v) for r, v in f.demand.items()]
    b = f.bandwidth_mbps
    if b > 0:
        for ln in o.path.links:
            out.append((("link", ln), b))
            for sl, reserve in slices.items():
                if reserve > 0 and sl != f.slice:
                    out.append((("slice", sl, ln), b))
    return out


@dataclass(slots=True)
class LpResult:
    """``bound`` (best Lagrangian bound, float), ``lp`` (last restricted LP value),
    ``rounds``, ``converged`` (no negative reduced cost left: ``bound`` is the full
    LP bound), ``y`` (multipliers of the best bound), ``m``/``adjs`` (its per-flow
    minimum and adjusted costs), ``cf``/``cq`` (columns of the last LP), ``x`` (their
    LP values), ``added`` (columns priced in)."""

    bound: float
    lp: float
    rounds: int
    converged: bool
    y: F64
    pi: F64
    m: F64
    adjs: list[F64]
    cf: I64
    cq: I64
    x: F64
    added: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _lp(fm: FullModel, active: Bools, rhs: F64, cf: I64, cq: I64
        ) -> tuple[float, F64, F64, F64]:
    """Restricted LP: (value, x over the columns, y ≥ 0 per row, π per flow)."""
    from scipy.optimize import linprog  # type: ignore[import-untyped]
    from scipy.sparse import coo_matrix  # type: ignore[import-untyped]

    act = np.flatnonzero(active)
    nact = len(act)
    pos = np.full(len(fm.flows), -1, dtype=np.int64)
    pos[act] = np.arange(nact)
    ncol = len(cf)
    r, c, v = entries(fm, cf, cq)
    used_rows = np.unique(r)
    remap = np.full(fm.nrows, -1, dtype=np.int64)
    remap[used_rows] = np.arange(len(used_rows))
    a_ub = coo_matrix((v, (remap[r], c)), shape=(len(used_rows), ncol + nact)).tocsc()
    eq_rows = np.concatenate([pos[cf], np.arange(nact)])
    eq_cols = np.arange(ncol + nact)
    a_eq = coo_matrix((np.ones(ncol + nact), (eq_rows, eq_cols)),
                      shape=(nact, ncol + nact)).tocsc()
    costs = fm.costs(cf, cq).astype(np.float64)
    obj = np.concatenate([costs, fm.penalty[act].astype(np.float64)])
    res = linprog(obj, A_ub=a_ub, b_ub=rhs[used_rows], A_eq=a_eq, b_eq=np.ones(nact),
                  bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"LP relaxation not solved: {res.message}")
    y = np.zeros(fm.nrows)
    y[used_rows] = np.maximum(0.0, -np.asarray(res.ineqlin.marginals))
    pi = np.zeros(len(fm.flows))
    pi[act] = np.asarray(res.eqlin.marginals)
    return float(res.fun), np.asarray(res.x[:ncol]), y, pi


def column_generation(fm: FullModel, active: Bools, rhs: F64, cf: I64, cq: I64,
                      deadline: float, per_flow: int = 4, max_rounds: int = 30
                      ) -> LpResult:
    """Full-model LP bound by pricing (see module rules)."""
    t0 = time.perf_counter()
    best: LpResult | None = None
    lp_val = math.inf
    x = np.zeros(0)
    added = 0
    converged = False
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        lp_val, x, y, pi = _lp(fm, active, rhs, cf, cq)
        bound, m, adjs = lagrangian(fm, y, active, rhs)
        if best is None or bound > best.bound:
            best = LpResult(bound, lp_val, rounds, False, y, pi, m, adjs, cf, cq, x)
        # columns pricing out below the flow's dual: the restricted LP can improve
        new_f: list[I64] = []
        new_q: list[I64] = []
        for g, adj in zip(fm.groups, adjs, strict=True):
            if not g.npaths:
                continue
            rc = adj - pi[g.flows][:, None]
            rc[~active[g.flows]] = np.inf
            k = min(per_flow, g.npaths)
            top = np.argpartition(rc, k - 1, axis=1)[:, :k]
            vals = np.take_along_axis(rc, top, axis=1)
            tol = 1e-6 * np.maximum(1.0, np.abs(pi[g.flows]))[:, None]
            rr, cc = np.nonzero(vals < -tol)
            for a, b in zip(rr.tolist(), cc.tolist(), strict=True):
                new_f.append(g.flows[a:a + 1])
                new_q.append(top[a, b:b + 1] + g.path0)
        if not new_f:
            converged = True
            break
        cf = np.concatenate([cf, *new_f])
        cq = np.concatenate([cq, *new_q])
        added += len(new_f)
        if time.perf_counter() > deadline:
            break
    assert best is not None
    best.lp, best.rounds, best.converged, best.added = lp_val, rounds, converged, added
    best.cf, best.cq = cf, cq  # every column priced in, the last ones with x = 0
    best.x = np.concatenate([x, np.zeros(len(cf) - len(x))])
    if converged:  # the last LP is the full LP: its value is the bound
        best.bound = max(best.bound, lagrangian(fm, best.y, active, rhs)[0])
    best.seconds = time.perf_counter() - t0
    return best


def cpsat_exact(p: PlacementProblem, flows: Sequence[PFlow],
                options: Mapping[str, list[Option]], penalty: Mapping[str, int],
                rhs: Mapping[Row, float], hint: Mapping[str, Option | None],
                time_limit_s: float, workers: int, gap_limit: float
                ) -> tuple[dict[str, Option | None], int, int, str] | None:
    """CP-SAT on ``flows`` with residual ``rhs``: (choice, objective, bound, status)."""
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    m = cp_model.CpModel()
    terms: dict[Row, tuple[list[cp_model.IntVar], list[int]]] = {}
    ovars: list[cp_model.IntVar] = []
    ocoef: list[int] = []
    xs: dict[str, list[tuple[Option, cp_model.IntVar]]] = {}
    for f in flows:
        row = []
        u = m.new_bool_var("")
        h = hint.get(f.id)
        for o in options[f.id]:
            x = m.new_bool_var("")
            row.append((o, x))
            ovars.append(x)
            ocoef.append(o.cost)
            for key, coef in option_rows(f, o, p.slices):
                scale = RES_SCALE if key[0] == "site" else BW_SCALE
                vs, cs = terms.setdefault(key, ([], []))
                vs.append(x)
                cs.append(round(coef * scale))
            m.add_hint(x, 1 if h is not None and h == o else 0)
        m.add_hint(u, 1 if h is None else 0)
        ovars.append(u)
        ocoef.append(penalty[f.id])
        m.add_exactly_one([x for _, x in row] + [u])
        xs[f.id] = row
    for key, (vs, cs) in terms.items():
        scale = RES_SCALE if key[0] == "site" else BW_SCALE
        cap = math.floor(rhs.get(key, 0.0) * scale + 1e-6)
        m.add(cp_model.LinearExpr.weighted_sum(vs, cs) <= max(cap, -(10**15)))
    m.minimize(cp_model.LinearExpr.weighted_sum(ovars, ocoef))
    solver = cp_model.CpSolver()
    # the budget covers building the model too
    solver.parameters.max_time_in_seconds = max(0.1, time_limit_s
                                                - (time.perf_counter() - t0))
    solver.parameters.num_workers = workers
    solver.parameters.relative_gap_limit = gap_limit
    st = solver.solve(m)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    choice = {f.id: next((o for o, x in xs[f.id] if solver.value(x)), None) for f in flows}
    return (choice, round(solver.objective_value), math.floor(solver.best_objective_bound),
            solver.status_name(st).lower())


#: CP-SAT is given the complete column set (every column within UB − L in reduced
#: cost) only up to this many option variables; above, it works on the restricted
#: columns and its own bound is not reported (it is not the full model's).
COMPLETE_VARS = 15000
#: restricted options per flow the first LP round starts from
LP_START = 8


def _rhs_map(fm: FullModel, rhs: F64) -> dict[Row, float]:
    return {fm.row_key(i): float(v) for i, v in enumerate(rhs.tolist())}


def _charge(fm: FullModel, rhs: F64, cf: Sequence[int], cq: Sequence[int]) -> None:
    if len(cf):
        r, _, v = entries(fm, np.asarray(cf, dtype=np.int64), np.asarray(cq, dtype=np.int64))
        np.subtract.at(rhs, r, v)


def optimise(p: PlacementProblem, model: Model, hint: Mapping[str, Option | None],
             hint_obj: int, fixed: set[str] | None, deadline: float, workers: int,
             gap_limit: float, exact: bool, small_vars: int
             ) -> tuple[dict[str, Option | None], int, int, str]:
    """(choice, objective, bound, what was done) — every bound of the full model.

    Flows fixed by the problem (``fixed`` with one option) are charged first. Then:
    the full-model LP bound by pricing (≤ ~35 % of the time left); on models above
    ``small_vars`` option variables and not ``exact``, CP-SAT on the LP-fractional flows
    with the LP-integral ones kept; then, while the gap is above ``gap_limit``, CP-SAT
    on every column within UB − L in reduced cost (its bound then holds for the full
    model) or, if those are too many, on the restricted columns (improvement only)."""
    fm = model.fm
    options = model.options
    penalty = model.penalty
    nflows = len(fm.flows)
    rhs = fm.rhs.copy()
    active = np.ones(nflows, dtype=np.bool_)
    decided: dict[str, Option | None] = {}
    fcf: list[int] = []
    fcq: list[int] = []
    for i, f in enumerate(fm.flows):
        if fixed is not None and f.id in fixed and len(options[f.id]) == 1:
            decided[f.id] = options[f.id][0]
            active[i] = False
            fcf.append(i)
            fcq.append(model.qs[f.id][0])
    _charge(fm, rhs, fcf, fcq)
    forced = sum(o.cost for o in decided.values() if o is not None)
    free = [f for i, f in enumerate(fm.flows) if active[i]]
    notes: list[str] = []
    best = dict(hint)
    ub = hint_obj
    if not free:
        return best, ub, forced, "every flow fixed"
    # the LP starts from each flow's LP_START cheapest options; pricing adds the rest
    cf = np.array([fm.index[f.id] for f in free for _ in model.qs[f.id][:LP_START]],
                  dtype=np.int64)
    cq = np.array([q for f in free for q in model.qs[f.id][:LP_START]], dtype=np.int64)
    now = time.perf_counter()
    lp = column_generation(fm, active, rhs, cf, cq, now + 0.35 * max(0.0, deadline - now))
    model.add(lp.cf.tolist(), lp.cq.tolist())
    lower = lp.bound + forced

    def bound_int() -> int:
        return math.ceil(lower - 1e-7 * max(1.0, abs(lower)))

    def knapsacks(share: float) -> None:
        """Raise ``lower`` by the site-knapsack Lagrangian (subgradient on π for up to
        ``share`` of the time left)."""
        nonlocal lower
        if ub - bound_int() <= gap_limit * max(1, abs(ub)):
            return
        now = time.perf_counter()
        try:  # site knapsacks kept: at least the LP bound at LP-optimal multipliers
            knap = knapsack_bound(fm, lp.y, lp.pi, active, rhs, float(ub - forced),
                                  now + share * max(0.0, deadline - now))
        except Exception:  # the LP bound stands
            return
        if knap + forced > lower:
            notes.append(f"site-knapsack Lagrangian bound {(knap + forced) / 100:.2f} "
                         f"({time.perf_counter() - now:.2f} s)")
            lower = knap + forced
    notes.append(f"full-model LP bound by pricing every option: {lp.rounds} LP rounds, "
                 f"{lp.added} columns priced in, "
                 f"{'converged' if lp.converged else 'stopped at its time share'} "
                 f"({lp.seconds:.2f} s)")

    def total(choice: Mapping[str, Option | None]) -> int:
        return sum(o.cost if o is not None else penalty[fid] for fid, o in choice.items())

    n_vars = sum(len(options[f.id]) for f in free)
    rhs_all = _rhs_map(fm, rhs)

    def cp_time() -> float:
        # CP-SAT's limit excludes building its model: leave room for that
        return 0.95 * (deadline - time.perf_counter()) - 0.05

    def complete() -> bool:
        """CP-SAT on every column within UB − L in reduced cost, if not too many: then
        its bound is the full model's. False when the set was too large."""
        nonlocal best, ub, lower
        slack = (ub - forced) - lp.bound + 1e-6 * max(1.0, abs(ub))
        wf, wq = within(fm, lp.adjs, lp.m, active, slack)
        if len(wf) > COMPLETE_VARS:
            notes.append(f"{len(wf)} options within the gap in reduced cost: too many "
                         f"for CP-SAT to prove the full model")
            return False
        from scheduler.placement import Model

        sub = Model(fm, {f.id: [] for f in free}, penalty, {f.id: [] for f in free})
        sub.add(wf.tolist(), wq.tolist())
        got = cpsat_exact(p, free, sub.options, penalty, rhs_all,
                          {f.id: best.get(f.id) for f in free}, cp_time(), workers,
                          gap_limit)
        if got is not None:
            lower = max(lower, got[2] + forced)  # every plan ≤ UB is in this model
            if got[1] + forced < ub:
                best, ub = {**decided, **got[0]}, got[1] + forced
            notes.append(f"CP-SAT {got[3]} on the {len(wf)} options within "
                         f"{slack / 100:.2f} of the bound in reduced cost (they hold every "
                         f"plan as good as the best known, so its bound is the full "
                         f"model's)")
        else:
            notes.append(f"CP-SAT found no plan on the {len(wf)} options within the gap "
                         f"in its time")
        return True

    def open_gap() -> bool:
        return (ub - bound_int()) > gap_limit * max(1, abs(ub)) and cp_time() > 0.2

    tried = False
    if exact or n_vars <= small_vars:
        tried = open_gap() and complete()  # small enough: the strongest step
    elif open_gap():
        # LP-guided: keep the flows the LP places integrally, CP-SAT on the rest
        keep: dict[str, Option | None] = {}
        kcf: list[int] = []
        kcq: list[int] = []
        for j in np.flatnonzero(lp.x >= 0.999).tolist():
            fi, q = int(lp.cf[j]), int(lp.cq[j])
            fid = fm.flows[fi].id
            if fid in keep:
                continue
            keep[fid] = options[fid][model.qs[fid].index(q)]
            kcf.append(fi)
            kcq.append(q)
        sub_rhs = rhs.copy()
        _charge(fm, sub_rhs, kcf, kcq)
        frac = [f for f in free if f.id not in keep]
        got = cpsat_exact(p, frac, options, penalty, _rhs_map(fm, sub_rhs), hint,
                          0.5 * cp_time(), workers, gap_limit) if frac \
            else ({}, 0, 0, "nothing")
        if got is not None:
            choice = {**decided, **keep, **got[0]}
            obj = total(choice)
            if obj < ub:
                best, ub = choice, obj
            notes.append(f"CP-SAT {got[3]} on the {len(frac)} LP-fractional flows "
                         f"({len(keep)} LP-integral kept)")
        else:
            notes.append(f"CP-SAT found no plan for the {len(frac)} LP-fractional flows "
                         f"in its time")
    gap_open = open_gap()
    if gap_open and (tried or not complete()):
        hinted = {f.id: best.get(f.id) for f in free}
        # a share of the time stays for the site-knapsack bound after it
        got = cpsat_exact(p, free, options, penalty, rhs_all, hinted, 0.75 * cp_time(),
                          workers, gap_limit)
        if got is not None:
            if got[1] + forced < ub:
                best, ub = {**decided, **got[0]}, got[1] + forced
            notes.append(f"CP-SAT {got[3]} on {n_vars} restricted options (their bound "
                         f"is not the full model's: not used)")
        else:
            notes.append(f"CP-SAT found no plan on {n_vars} restricted options in its time")
    elif not gap_open and ub - bound_int() > gap_limit * max(1, abs(ub)):
        notes.append("no time left for more CP-SAT")
    knapsacks(0.9)
    return best, ub, bound_int(), "; ".join(notes)
