"""Stored objects the NETCONF northbound adds to the state store.

Rules:
- ``SchedulerSettings`` is the scheduling-policy configuration committed over NETCONF
  (``/cpn/scheduler``): one object (key ``scheduler``) holding a validated
  ``scheduler.profiles.SchedulerConfig``. Stored — so it is journaled with the NETCONF
  user and survives restarts like every other configuration. While none is stored the
  ``scheduler:`` section of the config file is the running value; once committed it
  overrides that section until it is deleted again (``<scheduler operation="delete">``).
"""

from __future__ import annotations

from typing import Literal

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
