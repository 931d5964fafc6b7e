"""Plugin: metering and billing (GBA-6.7) — the meter component, REST routes for price
plans, orders, usage and bills, ``cpn bill`` and ``cpn usage``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    from controller.runtime import Runtime


def components(rt: Runtime) -> list[Any]:
    from scheduler.billing.meter import MeterComponent

    return [MeterComponent()]


def routers(rt: Runtime) -> list[Any]:
    from scheduler.billing import api

    return api.routers()


def register_cli(app: typer.Typer) -> None:
    from scheduler.billing.cli import register

    register(app)
