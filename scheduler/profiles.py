"""Build plug-in profiles from the ``scheduler:`` config section (WP-3.3.1).

Rules:
- A profile lists plug-ins (name + args) and score weights; queues and tenants name
  the profile they use (tenant wins over queue; else ``default``).
- Unknown plug-ins, bad args and weights for plug-ins not in the profile are
  errors naming the profile, the plug-in and the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from controller.models.base import Strict
from scheduler.framework import Framework, Profile, Registry
from scheduler.plugins import DEFAULT_PLUGINS, DEFAULT_WEIGHTS, default_registry


class PluginRef(Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ProfileConfig(Strict):
    """``plugins`` (names or {name, args}) and ``weights`` (score plug-in → weight)."""

    plugins: list[str | PluginRef] = Field(
        default_factory=lambda: list[str | PluginRef](DEFAULT_PLUGINS))
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))


class QueueConfig(Strict):
    """A queue: ``weight`` (share of dispatch turns) and ``profile``."""

    weight: float = Field(default=1.0, gt=0)
    profile: str = "default"


class TenantQuotaConfig(Strict):
    """Quota-tree extras not in ``Tenant.quota``: ``lending_limit`` (resource → how much
    of its idle quota may be lent to siblings; absent = all) and ``profile``."""

    lending_limit: dict[str, float] = Field(default_factory=dict)
    profile: str | None = None


class SchedulerConfig(Strict):
    """The ``scheduler:`` section: ``profiles``, ``queues``, ``tenants``, ``queue_sort``
    (queue-sort plug-in: ``priority`` / ``fcfs`` / ``drf``), ``percentage_of_nodes``,
    ``interval_s`` (component cycle), ``cpsat_time_s`` (placement time limit),
    ``vectorise`` (numpy Filter/Score path; same results as the per-node path)."""

    profiles: dict[str, ProfileConfig] = Field(default_factory=dict)
    queues: dict[str, QueueConfig] = Field(default_factory=dict)
    tenants: dict[str, TenantQuotaConfig] = Field(default_factory=dict)
    queue_sort: str = "priority"
    percentage_of_nodes: float | None = Field(default=None, gt=0, le=100)
    interval_s: float = Field(default=1.0, gt=0)
    cpsat_time_s: float = Field(default=5.0, gt=0)
    vectorise: bool = True

    @model_validator(mode="after")
    def _buildable(self) -> SchedulerConfig:
        # Fail at config load (``cpn config check``), naming profile, plug-in and field,
        # rather than when the component starts.
        from scheduler.queueing import queue_sort

        queue_sort(self.queue_sort)
        Profiles(self)
        return self


def build_profile(name: str, cfg: ProfileConfig, registry: Registry | None = None) -> Profile:
    reg = registry or default_registry()
    plugins = []
    for ref in cfg.plugins:
        pname, args = (ref, {}) if isinstance(ref, str) else (ref.name, ref.args)
        try:
            plugins.append(reg.build(pname, args))
        except ValueError as exc:
            raise ValueError(f"scheduler profile {name!r}: {exc}") from None
    names = {p.name for p in plugins}
    for w, v in cfg.weights.items():
        if w not in names and w not in DEFAULT_WEIGHTS:
            raise ValueError(f"scheduler profile {name!r}: weight for plug-in {w!r} "
                             "which the profile does not list")
        if v < 0:
            raise ValueError(f"scheduler profile {name!r}: weight of {w!r} must be >= 0")
    return Profile(name, plugins, dict(cfg.weights))


class Profiles:
    """Frameworks by profile name; picks one per task (tenant → queue → default)."""

    def __init__(self, cfg: SchedulerConfig | None = None,
                 registry: Registry | None = None) -> None:
        self.cfg = cfg or SchedulerConfig()
        reg = registry or default_registry()
        profs = dict(self.cfg.profiles)
        profs.setdefault("default", ProfileConfig())
        for qname, q in self.cfg.queues.items():
            if q.profile not in profs:
                raise ValueError(f"scheduler queue {qname!r}: unknown profile {q.profile!r}")
        for tname, t in self.cfg.tenants.items():
            if t.profile is not None and t.profile not in profs:
                raise ValueError(f"scheduler tenant {tname!r}: unknown profile {t.profile!r}")
        self.frameworks = {n: Framework(build_profile(n, p, reg), self.cfg.percentage_of_nodes,
                                        self.cfg.vectorise)
                           for n, p in profs.items()}

    def for_task(self, tenant: str, queue: str, policy: str | None = None) -> Framework:
        if policy and policy in self.frameworks:
            return self.frameworks[policy]
        t = self.cfg.tenants.get(tenant)
        if t is not None and t.profile:
            return self.frameworks[t.profile]
        q = self.cfg.queues.get(queue)
        if q is not None:
            return self.frameworks[q.profile]
        return self.frameworks["default"]
