"""Elastic scaling of service replicas by load (WP-3.3.3), HPA-style, pure.

Rules:
- desired = ceil(current × load / target), clamped to [min, max]; inside the
  tolerance band (|load/target − 1| ≤ tolerance) nothing changes.
- Scale-down is stabilised: the decision is the highest desired value over the
  last ``window`` recommendations, so a brief dip does not remove replicas.
- Load per service is the mean ``util_pct`` (or ``cpu_pct``) over the usable
  ``ComputeMetrics`` of its sites; an overloaded site counts as 100 %.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from controller.models import ComputeMetrics, Service


@dataclass(slots=True)
class ScalePolicy:
    target_pct: float = 60.0
    min_replicas: int = 1
    max_replicas: int = 100
    tolerance: float = 0.1
    window: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.target_pct <= 100:
            raise ValueError("ScalePolicy.target_pct must be in (0, 100]")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError("ScalePolicy: need 1 <= min_replicas <= max_replicas")


def desired_replicas(current: int, load_pct: float, p: ScalePolicy) -> int:
    if current < 1:
        return p.min_replicas
    ratio = load_pct / p.target_pct
    if abs(ratio - 1.0) <= p.tolerance:
        return max(p.min_replicas, min(p.max_replicas, current))
    return max(p.min_replicas, min(p.max_replicas, math.ceil(current * ratio - 1e-9)))


def service_load(service: Service, metrics: Sequence[ComputeMetrics]) -> float | None:
    sites = {i.site for i in service.instances}
    vals = []
    for m in metrics:
        if m.site in sites and m.service in (service.name, "*") and m.usable:
            if m.overloaded:
                vals.append(100.0)
            elif "util_pct" in m.l0 or "cpu_pct" in m.l0:
                vals.append(m.l0.get("util_pct", m.l0.get("cpu_pct", 0.0)))
    return sum(vals) / len(vals) if vals else None


@dataclass(slots=True)
class Autoscaler:
    """Keeps the recommendation history per service for scale-down stabilisation."""

    policy: ScalePolicy = field(default_factory=ScalePolicy)
    history: dict[str, deque[int]] = field(default_factory=dict)

    def recommend(self, service: Service, metrics: Sequence[ComputeMetrics]) -> int:
        current = max(1, len(service.instances))
        load = service_load(service, metrics)
        want = current if load is None else desired_replicas(current, load, self.policy)
        h = self.history.setdefault(service.name, deque(maxlen=self.policy.window))
        h.append(want)
        return want if want >= current else max(h)
