"""Plugin: SRv6 path computation — REST routes (paths, policies, and CRUD for SR policy
intents, slices and SD-WAN policies), the same kinds and SR policy state over NETCONF,
``cpn srv6 path``.

Rules: cheap to import; the routes live in ``srv6.api_paths``, the commands in
``srv6.cli_paths`` and load only when the controller or CLI asks for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from controller.netconf.extension import NetconfExtension
    from controller.runtime import Runtime


def routers(rt: Runtime) -> list[Any]:
    from controller.api.resources import crud_router
    from srv6.api_paths import router
    from srv6.intents.api import status_view
    from srv6.models import Slice, SrPolicyIntent
    from srv6.rules import rest_check
    from srv6.sdwan import SdwanPolicy

    # SR policy intents, slices and SD-WAN policies: the same CRUD as the core kinds,
    # plus the SRv6 rules NETCONF applies (one set of checks for both northbounds);
    # an intent shows the status its reconciler wrote (srv6.intents)
    return [router, crud_router(SrPolicyIntent, "srv6/intents", rest_check, ["srv6"],
                                view=status_view),
            *(crud_router(cls, f"srv6/{plural}", rest_check, ["srv6"])
              for cls, plural in ((Slice, "slices"), (SdwanPolicy, "sdwan-policies")))]


def netconf() -> NetconfExtension:
    """SR policy intents, slices and SD-WAN policies over NETCONF (``srv6.netconf``)."""
    from srv6.netconf import netconf as extension

    return extension()


def register_cli(app: typer.Typer) -> None:
    from srv6.cli_paths import register

    register(app)
