"""Instance ranking for DNS answers: the scheduler's ranking, behind one function.

Rules:
- DNS does not score on its own: it uses ``scheduler.ranking.rank_instances`` (path
  delay from the client's node/region + compute L2 score, GBA-6.4 / GBA-6.5f), so the
  answer a client gets and the placement the scheduler would make agree.
- ``rank`` is the one seam the zone builder calls; swap it here, nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.models import ComputeMetrics, Link, Router, Service, Site
from scheduler.ranking import Candidate, rank_instances

__all__ = ["Candidate", "rank"]


def rank(service: Service, *, client_node: str | None, client_region: str | None,
         sites: Sequence[Site], routers: Sequence[Router], links: Sequence[Link],
         metrics: Sequence[ComputeMetrics]) -> list[Candidate]:
    """Rank ``service``'s instances for a client, best first (eligible first)."""
    return rank_instances(service, client_node=client_node, client_region=client_region,
                          sites=sites, routers=routers, links=links, metrics=metrics)
