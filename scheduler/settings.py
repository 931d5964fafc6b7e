"""The stored scheduling policy (``SchedulerSettings``).

Rules:
- ``SchedulerSettings`` is the scheduling-policy configuration committed over NETCONF
  (``/cpn/scheduler``, mapped in ``scheduler.netconf``): one object (key ``scheduler``)
  holding a validated ``scheduler.profiles.SchedulerConfig``. Stored — so it is
  journaled with the NETCONF user and survives restarts like every other configuration.
  While none is stored the ``scheduler:`` section of the config file is the running
  value; once committed it overrides that section until it is deleted again
  (``<scheduler operation="delete">``).
- The kind registers when this module is imported; ``scheduler.registration`` imports it, so
  it is known before any store loads.
- The scheduler component follows it (``effective``): at start and on every committed
  change, from NETCONF or any other writer.
"""

from __future__ import annotations

from typing import Any, Literal

from controller.models.base import Entity, register
from scheduler.profiles import SchedulerConfig

SCHEDULER_KEY = "scheduler"


@register
class SchedulerSettings(Entity):
    """``config``: the scheduler section as committed over NETCONF."""

    KIND = "scheduler-config"
    name: Literal["scheduler"] = "scheduler"
    config: SchedulerConfig

    @property
    def key(self) -> str:
        return SCHEDULER_KEY


def file_config(cfg: Any) -> SchedulerConfig:
    """The config file's ``scheduler:`` section (``cfg``: a ``NetworkConfig`` or None)."""
    section = cfg.sections.get("scheduler") if cfg is not None else None
    return section if isinstance(section, SchedulerConfig) else SchedulerConfig()


def effective(store: Any, file_section: SchedulerConfig) -> SchedulerConfig:
    """The scheduling policy in force: the stored one, else the config file's section."""
    stored = store.get(SchedulerSettings, SCHEDULER_KEY)
    return stored.config if isinstance(stored, SchedulerSettings) else file_section
