"""Path computation for SR policies (pure): topology graph, CSPF, k-shortest,
disjoint pairs, minimal segment lists and bandwidth reservations.

Rules: data in, ``PathResult`` out; no I/O. Expected infeasibility is a result naming
the failed constraint; malformed input is a ``ValidationError``.
"""

from __future__ import annotations

from srv6.paths.cspf import compute_path, prepare
from srv6.paths.ksp import disjoint_pair, k_shortest
from srv6.paths.reservations import Reservations
from srv6.paths.segments import Segment, SegmentError, minimal_segments
from srv6.paths.topology import Edge, Topology

__all__ = [
    "Edge",
    "Reservations",
    "Segment",
    "SegmentError",
    "Topology",
    "compute_path",
    "disjoint_pair",
    "k_shortest",
    "minimal_segments",
    "prepare",
]
