"""Plugin: optical/OTN layer over NETCONF (issue 7, GBA-6.4.2, GBA-5.2).

Rules:
- Owns the ``optical:`` config section; a component only when the section is given.
- REST under ``/api/v1/optical``; ``cpn optical paths|links|alarms`` (benches
  ``rwa``, ``optical-provision``, ``restoration`` live in ``labs.plugin``).
- Cheap to import: heavy modules are imported inside functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optical.config import OpticalSection

if TYPE_CHECKING:
    import typer

    from controller.runtime import Runtime

CONFIG_SECTIONS = {"optical": OpticalSection}


def components(rt: Runtime) -> list[Any]:
    sec = rt.cfg.sections.get("optical") if rt.cfg else None
    if not isinstance(sec, OpticalSection) or not sec.ne:
        return []
    from optical.component import OpticalComponent

    return [OpticalComponent(sec)]


def routers(rt: Runtime) -> list[Any]:
    from optical.api import router

    return [router]


def register_cli(app: typer.Typer) -> None:
    from optical.cli import register

    register(app)
