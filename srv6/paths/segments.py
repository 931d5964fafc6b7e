"""Minimal segment list for a computed path ("segment list compression"), pure.

Rules:
- Transit nodes forward by plain IGP shortest path (metric ``igp``, all up links).
  A stretch ``hops[i..j]`` needs no SID in between iff it is the *unique* IGP shortest
  path from ``hops[i]`` to ``hops[j]`` (equal-cost alternatives would ECMP-split the
  traffic off the computed path).
- From each position the list jumps to the furthest ``j`` that is expressible with a
  node SID of ``hops[j]``; if not even the next hop is (a link that IGP does not use,
  or equal-cost parallel links), an adjacency SID (End.X) of ``hops[i]`` over that link
  is used. Sub-paths of unique shortest paths are unique shortest paths, so reachable
  positions form an interval and the greedy furthest jump gives the fewest SIDs.
- The last SID is always one the endpoint owns: its node SID, or ``final_sid`` (e.g.
  its End.DX4 SID) in its place; after a final adjacency SID one is appended.
- A node or adjacency without a SID, or a list longer than ``max_sid_depth``, is a
  ``SegmentError`` naming it.
- A stretch's uniqueness is checked by ``rcsp.unique_prefix`` (a bidirectional check
  on two compiled distance fields of half the stretch's cost each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address

from srv6.paths.rcsp import HAVE_SCIPY
from srv6.paths.rcsp import unique_prefix as csr_unique_prefix
from srv6.paths.spf import unique_prefix
from srv6.paths.topology import Topology

#: ``(topo, path nodes, prefix IGP costs, i) -> largest j`` with ``nodes[i..j]`` the
#: unique IGP shortest path between its ends
UniqueFn = Callable[[Topology, Sequence[int], Sequence[float], int], int]


class SegmentError(Exception):
    """The path cannot be expressed; ``constraint`` names why."""

    def __init__(self, constraint: str, message: str) -> None:
        self.constraint = constraint
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Segment:
    """``node`` is where the segment ends; ``edge`` is set for an adjacency SID."""

    node: int
    edge: int | None
    sid: IPv6Address


def minimal_segments(
    topo: Topology,
    nodes: Sequence[int],
    edges: Sequence[int],
    *,
    max_sid_depth: int = 64,
    final_sid: IPv6Address | None = None,
    igp_weight: Sequence[float] | None = None,
    unique: UniqueFn | None = None,
) -> list[Segment]:
    # Default IGP weights: the bidirectional check on compiled distance fields
    # (``rcsp.unique_prefix``); custom weights: the ball-limited Python search
    # (``spf.unique_prefix``). ``unique`` replaces the former (benches compare engines).
    fast = igp_weight is None and HAVE_SCIPY
    check = unique or csr_unique_prefix
    weight = igp_weight if igp_weight is not None else topo.weights("igp")
    cum = [0.0]
    for e in edges:
        cum.append(cum[-1] + weight[e])
    last = len(nodes) - 1
    out: list[Segment] = []
    i = 0
    while i < last:
        j = (check(topo, nodes, cum, i) if fast
             else unique_prefix(topo, weight, nodes, cum, i))
        if j > i:
            sid = topo.node_sids.get(nodes[j])
            if j == last and final_sid is not None:
                sid = final_sid
            if sid is None:
                raise SegmentError(
                    "node_sid", f"node {topo.names[nodes[j]]} has no SRv6 locator/End SID")
            out.append(Segment(nodes[j], None, sid))
            i = j
        else:
            e = edges[i]
            adj = topo.adj_sids.get((nodes[i], e))
            if adj is None:
                raise SegmentError(
                    "adjacency_sid", f"{topo.names[nodes[i]]} has no End.X SID for link "
                    f"{topo.edges[e].key}, which the path needs")
            out.append(Segment(nodes[i + 1], e, adj))
            i += 1
        if out and out[-1].edge is not None and i == last:
            # The list must end on a SID the endpoint owns (RFC 8986 §4.1: an End.X
            # with Segments Left 0 would not deliver): its node SID or ``final_sid``.
            end_sid = final_sid if final_sid is not None else topo.node_sids.get(nodes[i])
            if end_sid is None:
                raise SegmentError(
                    "node_sid", f"node {topo.names[nodes[i]]} has no SRv6 locator/End SID")
            out.append(Segment(nodes[i], None, end_sid))
        if len(out) > max_sid_depth:
            raise SegmentError(
                "max_sid_depth",
                f"the path needs more than {max_sid_depth} SIDs (max_sid_depth); "
                "relax other constraints or raise the headend's SID depth")
    return out
