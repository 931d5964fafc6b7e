"""Built-in scheduling plug-ins and the default registry and profile (GBA-6.5f, WP-3.3.3).

Rules:
- ``default_registry()`` registers every built-in plug-in once; registering a name
  twice is refused by ``Registry``.
- ``DEFAULT_PLUGINS``/``DEFAULT_WEIGHTS`` are the default profile; config may
  replace them per queue or tenant (``scheduler.config``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scheduler.framework import Registry
from scheduler.plugins.affinity import AntiAffinity, ComputeAffinity
from scheduler.plugins.bursting import CloudBursting
from scheduler.plugins.core import (
    DefaultBinder,
    LeastLoaded,
    NodeReady,
    NodeResourcesFit,
    PreferAwake,
    Resources,
)
from scheduler.plugins.data import DataAware
from scheduler.plugins.gang import Gang
from scheduler.plugins.network import Interconnect, NetworkAware, QosFirst, Sla
from scheduler.plugins.policies import EnergyAware, LoadAware, Manual, PriceAware
from scheduler.plugins.preemption import Preemption
from scheduler.plugins.reservation import Reservation

BUILTIN: tuple[type, ...] = (
    NodeResourcesFit, NodeReady, Resources, DefaultBinder, LeastLoaded, PreferAwake,
    Manual, LoadAware, EnergyAware, PriceAware, NetworkAware, QosFirst, Sla,
    Interconnect, DataAware, ComputeAffinity, AntiAffinity, Preemption, Reservation,
    CloudBursting, Gang,
)

if TYPE_CHECKING:  # mypy checks each built-in against the interfaces it implements
    from scheduler.interface import (
        BatchFilterPlugin,
        BatchNormalizeScorePlugin,
        BatchScorePlugin,
        BindPlugin,
        PostFilterPlugin,
        PreFilterPlugin,
        ReservePlugin,
        ScorePlugin,
        WaitingPermitPlugin,
    )

    _PRE_FILTER: tuple[type[PreFilterPlugin], ...] = (
        ComputeAffinity, AntiAffinity, NodeResourcesFit, DataAware, Gang, NetworkAware,
        QosFirst, Sla, Interconnect, Manual, Reservation)
    _FILTER: tuple[type[BatchFilterPlugin], ...] = (
        ComputeAffinity, AntiAffinity, CloudBursting, NodeResourcesFit, NodeReady, DataAware,
        NetworkAware, Sla, Manual, Reservation)
    _POST_FILTER: tuple[type[PostFilterPlugin], ...] = (Preemption, Reservation)
    _SCORE: tuple[type[BatchScorePlugin], ...] = (
        ComputeAffinity, CloudBursting, LeastLoaded, PreferAwake, DataAware, NetworkAware,
        Sla, Interconnect)
    _SCORE_ONLY: tuple[type[ScorePlugin], ...] = (QosFirst, LoadAware)
    _NORMALIZE: tuple[type[BatchNormalizeScorePlugin], ...] = (EnergyAware, PriceAware)
    _RESERVE: tuple[type[ReservePlugin], ...] = (AntiAffinity, Resources, Gang, Reservation)
    _PERMIT: tuple[type[WaitingPermitPlugin], ...] = (Gang,)
    _BIND: tuple[type[BindPlugin], ...] = (DefaultBinder,)


def default_registry() -> Registry:
    reg = Registry()
    for cls in BUILTIN:
        reg.register(cls.name, cls)  # type: ignore[attr-defined]
    return reg


#: Default profile, in extension-point order (cheap filters first).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "manual", "node-resources-fit", "node-ready", "anti-affinity", "data-aware",
    "network-aware", "sla", "compute-affinity", "least-loaded", "prefer-awake",
    "cloud-bursting", "interconnect", "preemption", "reservation", "resources", "gang",
    "default-binder",
)
DEFAULT_WEIGHTS: dict[str, float] = {
    "least-loaded": 1.0, "prefer-awake": 1.0, "network-aware": 1.0, "sla": 1.0,
    "compute-affinity": 1.0, "data-aware": 1.0, "interconnect": 0.5,
    "cloud-bursting": 10.0,
}
