"""LP-guided CP-SAT for joint placement (used by ``scheduler.placement.solve``).

Rules:
- Rows are capacities: ``("site", name, resource)``, ``("link", key)`` and
  ``("slice", name, link)`` (bandwidth of flows *outside* the slice on that link,
  bounded by available − reserve). Flows already decided are subtracted from the
  right-hand sides, so a sub-model is exact for the free flows.
- Step 1: the LP relaxation (GLOP) of the whole model gives a proven lower bound.
- Step 2: flows whose LP value is integral (x ≥ 0.999) keep that option; CP-SAT
  solves the remaining (fractional) flows exactly on the residual capacities,
  hinted with the greedy answer. The plan's bound is max(LP bound, CP-SAT bound
  + fixed part) — both valid lower bounds of the full (pruned-option) model.
- Any failure raises; the caller falls back to greedy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.placement import Option, PFlow, PlacementProblem

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


def lp_bound(p: PlacementProblem, flows: Sequence[PFlow], options: Mapping[str, list[Option]],
             penalty: Mapping[str, int], rhs: Mapping[Row, float]
             ) -> tuple[float, dict[str, int | None]]:
    """LP relaxation value and, per flow, the option index it takes integrally."""
    from ortools.linear_solver import pywraplp

    s = pywraplp.Solver.CreateSolver("GLOP")
    if s is None:
        raise RuntimeError("GLOP unavailable")
    obj = s.Objective()
    cons: dict[Row, pywraplp.Constraint] = {}
    xs: dict[str, list[pywraplp.Variable]] = {}
    inf = s.infinity()
    for f in flows:
        row = []
        one = s.Constraint(1.0, 1.0)
        for o in options[f.id]:
            x = s.NumVar(0.0, 1.0, "")
            obj.SetCoefficient(x, o.cost)
            one.SetCoefficient(x, 1.0)
            for key, coef in option_rows(f, o, p.slices):
                c = cons.get(key)
                if c is None:
                    c = cons[key] = s.Constraint(-inf, rhs.get(key, 0.0))
                c.SetCoefficient(x, coef)
            row.append(x)
        u = s.NumVar(0.0, 1.0, "")
        obj.SetCoefficient(u, penalty[f.id])
        one.SetCoefficient(u, 1.0)
        xs[f.id] = row
    obj.SetMinimization()
    if s.Solve() != pywraplp.Solver.OPTIMAL:
        raise RuntimeError("LP relaxation not solved to optimality")
    integral: dict[str, int | None] = {}
    for f in flows:
        integral[f.id] = next((i for i, x in enumerate(xs[f.id])
                               if x.solution_value() >= 0.999), None)
    return obj.Value(), integral


def cpsat_exact(p: PlacementProblem, flows: Sequence[PFlow],
                options: Mapping[str, list[Option]], penalty: Mapping[str, int],
                rhs: Mapping[Row, float], hint: Mapping[str, Option | None],
                time_limit_s: float, workers: int, gap_limit: float
                ) -> tuple[dict[str, Option | None], int, int, str] | None:
    """CP-SAT on ``flows`` with residual ``rhs``: (choice, objective, bound, status)."""
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    terms: dict[Row, tuple[list[cp_model.IntVar], list[int]]] = {}
    ovars: list[cp_model.IntVar] = []
    ocoef: list[int] = []
    xs: dict[str, list[tuple[Option, cp_model.IntVar]]] = {}
    for f in flows:
        row = []
        u = m.new_bool_var("")
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
            h = hint.get(f.id)
            m.add_hint(x, 1 if h is not None and h == o else 0)
        m.add_hint(u, 1 if hint.get(f.id) is None else 0)
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
    solver.parameters.max_time_in_seconds = max(0.1, time_limit_s)
    solver.parameters.num_workers = workers
    solver.parameters.relative_gap_limit = gap_limit
    st = solver.solve(m)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    choice = {f.id: next((o for o, x in xs[f.id] if solver.value(x)), None) for f in flows}
    return (choice, round(solver.objective_value), math.floor(solver.best_objective_bound),
            solver.status_name(st).lower())
