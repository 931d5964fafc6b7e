"""What the console draws, computed from the store (pure functions of stored objects).

Rules:
- ``overview`` is one JSON document for the page: sites, routers and links (kind,
  state, load), compute per site/service (CATS L0/L1/L2, overloaded, stale), where
  each service flow is steered now and why, with the path as topology nodes, and the
  BGP/telemetry sessions. It is read through the caller's token like every route.
- A flow's path is drawn from its segment list: each SID belongs to the router (or
  site) whose SRv6 locator holds it (RFC 8986); the headend starts the path and the
  steered site ends it, joined through its gateway router when the site has one.
- Link load is ``1 − available / capacity`` in %, or null when nothing measured it.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv6Address, ip_address
from typing import Any

from controller.flows import FlowSteering
from controller.models import ComputeMetrics, Link, Router, Service, Site


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
            if gw is None:  # a router linked to the site and to the last hop
                gw = next((r.name for r in routers if (r.name, f.site) in linked
                           and (path[-1], r.name) in linked), None)
            if gw is not None and gw != path[-1]:
                path.append(gw)
        path.append(f.site)
    return path


def link_json(lk: Link) -> dict[str, Any]:
    load = None if lk.available_mbps is None else \
        round(100.0 * (1 - lk.available_mbps / lk.capacity_mbps), 1)
    return {"id": lk.key, "a": lk.a, "b": lk.b, "kind": lk.kind.value,
            "state": lk.state.value, "load_pct": load, "delay_ms": lk.delay_ms,
            "loss_pct": lk.loss_pct, "available_mbps": lk.available,
            "capacity_mbps": lk.capacity_mbps}


def overview(store: Any, sessions: Sequence[Any] = ()) -> dict[str, Any]:
    sites: list[Site] = store.list(Site)
    routers: list[Router] = store.list(Router)
    links: list[Link] = store.list(Link)
    services: list[Service] = store.list(Service)
    metrics: list[ComputeMetrics] = store.list(ComputeMetrics)
    flows: list[FlowSteering] = store.list(FlowSteering)
    return {
        "sites": [{"name": s.name, "kind": s.kind.value, "region": s.region,
                   "price_per_hour": s.price_per_hour} for s in sites],
        "routers": [{"name": r.name, "site": r.site,
                     "locator": str(r.locator) if r.locator else None} for r in routers],
        "links": [link_json(lk) for lk in links],
        "services": [{"name": s.name, "anycast": [str(a) for a in s.anycast],
                      "affinity": s.affinity.value,
                      "sites": sorted({i.site for i in s.instances})} for s in services],
        "compute": [{"site": m.site, "service": m.service, "l0": m.l0, "l1": m.l1,
                     "l2": m.l2, "overloaded": m.overloaded, "stale": m.stale,
                     "available": m.available, "source": m.source,
                     "updated_at": m.updated_at.isoformat()} for m in metrics],
        "flows": [{"id": f.key, "service": f.service, "headend": f.headend, "site": f.site,
                   "previous_site": f.previous_site, "reason": f.reason,
                   "segments": f.segments, "inputs": f.inputs,
                   "decided_at": f.decided_at.isoformat(), "committed": f.committed,
                   "program_ms": f.program_ms,
                   "path": flow_path(f, routers, sites, links)} for f in flows],
        "sessions": [{"kind": s.kind, "peer": s.peer, "state": s.state, "site": s.site,
                      "reason": s.reason, "ups": s.ups, "downs": s.downs} for s in sessions],
    }
