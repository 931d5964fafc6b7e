"""What the console draws, computed from the store (pure functions of stored objects).

Rules:
- ``overview`` is one JSON document for the page: sites, routers and links (kind,
  state, load), compute per site/service (CATS L0/L1/L2, overloaded, stale), where
  each service flow is steered now and why, with the path as topology nodes, and the
  BGP/telemetry sessions. It is read through the caller's token like every route.
- Parts that plugins own come from *view providers* registered in
  ``rt.console_views`` (name → function returning JSON-able items), e.g. ``flows``
  (where each flow is steered and its path, from ``srv6``); the controller never
  imports a plugin for them. A provider that fails is reported in ``errors`` and the
  rest of the page still draws.
- Link load is ``1 − available / capacity`` in %, or null when nothing measured it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from controller.models import ComputeMetrics, Link, Router, Service, Site


def link_json(lk: Link) -> dict[str, Any]:
    load = None if lk.available_mbps is None else \
        round(100.0 * (1 - lk.available_mbps / lk.capacity_mbps), 1)
    return {"id": lk.key, "a": lk.a, "b": lk.b, "kind": lk.kind.value,
            "state": lk.state.value, "load_pct": load, "delay_ms": lk.delay_ms,
            "loss_pct": lk.loss_pct, "available_mbps": lk.available,
            "capacity_mbps": lk.capacity_mbps}


def overview(store: Any, sessions: Sequence[Any] = (),
             views: Mapping[str, Callable[[], Any]] | None = None) -> dict[str, Any]:
    sites: list[Site] = store.list(Site)
    routers: list[Router] = store.list(Router)
    links: list[Link] = store.list(Link)
    services: list[Service] = store.list(Service)
    metrics: list[ComputeMetrics] = store.list(ComputeMetrics)
    out: dict[str, Any] = {
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
        "sessions": [{"kind": s.kind, "peer": s.peer, "state": s.state, "site": s.site,
                      "reason": s.reason, "ups": s.ups, "downs": s.downs} for s in sessions],
        "flows": [],
        "errors": {},
    }
    for name, fn in (views or {}).items():
        try:
            out[name] = fn()
        except Exception as exc:  # one broken provider must not blank the console
            out["errors"][name] = f"{type(exc).__name__}: {exc}"
    return out
