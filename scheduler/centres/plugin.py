"""Plugin: the ``centres:`` config section, the dispatcher component, centre/result REST
routes and ``cpn jobs logs|results`` / ``cpn centres`` (GBA-6.3, GBA-6.5g, GBA-6.6).

Rules: cheap to import. Adapters are built once per runtime from ``centres.sites``
and shared by the dispatcher and the REST routes (``rt.settings.extra["centres"]``).
The dispatcher is leader-only (``leader_only = True``): in an HA pair only the
leader submits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controller.models import Model
from scheduler.centres.models import CentreConfig, CentresSection

if TYPE_CHECKING:
    import typer

    from controller.runtime import Runtime
    from scheduler.centres.base import CentreAdapter

def _datasets_section() -> type[Model]:
    from scheduler.centres.data import DatasetsSection

    return DatasetsSection


CONFIG_SECTIONS: dict[str, type[Model]] = {"centres": CentresSection,
                                           "datasets": _datasets_section()}


BENCHES = {
    "dispatch": ("labs.bench.dispatch",
                 "1,000 small jobs dispatched to two real Slurm clusters: jobs/s dispatched "
                 "(goal >= 50), p50/p99 submitted -> running, duplicates."),
}


def section(rt: Runtime) -> CentresSection:
    sec = rt.cfg.sections.get("centres") if rt.cfg is not None else None
    return sec if isinstance(sec, CentresSection) else CentresSection()


def build_adapter(site: str, c: CentreConfig) -> CentreAdapter:
    if c.backend == "slurm":
        from scheduler.centres.slurm import SlurmCentre

        assert c.conf is not None
        return SlurmCentre(site, c.conf, c.workdir, partition=c.partition,
                           price_per_hour=c.price_per_hour, idle_w=c.idle_w, max_w=c.max_w,
                           jobcomp=c.jobcomp, rest=c.rest, run_as=c.run_as or None)
    from scheduler.centres.sim import SimCentre

    return SimCentre(site, c.workdir, cpus=c.cpus, memory_gib=c.memory_gib, gpus=c.gpus,
                     runtime_s=c.runtime_s, price_per_hour=c.price_per_hour,
                     idle_w=c.idle_w, max_w=c.max_w)


def adapters(rt: Runtime) -> dict[str, CentreAdapter]:
    st: dict[str, Any] = rt.settings.extra.setdefault("centres", {})
    if "adapters" not in st:
        st["adapters"] = {site: build_adapter(site, c)
                          for site, c in section(rt).sites.items()}
    out: dict[str, CentreAdapter] = st["adapters"]
    return out


def components(rt: Runtime) -> list[Any]:
    if not section(rt).sites:
        return []
    from scheduler.centres.data import DataStager
    from scheduler.centres.dispatch import Dispatcher
    from scheduler.centres.instances import InstanceBinder

    binder = InstanceBinder(rt)
    stager = DataStager(rt)
    rt.settings.extra.setdefault("centres", {})["stager"] = stager
    d = Dispatcher(section(rt), adapters(rt), stage=stager.stage, bind=binder.bind,
                   unbind=binder.unbind, sweep=binder.sweep)
    rt.settings.extra.setdefault("centres", {})["dispatcher"] = d
    return [d]


def routers(rt: Runtime) -> list[Any]:
    from scheduler.centres import data
    from scheduler.centres.api import router

    return [router(adapters(rt)), data.router(rt, adapters(rt))]


def register_cli(app: typer.Typer) -> None:
    from scheduler.centres.cli import register

    register(app)
