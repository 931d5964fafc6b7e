"""What the web console shows of flow steering (GBA-6.7 visualisation).

Rules:
- ``flows_view(store)`` lists every ``FlowSteering`` record: where the service's flows
  are steered now, why (the decision's reason and inputs), and the path as topology
  nodes, for the console to draw.
- A path is drawn from the segment list: each SID belongs to the router (or site)
  whose SRv6 locator holds it (RFC 8986); the headend starts the path and the steered
  site ends it, reached through a router linked to both when the last hop is not
  linked to the site itself. SIDs nobody owns are skipped, never invented.
- Registered by ``srv6.plugin_dataplane`` as the console's ``flows`` view provider
  (the controller does not import this package).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv6Address, ip_address
from typing import Any

from controller.models import Link, Router, Site
from srv6.flows import FlowSteering


def flow_path(f: FlowSteering, routers: Sequence[Router], sites: Sequence[Site],
              links: Sequence[Link]) -> list[str]:
    """Topology nodes a steered flow crosses, headend first, site last."""
    path = [f.headend]
    owners: list[tuple[Any, str]] = [(r.locator, r.name) for r in routers if r.locator]
    owners += [(s.locator, s.name) for s in sites if s.locator]
    for sid in f.segments:
        try:
            addr = ip_address(sid)
        except ValueError:
            continue
        if not isinstance(addr, IPv6Address):
            continue
        hit = next((name for net, name in owners if addr in net), None)
        if hit is not None and hit != path[-1]:
            path.append(hit)
    if f.site and f.site != path[-1]:
        linked = {(lk.a, lk.b) for lk in links} | {(lk.b, lk.a) for lk in links}
        if (path[-1], f.site) not in linked:
            gw = next((r.name for r in routers if r.site == f.site
                       and (path[-1], r.name) in linked), None)
            if gw is None:
                gw = next((r.name for r in routers if (r.name, f.site) in linked
                           and (path[-1], r.name) in linked), None)
            if gw is not None and gw != path[-1]:
                path.append(gw)
        path.append(f.site)
    return path


def flows_view(store: Any) -> list[dict[str, Any]]:
    routers: list[Router] = store.list(Router)
    sites: list[Site] = store.list(Site)
    links: list[Link] = store.list(Link)
    return [{"id": f.key, "service": f.service, "headend": f.headend, "site": f.site,
             "previous_site": f.previous_site, "reason": f.reason, "segments": f.segments,
             "inputs": f.inputs, "decided_at": f.decided_at.isoformat(),
             "committed": f.committed, "program_ms": f.program_ms,
             "path": flow_path(f, routers, sites, links)}
            for f in store.list(FlowSteering)]
