"""Plugin: SRv6 path computation — REST routes, ``cpn srv6 path``, the ``cspf`` bench.

Rules: cheap to import; the routes live in ``srv6.api_paths``, the commands in
``srv6.cli_paths`` and load only when the controller or CLI asks for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from controller.runtime import Runtime

BENCHES: dict[str, tuple[str, str]] = {
    "cspf": ("labs.bench.cspf",
             "Constrained SRv6 path computation on 1,000 nodes / 4,000 links."),
}


def routers(rt: Runtime) -> list[Any]:
    from srv6.api_paths import router

    return [router]


def register_cli(app: typer.Typer) -> None:
    from srv6.cli_paths import register

    register(app)
