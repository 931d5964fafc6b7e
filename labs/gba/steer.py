"""SR paths from the client to each job's site, honouring GBA-5.2 interconnect order.

Rules:
- Pure: ``Link``/``Site`` lists in (fetched through REST by the lab), ``PathResult``s out;
  path computation is ``srv6.paths.compute_path`` (CSPF, minimal segment list).
- Node SIDs come from each site's ``locator`` (``examples/gba.yaml`` gives every site
  gateway one); End SIDs are function 1.
- GBA-5.2: the endpoint site's preference order (hubs OTN > IP-private > Internet,
  other sites IP-private > OTN > Internet) is tried tier by tier: first only its best
  kind, then the best two, then all; within a tier the least-delay path wins. The tier
  used is reported, so an Internet fallback is visible.
- Headend == endpoint: no SR path is needed (``local``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.models import Link, Site, interconnect_preference
from srv6.models import Constraints, PathResult
from srv6.paths import Topology, compute_path


def topology(links: Sequence[Link], sites: Sequence[Site]) -> Topology:
    return Topology.build(links, (), sites)


def steer(links: Sequence[Link], sites: Sequence[Site], client: str,
          site: str) -> dict[str, Any]:
    """The SR path ``client`` → ``site`` under GBA-5.2 preference, as a report row."""
    if client == site:
        return {"ok": True, "local": True, "headend": client, "endpoint": site,
                "hops": [client], "segment_list": [], "delay_ms": 0.0,
                "allowed_kinds": [], "interconnects": []}
    kinds = {s.name: s.kind for s in sites}
    pref = [k.value for k in interconnect_preference(kinds[site])]
    topo = topology(links, sites)
    last: PathResult | None = None
    for n in range(1, len(pref) + 1):
        allowed = pref[:n]
        banned = [ln.key for ln in links if ln.kind.value not in allowed]
        res = compute_path(topo, client, site,
                           Constraints(metric="delay", exclude_links=banned))
        last = res
        if res.ok:
            return _row(res, links, allowed, tier=n)
    assert last is not None
    return {**_row(last, links, pref, tier=len(pref)), "ok": False}


def _row(res: PathResult, links: Sequence[Link], allowed: list[str],
         tier: int) -> dict[str, Any]:
    kind_of = {ln.key: ln.kind.value for ln in links}
    sl = res.segment_list
    return {"ok": res.ok, "local": False, "headend": res.headend, "endpoint": res.endpoint,
            "hops": res.hops, "links": res.links,
            "interconnects": [kind_of.get(k, "?") for k in res.links],
            "delay_ms": round(res.delay_ms, 3), "tier": tier, "allowed_kinds": allowed,
            "segment_list": [str(s) for s in sl.sids] if sl is not None else [],
            "reason": res.reason or res.failed_constraint or ""}


def delays_from(links: Sequence[Link], sites: Sequence[Site],
                client: str) -> tuple[dict[str, float], dict[str, int]]:
    """Least path delay from ``client`` to every site (any interconnect), and the
    GBA-5.2 rank of that path for the site (0 = its most preferred kind is the worst
    kind on the path; the client itself ranks 0)."""
    topo = topology(links, sites)
    kind_of = {ln.key: ln.kind for ln in links}
    delays: dict[str, float] = {client: 0.0}
    ranks: dict[str, int] = {client: 0}
    for s in sites:
        if s.name == client:
            continue
        res = compute_path(topo, client, s.name, Constraints(metric="delay"))
        if res.ok:
            delays[s.name] = res.delay_ms
            pref = interconnect_preference(s.kind)
            ranks[s.name] = max(pref.index(kind_of[k]) for k in res.links)
    return delays, ranks
