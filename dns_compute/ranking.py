"""Instance ranking for DNS answers: the scheduler's ranking, behind one function.

Rules:
- DNS does not score on its own: it uses ``scheduler.ranking.rank_instances`` (path
  delay from the client's node/region + compute L2 score, GBA-6.4 / GBA-6.5f), so the
  answer a client gets and the placement the scheduler would make agree.
- ``rank`` is the one seam the zone builder calls; swap it here, nowhere else.
- A placement is stronger than the ranking (issue 14: DNS answers follow placements):
  ``placement_of`` turns a stored ``SchedulingDecision`` into a ``Placement`` when it
  placed something of a service (``service``) from an ``origin`` at a site and its
  network part has not failed (a ``failed`` network part is not half-applied through
  DNS); ``placed_first`` puts the placed site's instances first, eligible, for the
  clients behind that origin. When the placement is released (decision deleted, job
  no longer running) the ranking answers again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from controller.models import ComputeMetrics, Link, Router, Service, Site
from dns_compute.models import Placement
from scheduler.decisions import SchedulingDecision
from scheduler.ranking import Candidate, rank_instances

__all__ = ["Candidate", "placed_first", "placement_of", "rank"]


def rank(service: Service, *, client_node: str | None, client_region: str | None,
         sites: Sequence[Site], routers: Sequence[Router], links: Sequence[Link],
         metrics: Sequence[ComputeMetrics]) -> list[Candidate]:
    """Rank ``service``'s instances for a client, best first (eligible first)."""
    return rank_instances(service, client_node=client_node, client_region=client_region,
                          sites=sites, routers=routers, links=links, metrics=metrics)


def placement_of(dec: SchedulingDecision) -> Placement | None:
    """The placement DNS follows for ``dec``, or None (see the module rules; whether a
    job still holds its place is the caller's check)."""
    origin = dec.inputs.get("origin")
    if not (dec.site and dec.service and origin):
        return None
    if dec.network is not None and dec.network.state == "failed":
        return None
    at = dec.decided_at.timestamp() if isinstance(dec.decided_at, datetime) else 0.0
    return Placement(dec.subject_kind, dec.subject, dec.service, str(origin), dec.site, at)


def placed_first(ranked: Sequence[Candidate], site: str, key: str) -> list[Candidate]:
    """``ranked`` with the instances at ``site`` first, eligible (placement ``key``
    decided it), in their ranked order; the others follow unchanged."""
    placed = [replace(c, eligible=True, why_not="", reasons={**c.reasons, f"placed by {key}":
                                                            0.0})
              for c in ranked if c.site == site]
    return placed + [c for c in ranked if c.site != site]
