"""Why an SR policy intent does not take another path (pure; GBA-6.4.3c, issue 14).

Rules:
- The alternatives are the ``k`` cheapest loop-free paths by the intent's metric with no
  constraint applied (Yen), so every path an operator could think of first is judged.
- Each is checked against the intent's constraints in a fixed order and the first one
  it breaks is named: ``exclude_nodes``, then the edge constraints in
  ``srv6.paths.cspf.edge_filters`` order (``exclude_links``, ``exclude_srlgs`` →
  ``srlg``, ``affinity``, ``min_bandwidth_mbps`` → ``capacity``, ``disjoint_from`` →
  ``srlg``), then ``max_delay_ms`` → ``delay-bound``. A path that breaks none is
  ``cost`` (feasible, costlier than the active path) — or ``active``.
- ``existing``: policy key → link keys of the programmed paths (for ``disjoint_from``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from srv6.models import SrPolicyIntent
from srv6.paths.cspf import banned_nodes, edge_filters
from srv6.paths.ksp import yen_paths
from srv6.paths.spf import path_cost
from srv6.paths.topology import Topology

FAMILY = {"exclude_nodes": "compute-filter", "exclude_links": "exclude_links",
          "exclude_srlgs": "srlg", "affinity": "affinity",
          "min_bandwidth_mbps": "capacity", "disjoint_from": "srlg",
          "max_delay_ms": "delay-bound"}


def path_alternatives(topo: Topology, it: SrPolicyIntent, active: Sequence[str] | None,
                      existing: Mapping[str, Sequence[str]] | None = None,
                      k: int = 5) -> list[dict[str, Any]]:
    """One row per alternative path: hops, links, delay, metric cost, verdict."""
    c = it.constraints
    src, dst = topo.node(it.headend, "headend"), topo.node(it.endpoint, "endpoint")
    weight, delay_w = topo.weights(c.metric), topo.weights("delay")
    ban = banned_nodes(topo, c)
    try:
        filters = edge_filters(topo, c, None, existing)
    except Exception:  # disjoint_from names a policy that is not programmed: not judged
        filters = [f for f in edge_filters(topo, c.model_copy(update={"disjoint_from": None}))]
    out = []
    for nodes, edges in yen_paths(topo, weight, src, dst, None, set(), k):
        links = [topo.edges[e].key for e in edges]
        delay = path_cost(delay_w, edges)
        row: dict[str, Any] = {"hops": [topo.names[n] for n in nodes], "links": links,
                               "delay_ms": round(delay, 3),
                               "cost": round(path_cost(weight, edges), 3)}
        bad = [topo.names[n] for n in nodes if n in ban]
        broken = next((name for name, mask in filters if not all(mask[e] for e in edges)),
                      None)
        if list(links) == list(active or ()):
            row.update(verdict="active", why="the programmed path")
        elif bad:
            row.update(verdict=FAMILY["exclude_nodes"], constraint="exclude_nodes",
                       why=f"passes excluded node(s) {', '.join(bad)}")
        elif broken is not None:
            row.update(verdict=FAMILY.get(broken, broken), constraint=broken,
                       why=_edge_why(topo, broken, edges, it, existing))
        elif c.max_delay_ms is not None and delay > c.max_delay_ms + 1e-9:
            row.update(verdict="delay-bound", constraint="max_delay_ms",
                       why=f"delay {delay:g} ms > max_delay_ms {c.max_delay_ms:g}")
        else:
            row.update(verdict="cost", why=f"feasible; {c.metric} cost {row['cost']:g} is "
                                           "higher than the active path's")
        out.append(row)
    return out


def _edge_why(topo: Topology, name: str, edges: Sequence[int], it: SrPolicyIntent,
              existing: Mapping[str, Sequence[str]] | None) -> str:
    c = it.constraints
    es = [topo.edges[e] for e in edges]
    if name == "exclude_links":
        return "uses excluded link(s) " + ", ".join(e.key for e in es
                                                   if e.key in c.exclude_links)
    if name == "exclude_srlgs":
        hit = sorted({g for e in es for g in e.srlgs if g in c.exclude_srlgs})
        return f"shares excluded SRLG(s) {', '.join(hit)}"
    if name == "min_bandwidth_mbps":
        low = min(es, key=lambda e: e.available_mbps)
        return (f"link {low.key} has {low.available_mbps:g} Mbit/s available < "
                f"min_bandwidth_mbps {c.min_bandwidth_mbps:g}")
    if name == "disjoint_from":
        other = set((existing or {}).get(c.disjoint_from or "", ()))
        return (f"shares a link or SRLG with {c.disjoint_from} "
                f"({', '.join(e.key for e in es if e.key in other) or 'SRLG'})")
    return "link colours do not match the affinity constraints"
