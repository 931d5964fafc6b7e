"""Agent configuration (YAML), validated strictly.

Rules:
- ``resources`` follow the unified resource model (WP-3.1.3): a static resource
  carries ``value``; a dynamic one carries ``acquisition_command`` and ``interval_s``
  (the command prints ``[value] [key=value …]`` and is killed if it runs longer
  than its interval).
- ``services`` name the services whose load the local service reports (see
  ``telemetry.agent.service_load``); ``service_load_udp`` is the local UDP port.
- ``thresholds``: a report is sent at once when any util (CPU % or a service's
  util %) rises to ``on_pct`` or more, or falls below ``off_pct`` after that.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from controller.errors import ValidationError, issues_from_pydantic
from controller.models.base import Model, Name


class AgentResource(Model):
    """One unified-model resource as the agent sees it (WP-3.1.3 fields)."""

    name: Name
    description: str = Field(min_length=1)
    dynamic: bool = False
    value: float | None = None
    acquisition_command: str | None = None
    interval_s: float | None = Field(default=None, gt=0, le=86400)
    extended: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _rules(self) -> AgentResource:
        if not self.dynamic and self.value is None:
            raise ValueError("a static resource needs value")
        if self.dynamic and (not self.acquisition_command or self.interval_s is None):
            raise ValueError("a dynamic resource needs acquisition_command and interval_s")
        return self


class AgentService(Model):
    """A local service whose load is reported: ``name``; ``load_file`` (optional file
    holding ``util_pct queue_depth``, re-read each collection)."""

    name: Name
    load_file: Path | None = None


class Thresholds(Model):
    on_pct: float = Field(default=85.0, ge=0, le=100)
    off_pct: float = Field(default=70.0, ge=0, le=100)

    @model_validator(mode="after")
    def _order(self) -> Thresholds:
        if self.off_pct > self.on_pct:
            raise ValueError("off_pct must be ≤ on_pct")
        return self


class AgentConfig(Model):
    """``site``; ``controller`` (``https://host:port``); ``cert``/``key`` (the site's
    client certificate from ``cpn ca issue``) and ``ca`` (CA that signed the
    controller's server cert); ``interval_s`` (declared report period, R14);
    ``thresholds``; ``resources``; ``services``; ``service_load_udp`` (port on
    127.0.0.1, or null); ``energy_w`` / ``price_per_hour`` (used when RAPL is absent /
    always); ``collectors`` (built-ins to run: cpu, mem, load, gpu, energy);
    (the controller's certificate must name the URL's host: ``cpn ca init
    --server-name``);
    ``probe_listen`` (``host:port`` where this site answers link probes);
    ``benchmark_s`` (CPU seconds of the grading benchmark run at start and every
    ``benchmark_every_s``; 0 = never, WP-3.1.5); ``node`` (name reported with the
    benchmark, default the host name); ``nice`` (scheduling priority the agent runs at,
    -20…19, null = inherited: a negative value lets a monitoring agent keep its report
    timing on a core its own site's workload saturates; needs CAP_SYS_NICE)."""

    site: Name
    controller: str = Field(pattern=r"^https://")
    cert: Path
    key: Path
    ca: Path
    interval_s: float = Field(default=10.0, gt=0, le=3600)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    resources: list[AgentResource] = Field(default_factory=list)
    services: list[AgentService] = Field(default_factory=list)
    service_load_udp: int | None = Field(default=None, ge=0, le=65535)
    energy_w: float | None = Field(default=None, ge=0)
    price_per_hour: float | None = Field(default=None, ge=0)
    probe_listen: str | None = None
    benchmark_s: float = Field(default=1.5, ge=0, le=60)
    benchmark_every_s: float = Field(default=3600.0, ge=60)
    node: str | None = None
    nice: int | None = Field(default=None, ge=-20, le=19)
    collectors: list[str] = Field(default_factory=lambda: ["cpu", "mem", "load", "gpu",
                                                             "energy"])


def load_agent_config(path: Path) -> AgentConfig:
    import pydantic

    from controller.yamlsafe import load_file

    try:
        data = load_file(path)
    except ValidationError as exc:
        raise ValidationError.single(str(path), f"cannot read agent config: {exc}") from None
    try:
        cfg = AgentConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(issues_from_pydantic(exc), source=str(path)) from None
    base = path.parent
    upd = {k: (base / getattr(cfg, k)) for k in ("cert", "key", "ca")
           if not getattr(cfg, k).is_absolute()}
    return cfg.model_copy(update=upd)
