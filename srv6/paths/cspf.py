"""Constrained shortest path first (CSPF) for one SR policy, pure.

Rules:
- Input is a ``Topology``, the two ends and ``Constraints``; output is a ``PathResult``.
  Expected failures (infeasible constraints) are a result with ``ok=False`` and
  ``failed_constraint`` naming the constraint; malformed input (unknown node, unknown
  link, unknown ``disjoint_from`` policy) raises ``ValidationError``.
- Prunable constraints (exclude nodes/links/SRLGs, affinity, min bandwidth on the
  residual after ``reserved``, ``disjoint_from``) remove edges; the path minimises
  ``constraints.metric`` on what is left. When nothing connects the ends, the
  constraints are re-applied one by one in that order and the first one that cuts the
  ends apart is named.
- The metric-shortest path is a bidirectional Dijkstra (``spf.bidir_shortest_path``).
- ``max_delay_ms`` is additive: if the metric-shortest path is too slow, the exact
  constrained search (``rcsp.delay_bounded``) returns the lowest-metric path within the
  bound, or the constraint is infeasible because even the lowest-delay path is too
  slow. Only past ``rcsp.MAX_LABELS`` labels does LARAC (Lagrangian relaxation,
  Jüttner et al. 2001) answer instead, and the reason says the path may not be the
  best. Never returns a path over the bound.
- The segment list is the minimal one (``segments.minimal_segments``); a path needing
  more than ``max_sid_depth`` SIDs fails naming ``max_sid_depth``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv6Address
from operator import and_
from typing import Any

import numpy as np

from controller.errors import ValidationError
from srv6.models import Constraints, PathResult, SegmentList
from srv6.paths.rcsp import LabelLimit, delay_bounded
from srv6.paths.segments import SegmentError, minimal_segments
from srv6.paths.spf import Path, bidir_shortest_path, path_cost, reachable, shortest_path
from srv6.paths.topology import Topology

LARAC_ROUNDS = 24

Arr = np.ndarray[Any, Any]


def edge_filters(
    topo: Topology,
    c: Constraints,
    reserved: Mapping[str, float] | None = None,
    existing: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, list[bool]]]:
    """Per-constraint edge masks, in the order failures are reported."""
    return [(name, m.tolist()) for name, m in edge_masks(topo, c, reserved, existing)]


def edge_masks(
    topo: Topology,
    c: Constraints,
    reserved: Mapping[str, float] | None = None,
    existing: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, Arr]]:
    """``edge_filters`` as numpy boolean arrays (vectorised: a query on 80,000 links
    costs tens of microseconds here, not a Python loop over every link)."""
    for link in c.exclude_links:
        if link not in topo.edge_by_key and link not in topo.down_links:
            raise ValidationError.single("constraints.exclude_links",
                                         f"unknown link {link!r}")
    edges = topo.edges
    m = len(edges)
    out: list[tuple[str, Arr]] = []
    if c.exclude_links:
        mask = np.ones(m, dtype=bool)
        for key in c.exclude_links:
            if key in topo.edge_by_key:
                mask[topo.edge_by_key[key]] = False
        out.append(("exclude_links", mask))
    if c.exclude_srlgs:
        mask = np.ones(m, dtype=bool)
        for g in c.exclude_srlgs:
            mask[topo.srlg_edges.get(g, [])] = False
        out.append(("exclude_srlgs", mask))
    if c.include_any or c.include_all or c.exclude_any:
        any_, all_, ex = frozenset(c.include_any), frozenset(c.include_all), \
            frozenset(c.exclude_any)
        out.append(("affinity", np.fromiter(
            ((not any_ or bool(e.colors & any_)) and all_ <= e.colors
             and not (e.colors & ex) for e in edges), dtype=bool, count=m)))
    if c.min_bandwidth_mbps > 0:
        avail = _available(topo)
        if reserved:
            avail = avail.copy()
            for key, mbps in reserved.items():
                eid = topo.edge_by_key.get(key)
                if eid is not None:
                    avail[eid] -= mbps
        out.append(("min_bandwidth_mbps", avail >= c.min_bandwidth_mbps))
    if c.disjoint_from is not None:
        if existing is None or c.disjoint_from not in existing:
            raise ValidationError.single(
                "constraints.disjoint_from", f"unknown policy {c.disjoint_from!r}",
                "name an existing policy key headend~color~endpoint")
        used = {topo.edge_by_key[k] for k in existing[c.disjoint_from]
                if k in topo.edge_by_key}
        risk: frozenset[str] = frozenset().union(*(edges[e].srlgs for e in used))
        mask = np.ones(m, dtype=bool)
        mask[sorted(used)] = False
        for g in risk:
            mask[topo.srlg_edges.get(g, [])] = False
        out.append(("disjoint_from", mask))
    return out


def _available(topo: Topology) -> Arr:
    got = topo.cache.get("available")
    if not isinstance(got, np.ndarray):
        got = np.fromiter((e.available_mbps for e in topo.edges), np.float64,
                          len(topo.edges))
        topo.cache["available"] = got
    return got


def prepare(topo: Topology) -> None:
    """Build, once per topology version, what every query of it shares (the CSR, the
    IGP and delay weight arrays, the links' ends, the IGP matrix of the segment check, the
    available bandwidth). Optional: each is otherwise built by the first query that
    needs it; a controller that keeps a topology warm calls this when it builds one
    (a link change is a new ``Topology``, so a new ``prepare``)."""
    from srv6.paths import rcsp

    for metric in ("igp", "delay"):
        rcsp.weight_array(topo, metric)
    rcsp.edge_ends(topo)
    rcsp.igp_matrix(topo)
    rcsp.row_ptr(topo)
    _available(topo)


def combine(masks: Sequence[list[bool]]) -> list[bool] | None:
    if not masks:
        return None
    out = masks[0]
    for mask in masks[1:]:
        out = list(map(and_, out, mask))
    return out


def banned_nodes(topo: Topology, c: Constraints) -> set[int]:
    return {topo.node(name, "constraints.exclude_nodes") for name in c.exclude_nodes}


def compute_path(
    topo: Topology,
    headend: str,
    endpoint: str,
    constraints: Constraints | None = None,
    *,
    reserved: Mapping[str, float] | None = None,
    existing: Mapping[str, Sequence[str]] | None = None,
    final_sid: IPv6Address | None = None,
    with_segments: bool = True,
) -> PathResult:
    c = constraints or Constraints()
    src, dst = topo.node(headend, "headend"), topo.node(endpoint, "endpoint")
    if src == dst:
        raise ValidationError.single("endpoint", f"headend and endpoint are both {headend!r}")
    ban = banned_nodes(topo, c)
    fail = Fail(headend, endpoint)
    for end, name in ((src, headend), (dst, endpoint)):
        if end in ban:
            return fail("exclude_nodes", f"{name} itself is in exclude_nodes")
    masks = edge_masks(topo, c, reserved, existing)
    mask_np = np.logical_and.reduce([m for _, m in masks]) if masks else None
    mask: list[bool] | None = mask_np.tolist() if mask_np is not None else None
    metric = topo.weights(c.metric)
    found = bidir_shortest_path(topo, metric, src, dst, edge_ok=mask, banned_nodes=ban)
    if found is None:
        filters = [(name, m.tolist()) for name, m in masks]
        return name_cut(topo, src, dst, ban, filters, fail)
    why = f"shortest by {c.metric} metric meeting every constraint"
    if c.max_delay_ms is not None:
        delay_w = topo.weights("delay")
        bound = c.max_delay_ms
        if path_cost(delay_w, found[1]) > bound:
            try:
                exact, best_delay = delay_bounded(
                    topo, metric, delay_w, src, dst, mask, mask_np, ban, bound, c.metric,
                    cheapest=path_cost(metric, found[1]))
            except LabelLimit as exc:
                got, why = _delay_bounded(topo, metric, delay_w, src, dst, mask, ban,
                                          bound, found)
                why += (f"; the exact search stopped at {exc.args[0]} labels, so this "
                        "path may not be the lowest-metric one within the bound")
            else:
                if exact is None:
                    return fail("max_delay_ms", (
                        f"the lowest-delay path from {headend} to {endpoint} takes "
                        f"{best_delay:.3f} ms > max_delay_ms {bound:g}"))
                got, why = exact, (f"lowest {c.metric} metric path within max_delay_ms "
                                   f"{bound:g} (exact constrained search)")
            if got is None:
                return fail("max_delay_ms", why)
            found = got
    return build_result(topo, found, c, headend, endpoint, reserved, why, final_sid,
                   with_segments)


class Fail:
    def __init__(self, headend: str, endpoint: str) -> None:
        self.headend, self.endpoint = headend, endpoint

    def __call__(self, constraint: str, reason: str) -> PathResult:
        return PathResult(ok=False, headend=self.headend, endpoint=self.endpoint,
                          failed_constraint=constraint, reason=reason)


def name_cut(topo: Topology, src: int, dst: int, ban: set[int],
              filters: list[tuple[str, list[bool]]], fail: Fail) -> PathResult:
    a, b = topo.names[src], topo.names[dst]
    if not reachable(topo, src, dst, None):
        return fail("connectivity", f"no up links connect {a} to {b}")
    if ban and not reachable(topo, src, dst, None, ban):
        return fail("exclude_nodes", f"without the excluded nodes {a} cannot reach {b}")
    masks: list[list[bool]] = []
    for name, m in filters:
        masks.append(m)
        if not reachable(topo, src, dst, combine(masks), ban):
            return fail(name, f"the links left after applying {name} (with the constraints "
                              f"before it) do not connect {a} to {b}")
    return fail("connectivity", f"no path from {a} to {b}")  # pragma: no cover


def _delay_bounded(topo: Topology, metric: list[float], delay_w: list[float], src: int,
                   dst: int, mask: list[bool] | None, ban: set[int], bound: float,
                   cheap: Path) -> tuple[Path | None, str]:
    fast = shortest_path(topo, delay_w, src, dst, edge_ok=mask, banned_nodes=ban)
    assert fast is not None  # same graph as ``cheap``
    best_delay = path_cost(delay_w, fast[1])
    if best_delay > bound:
        return None, (f"the lowest-delay path from {topo.names[src]} to {topo.names[dst]} "
                      f"takes {best_delay:.3f} ms > max_delay_ms {bound:g}")
    # LARAC: ``cheap`` violates the bound, ``fast`` meets it; move λ between them.
    for _ in range(LARAC_ROUNDS):
        c_c, d_c = path_cost(metric, cheap[1]), path_cost(delay_w, cheap[1])
        c_f, d_f = path_cost(metric, fast[1]), path_cost(delay_w, fast[1])
        if d_c <= d_f:
            break
        lam = (c_f - c_c) / (d_c - d_f)
        mixed = [m + lam * d for m, d in zip(metric, delay_w, strict=True)]
        got = shortest_path(topo, mixed, src, dst, edge_ok=mask, banned_nodes=ban)
        assert got is not None
        lagr = path_cost(mixed, got[1])
        if abs(lagr - (c_c + lam * d_c)) < 1e-9 or got[1] in (cheap[1], fast[1]):
            break
        if path_cost(delay_w, got[1]) <= bound:
            fast = got
        else:
            cheap = got
    return fast, f"lowest-metric path found within max_delay_ms {bound:g} (LARAC)"


def build_result(topo: Topology, path: Path, c: Constraints, headend: str, endpoint: str,
            reserved: Mapping[str, float] | None, why: str, final_sid: IPv6Address | None,
            with_segments: bool) -> PathResult:
    nodes, edges = path
    res = reserved or {}
    delay = path_cost(topo.weights("delay"), edges)
    hops = [topo.names[u] for u in nodes]
    out = PathResult(
        ok=True, headend=headend, endpoint=endpoint, hops=hops,
        links=[topo.edges[e].key for e in edges], delay_ms=round(delay, 6),
        igp_metric=sum(topo.edges[e].igp for e in edges),
        min_available_mbps=min(topo.edges[e].available_mbps - res.get(topo.edges[e].key, 0.0)
                               for e in edges),
        reason=why)
    if not with_segments:
        return out
    try:
        segs = minimal_segments(topo, nodes, edges, max_sid_depth=c.max_sid_depth,
                                final_sid=final_sid)
    except SegmentError as exc:
        return out.model_copy(update={"ok": False, "failed_constraint": exc.constraint,
                                      "reason": str(exc)})
    out.segment_list = SegmentList(sids=[s.sid for s in segs], hops=hops, links=out.links,
                                   delay_ms=out.delay_ms)
    out.segment_hops = [topo.names[s.node] if s.edge is None
                        else f"{topo.names[s.node]} via {topo.edges[s.edge].key}"
                        for s in segs]
    return out
