"""Plugin: compute DNS (issue 5, GBA-6.5h) — zone, embedded responder, Knot, subscription.

Rules:
- Owns the ``dns:`` config section (``dns_compute.models.DnsSection``).
- One component (``DnsComponent``), REST routes under ``/api/v1/dns``, ``cpn resolve``
  (the ``dns`` bench lives in ``labs.plugin``).
- Cheap to import: heavy modules are imported inside functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dns_compute.models import DnsSection

if TYPE_CHECKING:
    import typer

    from controller.runtime import Runtime

CONFIG_SECTIONS = {"dns": DnsSection}


def components(rt: Runtime) -> list[Any]:
    from dns_compute.component import DnsComponent

    return [DnsComponent()]


def routers(rt: Runtime) -> list[Any]:
    from dns_compute.api import router

    return [router]


def register_cli(app: typer.Typer) -> None:
    from dns_compute.cli import register

    register(app)
