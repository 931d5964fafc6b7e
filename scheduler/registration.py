"""How the scheduler plugs into the controller (a ``controller.plugins`` module; the
scheduling plug-ins are in ``scheduler/plugins/``): the ``scheduler:`` config section,
the scheduler component, pool + metrics REST routes, Prometheus gauges, the
``/cpn/scheduler`` NETCONF container and ``cpn sim``.

Rules: cheap to import (heavy imports inside functions). The component and the REST
routes share one per-runtime state (counters, GBT-9.2.4 recorder) kept in
``rt.settings.extra["scheduler"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scheduler import decisions as _decisions  # noqa: F401  registers SchedulingDecision
from scheduler import reservations as _reservations  # noqa: F401  registers Reservation

# imported for its side effect too: registers the SchedulerSettings kind before a store
# loads, so a scheduling policy committed over NETCONF is loaded on restart
from scheduler.profiles import SchedulerConfig
from scheduler.settings import file_config

if TYPE_CHECKING:
    from collections.abc import Iterator

    from controller.netconf.extension import NetconfExtension
    from controller.runtime import Runtime

CONFIG_SECTIONS = {"scheduler": SchedulerConfig}


def _shared(rt: Runtime) -> dict[str, Any]:
    from scheduler.gbt import UtilisationRecorder

    st: dict[str, Any] = rt.settings.extra.setdefault("scheduler", {})
    if "recorder" not in st:
        import time

        st["recorder"] = UtilisationRecorder(start=time.time())
        st["counters"] = {"attempts": 0, "success": 0}
    return st


def _config(rt: Runtime) -> SchedulerConfig:
    return file_config(rt.cfg)


def netconf() -> NetconfExtension:
    from scheduler.netconf import netconf as extension

    return extension()


class _Component:
    """Adapter: runs ``SchedulerComponent`` and mirrors its counters into the shared
    state the REST routes and gauges read."""

    name = "scheduler"
    leader_only = True  # dispatches to centres (issue 16: the leader only)

    def __init__(self, rt: Runtime) -> None:
        from scheduler.centres.plugin import section
        from scheduler.component import SchedulerComponent

        self.inner = SchedulerComponent(_config(rt))
        self.inner.centre_sites = frozenset(section(rt).sites)
        self.shared = _shared(rt)
        self.inner.counters = self.shared["counters"]
        self.inner.shared = self.shared

    def reconfigure(self, cfg: SchedulerConfig) -> bool:
        return self.inner.reconfigure(cfg)

    async def start(self, rt: Runtime) -> None:
        await self.inner.start(rt)

    async def stop(self) -> None:
        await self.inner.stop()


def components(rt: Runtime) -> list[Any]:
    from srv6.intents.models import IntentsSection

    out: list[Any] = [_Component(rt)]
    sec = rt.cfg.sections.get("intents") if rt.cfg else None
    if isinstance(sec, IntentsSection) and sec.enabled:
        # a placement's network part is an SR policy intent the reconciler programs
        from scheduler.placement_intents import PlacementIntents

        out.append(PlacementIntents(sec))
    return out


def routers(rt: Runtime) -> list[Any]:
    from scheduler.api import metrics_router, placement_router, pool_router
    from scheduler.why import why_router

    st = _shared(rt)
    _register_gauges(rt, st)
    return [pool_router(), metrics_router(st["recorder"], st["counters"]),
            placement_router(st, _config(rt).cpsat_time_s), why_router()]


def _register_gauges(rt: Runtime, st: dict[str, Any]) -> None:
    if st.get("gauges"):
        return
    from prometheus_client.core import GaugeMetricFamily

    class Collector:
        def collect(self) -> Iterator[GaugeMetricFamily]:
            import time

            from scheduler.api import pool_shares

            rec = st["recorder"]
            now = time.time()
            try:
                for card, share in pool_shares(rt.store).items():
                    rec.set_share(card, share, now)
            except Exception:  # a closed store at shutdown must not break /metrics
                return
            rep = rec.report(now)
            q = GaugeMetricFamily("cpn_scheduler_cluster_utilisation",
                                  "GBT-9.2.4 cluster utilisation Q (time-weighted, 0-1)")
            q.add_metric([], rep["cluster_utilisation_q"])
            yield q
            cards = GaugeMetricFamily("cpn_scheduler_card_utilisation",
                                      "GBT-9.2.4 card utilisation q_k (time-weighted, 0-1)",
                                      labels=["card"])
            for card, v in rec.card_utilisation(now).items():
                cards.add_metric([card], v)
            yield cards
            c = st["counters"]
            sr = GaugeMetricFamily("cpn_scheduler_success_rate",
                                   "GBT-9.2.4 scheduling success rate (successful/requested)")
            sr.add_metric([], c["success"] / c["attempts"] if c["attempts"] else 1.0)
            yield sr
            att = GaugeMetricFamily("cpn_scheduler_attempts", "scheduling attempts")
            att.add_metric([], c["attempts"])
            yield att

    rt.metrics.register(Collector())  # type: ignore[arg-type]
    st["gauges"] = True


def register_cli(app: typer.Typer) -> None:
    from scheduler.why import register_cli as why_cli

    why_cli(app)

    @app.command("sim")
    def sim(workload: Annotated[Path, typer.Option("--workload", help="Workload YAML.")],
            json_only: Annotated[bool, typer.Option("--json", help="JSON lines only.")] = False,
            ) -> None:
        """Replay a workload (GBT-9.2 method) and print GBT-9.2.4 metrics per pool policy
        set and per named site-level plug-in profile, side by side."""
        import json

        from controller.errors import CpnError
        from scheduler.sim import run_file

        try:
            rows = run_file(workload)
        except CpnError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if not json_only:
            tables = {
                "pool": ("policy", "cluster_utilisation_q", "success_rate",
                         "task_resource_utilisation", "deviation_rel", "loss", "fluctuation",
                         "makespan_s"),
                "site": ("policy", "success_rate", "cluster_utilisation_q",
                         "utilisation_std", "energy_kwh", "cost", "mean_wait_s",
                         "makespan_s"),
            }
            for level, cols in tables.items():
                these = [r for r in rows if r.get("level", "pool") == level]
                if not these:
                    continue
                typer.echo(f"# {level}-level policies, side by side")
                width = [max(12, len(c)) for c in cols]
                typer.echo("  ".join(f"{c:>{w}}" for c, w in zip(cols, width, strict=True)))
                for r in these:
                    typer.echo("  ".join(f"{r[c]:>{w}.3f}" if isinstance(r[c], float)
                                         else f"{r[c]!s:>{w}}"
                                         for c, w in zip(cols, width, strict=True)))
        for r in rows:
            typer.echo(json.dumps(r, sort_keys=True))
