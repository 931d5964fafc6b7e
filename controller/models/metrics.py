"""Compute metrics as the controller knows them (draft-ietf-cats-metric-definition).

Rules:
- One ``ComputeMetrics`` record per (site, service); ``service`` is ``*`` for
  site-wide metrics. It is written by the telemetry ingest (site agent reports,
  BGP updates) and read by DNS, the scheduler and the labs.
- ``l0`` holds raw values with units in their names (``cpu_pct``, ``mem_pct``,
  ``gpu_free``, ``util_pct``, ``queue_depth``, ``energy_w``, ``price_per_hour``,
  ``delay_ms`` …). ``l1`` holds the normalised categories ``compute_norm``,
  ``communication_norm``, ``service_norm`` (each 0–1, 1 = best). ``l2`` is the one
  score 0–10 (10 = best).
- ``overloaded`` is the hysteresis state (e.g. set above 85 %, cleared below
  70 %). ``stale`` is set when no update came within 3 declared periods; a stale
  or unavailable record is excluded from planning.
- ``available=False`` means the service contact instance at this site must not
  be used (BGP withdraw, agent says service down).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import Field

from controller.models.base import Entity, Name, register
from controller.models.job import utcnow


@register
class ComputeMetrics(Entity):
    """Fields: ``site``, ``service`` (``*`` = site-wide), ``l0``, ``l1``, ``l2`` (0–10),
    ``overloaded``, ``available``, ``stale``, ``source`` (``agent`` / ``bgp`` / …),
    ``period_s`` (declared update period, R14), ``window_s`` (measurement window),
    ``updated_at``."""

    KIND = "metrics"
    site: Name
    service: str = "*"
    l0: dict[str, float] = Field(default_factory=dict)
    l1: dict[str, float] = Field(default_factory=dict)
    l2: float = Field(default=0.0, ge=0, le=10)
    overloaded: bool = False
    available: bool = True
    stale: bool = False
    source: str = "agent"
    period_s: float = Field(default=10.0, gt=0)
    window_s: float = Field(default=10.0, gt=0)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def key(self) -> str:
        return f"{self.site}/{self.service}"

    @property
    def usable(self) -> bool:
        """May planning use this record?"""
        return self.available and not self.stale


def metrics_by_site(metrics: Sequence[ComputeMetrics], service: str) -> dict[str,
                                                                            ComputeMetrics]:
    """site → the ``service``-specific record, else that site's site-wide (``*``) one."""
    out: dict[str, ComputeMetrics] = {}
    for m in metrics:
        if m.service == "*":
            out.setdefault(m.site, m)
    for m in metrics:
        if m.service == service:
            out[m.site] = m
    return out
