"""Rank a service's contact instances for one client (GBA-6.4, GBA-6.5f QoS-first).

Rules:
- Pure: data in, ranked ``Candidate`` list out; no store, no I/O.
- Path delay is the shortest-path delay (``srv6.paths.graph.delays_from`` on
  ``Link.delay_ms``, the product's one graph) over links that are up, from
  ``client_node`` (a router or site name) — or, when only ``client_region`` is known,
  from the nearest site/router in that region — to the instance's site. A router that
  belongs to a site is joined to it at 0 ms.
- An instance is ineligible when its metrics record is not usable (stale or
  unavailable), when it is ``overloaded``, when no up path reaches it, or when the
  path delay exceeds ``service.requirements.max_latency_ms``.
- Missing metrics make an instance eligible with a neutral compute term (0.5); an
  unknown client makes the delay term neutral (0.5). ``reasons`` says which.
- ``score`` is 0–100 (higher better) = sum of ``reasons`` (points per term).
- Order: eligible first, then score (desc), path delay (asc), site, address — so
  the answer is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from controller.models import ComputeMetrics, Link, Router, Service, Site
from controller.models.metrics import metrics_by_site
from srv6.paths.graph import delays_from, network_graph

#: The delay at which the delay term reaches 0 when the service declares no bound (ms).
DEFAULT_DELAY_REF_MS = 100.0
NEUTRAL = 0.5


@dataclass(frozen=True, slots=True)
class RankWeights:
    """Relative weights of the ranking terms (normalised to sum 1 at use).

    ``compute``: the L2 compute score (0–10 → 0–1); ``delay``: path delay relative to
    the service's bound; ``weight``: the instance's static weight (share of max)."""

    compute: float = 0.5
    delay: float = 0.4
    weight: float = 0.1

    def __post_init__(self) -> None:
        for name in ("compute", "delay", "weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"RankWeights.{name} must be >= 0")
        if self.compute + self.delay + self.weight <= 0:
            raise ValueError("RankWeights: at least one weight must be > 0")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ranked service contact instance.

    ``site``; ``address`` (unicast, str); ``score`` (0–100); ``l2`` (0–10 or None);
    ``path_delay_ms`` (None when unknown); ``reasons`` (points per term);
    ``eligible``; ``why_not`` (empty when eligible)."""

    site: str
    address: str
    score: float
    l2: float | None
    path_delay_ms: float | None
    reasons: dict[str, float] = field(default_factory=dict)
    eligible: bool = True
    why_not: str = ""


def _sources(client_node: str | None, client_region: str | None,
             sites: Sequence[Site], routers: Sequence[Router]) -> list[str]:
    if client_node:
        return [client_node]
    if client_region:
        found = [s.name for s in sites if s.region == client_region]
        found += [r.name for r in routers if r.region == client_region]
        return found
    return []


def rank_instances(
    service: Service,
    *,
    client_node: str | None,
    client_region: str | None,
    sites: Sequence[Site],
    routers: Sequence[Router],
    links: Sequence[Link],
    metrics: Sequence[ComputeMetrics],
    weights: RankWeights = RankWeights(),
) -> list[Candidate]:
    """Rank ``service``'s contact instances for a client, best first (see module rules)."""
    total_w = weights.compute + weights.delay + weights.weight
    w_compute = 100.0 * weights.compute / total_w
    w_delay = 100.0 * weights.delay / total_w
    w_weight = 100.0 * weights.weight / total_w

    sources = _sources(client_node, client_region, sites, routers)
    dist: dict[str, float] | None = None
    if sources:
        dist = delays_from(network_graph(links, routers), sources)
    bound = service.requirements.max_latency_ms
    ref = bound if bound is not None else DEFAULT_DELAY_REF_MS
    by_site = metrics_by_site(metrics, service.name)
    max_weight = max((i.weight for i in service.instances), default=0) or 1

    out: list[Candidate] = []
    for inst in service.instances:
        reasons: dict[str, float] = {}
        why: list[str] = []
        m = by_site.get(inst.site)
        l2: float | None = None
        if m is None:
            reasons["compute(no metrics: neutral)"] = w_compute * NEUTRAL
        else:
            l2 = m.l2
            reasons["compute"] = w_compute * (m.l2 / 10.0)
            if not m.available:
                why.append("metrics: service unavailable at site")
            elif m.stale:
                why.append("metrics: stale")
            if m.overloaded:
                why.append("site overloaded")
        delay: float | None = None
        if dist is None:
            reasons["delay(client unknown: neutral)"] = w_delay * NEUTRAL
        else:
            delay = dist.get(inst.site)
            if delay is None:
                reasons["delay"] = 0.0
                why.append(f"no up path from {','.join(sources)} to {inst.site}")
            else:
                reasons["delay"] = w_delay * max(0.0, 1.0 - delay / ref)
                if bound is not None and delay > bound:
                    why.append(f"path delay {delay:.3g} ms > max_latency_ms {bound:g}")
        reasons["weight"] = w_weight * (inst.weight / max_weight)
        score = min(100.0, max(0.0, sum(reasons.values())))
        out.append(Candidate(
            site=inst.site, address=str(inst.address), score=round(score, 6), l2=l2,
            path_delay_ms=delay, reasons=reasons, eligible=not why, why_not="; ".join(why),
        ))
    out.sort(key=lambda c: (
        not c.eligible, -c.score,
        c.path_delay_ms if c.path_delay_ms is not None else float("inf"),
        c.site, c.address,
    ))
    return out
