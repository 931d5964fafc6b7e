"""Plugin: operations — the alarm engine, alarm and change-feed REST routes, the web
console, the Prometheus gauges of ``controller.ops.metrics`` and ``cpn alarms``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from controller.runtime import Runtime


def components(rt: Runtime) -> list[Any]:
    from controller.ops.engine import AlarmEngine

    return [AlarmEngine()]


def routers(rt: Runtime) -> list[APIRouter]:
    from controller.console import routes
    from controller.ops import api, metrics

    metrics.register(rt)
    return [*api.routers(), routes.router()]


def register_cli(app: typer.Typer) -> None:
    from controller.ops.cli import register

    register(app)
