"""Plugin: SR policy intents, closed-loop — the reconciler component (``intents:``
section), intent status over REST, ``cpn srv6 intents …``, the ``intent`` bench.

Rules: cheap to import; the reconciler runs only when the config has an ``intents:``
section with ``enabled: true`` (it is a plain component, so a leader-only wrapper can
start and stop it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from srv6.intents.models import IntentsSection

if TYPE_CHECKING:
    import typer

    from controller.runtime import Runtime

CONFIG_SECTIONS = {"intents": IntentsSection}
BENCHES: dict[str, tuple[str, str]] = {
    "intent": ("labs.bench.intent",
               "SR policy intents: created → programmed and read back (p50/p99 over 200 "
               "intents, 20 routers; goal p99 ≤ 100 ms) and 1,000 from cold (goal ≤ 5 s)."),
}


def components(rt: Runtime) -> list[Any]:
    sec = rt.cfg.sections.get("intents") if rt.cfg else None
    if not isinstance(sec, IntentsSection) or not sec.enabled:
        return []
    from srv6.intents.reconciler import IntentReconciler

    return [IntentReconciler(sec)]


def routers(rt: Runtime) -> list[Any]:
    from srv6.intents.api import router

    return [router]


def register_cli(app: typer.Typer) -> None:
    from srv6.intents.cli import register

    register(app)
