"""Plugin: SR policy intents, closed-loop — the reconciler component (``intents:``
section), intent status over REST and NETCONF, ``cpn srv6 intents …``.

Rules: cheap to import; the reconciler runs only when the config has an ``intents:``
section with ``enabled: true`` (it is a plain component, so a leader-only wrapper can
start and stop it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from srv6.intents.models import IntentsSection

if TYPE_CHECKING:
    import typer

    from controller.netconf.extension import NetconfExtension
    from controller.runtime import Runtime

CONFIG_SECTIONS: dict[str, Any] = {"intents": IntentsSection}


def _sdwan_section() -> Any:
    from srv6.sdwan_edge import SdwanEdgesSection

    return SdwanEdgesSection


CONFIG_SECTIONS["sdwan_edges"] = _sdwan_section()


def components(rt: Runtime) -> list[Any]:
    from srv6.sdwan_edge import SdwanEdges, SdwanEdgesSection

    edges = rt.cfg.sections.get("sdwan_edges") if rt.cfg else None
    out: list[Any] = [SdwanEdges(edges)] if isinstance(edges, SdwanEdgesSection) and \
        edges.edges else []
    sec = rt.cfg.sections.get("intents") if rt.cfg else None
    if not isinstance(sec, IntentsSection) or not sec.enabled:
        return out
    from srv6.intents.reconciler import IntentReconciler
    from srv6.slices_enforce import SliceEnforcer

    return [*out, IntentReconciler(sec), SliceEnforcer(sec)]


def routers(rt: Runtime) -> list[Any]:
    from srv6.intents.api import router

    return [router]


def register_cli(app: typer.Typer) -> None:
    from srv6.intents.cli import register

    register(app)


def netconf() -> NetconfExtension:
    """Intent status in ``/cpn/state`` and the ``intent-status-changed`` notification."""
    from srv6.intents.netconf import netconf as extension

    return extension()
