"""Telemetry models: the ``telemetry:`` config section, the site report payload and
the compute lifecycle record (WP-3.1.2, WP-3.1.4, GBA-6.3).

Rules:
- A ``Report`` is what a site agent sends (JSON over HTTPS with mutual TLS). Values
  carry units in their names; percentages are 0–100; ``seq`` increases per agent run.
  Unknown keys are refused (strict models), so a typo is an error, not silence.
- ``ComputeLifecycle`` is one record per admitted resource, keyed by its unique
  compute identifier: who issued the identity (CA fingerprint), which site/resource,
  when onboarded, last seen, current state and its history of state changes.
- ``TelemetrySection`` configures the controller's mTLS ingest server; all paths are
  files in PEM form.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field

from controller.models.base import Entity, Model, Name, register
from controller.models.job import utcnow
from telemetry.cats import CatsConfig
from telemetry.grading import Benchmark


class ResourceSample(Model):
    """One resource value from the unified model (WP-3.1.3): ``name``, ``value``
    (numeric, in the resource's unit), ``extended`` (free-form attributes)."""

    name: Name
    value: float = Field(allow_inf_nan=False)
    extended: dict[str, Any] = Field(default_factory=dict)


class ServiceLoad(Model):
    """Service-level load reported by the local service: ``util_pct`` (0–100),
    ``queue_depth`` (requests waiting), ``up`` (False = do not send traffic here)."""

    service: Name
    util_pct: float = Field(ge=0, le=100, allow_inf_nan=False)
    queue_depth: int = Field(default=0, ge=0)
    up: bool = True


class Report(Model):
    """A site agent report (GBA-6.3). ``cpu_pct``/``mem_pct`` (0–100), ``load1``,
    ``gpu_free`` (cards), ``energy_w`` (W), ``price_per_hour`` (currency per
    resource-hour), ``interval_s`` (declared update period, R14), ``seq``, ``sent_at``
    (agent clock, UTC), ``reason`` (``periodic`` / ``threshold`` / ``start``)."""

    site: Name
    seq: int = Field(ge=0)
    sent_at: datetime
    interval_s: float = Field(default=10.0, gt=0, le=3600)
    reason: str = Field(default="periodic", max_length=32)
    cpu_pct: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    mem_pct: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    load1: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    gpu_free: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    energy_w: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    price_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    resources: list[ResourceSample] = Field(default_factory=list, max_length=1024)
    services: list[ServiceLoad] = Field(default_factory=list, max_length=1024)
    #: a compute benchmark measured on the node since the last delivered report
    #: (WP-3.1.5 grading; ``telemetry.grading``)
    benchmark: Benchmark | None = None


class LifecycleState(StrEnum):
    ONLINE = "online"
    STALE = "stale"
    REVOKED = "revoked"


class LifecycleEvent(Model):
    at: datetime
    state: LifecycleState
    note: str = ""


@register
class ComputeLifecycle(Entity):
    """Lifecycle of one admitted resource (WP-3.1.4). Fields: ``compute_id`` (key,
    UUIDv5), ``site``, ``resource``, ``ca_fingerprint`` (issuer, SHA-256 hex),
    ``onboarded_at``, ``last_seen``, ``state``, ``history`` (last 32 state changes)."""

    KIND = "compute-lifecycle"
    compute_id: str = Field(min_length=36, max_length=36)
    site: Name
    resource: Name
    ca_fingerprint: str
    onboarded_at: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    state: LifecycleState = LifecycleState.ONLINE
    history: list[LifecycleEvent] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return self.compute_id


class TelemetrySection(Model):
    """``telemetry:`` config: the mTLS ingest server.

    ``listen`` (``host:port``); ``ca_bundle`` (PEM of every CA whose site certificates
    are admitted — ours from ``cpn ca init`` or a third party's); ``server_cert`` /
    ``server_key``; ``crl`` (CRL files, re-read when they change); ``revoked`` (extra
    revoked serial numbers, hex); ``stale_after_periods`` (3); ``flush_ms`` (write
    coalescing window); ``check_s`` (staleness check period); ``cats`` (L0→L1→L2
    normalisation and the overload hysteresis: ``overload_keys``, ``overload_on_pct``,
    ``overload_off_pct`` …; ``telemetry.cats.CatsConfig``)."""

    listen: str = "127.0.0.1:8443"
    ca_bundle: Path
    server_cert: Path
    server_key: Path
    crl: list[Path] = Field(default_factory=list)
    revoked: list[str] = Field(default_factory=list)
    stale_after_periods: float = Field(default=3.0, gt=0)
    flush_ms: float = Field(default=20.0, ge=0, le=5000)
    check_s: float = Field(default=1.0, gt=0, le=600)
    probes: list[ProbePeer] = Field(default_factory=list)
    probe_listen: str | None = None
    cats: CatsConfig = Field(default_factory=CatsConfig)

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


class ProbePeer(Model):
    """A link probe target: ``link`` (the ``Link`` key to update), ``peer``
    (``host:port`` of its probe responder), ``interval_ms``, ``timeout_ms`` (a probe
    unanswered this long is lost), ``window`` (decided probes kept)."""

    link: str
    peer: str
    interval_ms: float = Field(default=100, ge=5, le=60_000)
    timeout_ms: float = Field(default=500, ge=1, le=60_000)
    window: int = Field(default=50, ge=2, le=10_000)


TelemetrySection.model_rebuild()
