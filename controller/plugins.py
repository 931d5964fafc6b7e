"""Where packages plug into the controller — the only list of extensions.

Each module named in ``PLUGINS`` may define any of:

- ``CONFIG_SECTIONS: dict[str, type[Model]]`` — top-level config sections it owns;
- ``components(rt: Runtime) -> list[Component]`` — things the controller runs
  (started in ``PLUGINS`` order after the REST API, stopped in reverse);
- ``routers(rt: Runtime) -> list[fastapi.APIRouter]`` — REST routes;
- ``register_cli(app: typer.Typer) -> None`` — ``cpn`` sub-commands;
- ``netconf() -> controller.netconf.extension.NetconfExtension`` — configurable
  YANG lists and containers, cross-object rules, ``/cpn/state`` subtrees and
  notifications over NETCONF;
- ``BENCHES: dict[str, tuple[str, str]]`` — ``cpn bench NAME``: (module with
  ``run(**opts) -> dict``, one-line summary); only ``labs.plugin`` has them, since
  product packages import nothing from ``labs``.

Imports point one way: plugin packages import ``controller``; ``controller`` names them
only here, as strings, and never imports them (``tests/test_architecture.py``).

Plugin modules must be cheap to import (import heavy libraries inside functions).
A module listed here that does not exist is skipped; one that fails to import is
skipped with an error log naming it, so one broken package cannot take every
``cpn`` command down with it.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from types import ModuleType

PLUGINS: tuple[str, ...] = (
    "controller.netconf.plugin",
    "controller.ops.plugin",
    "telemetry.plugin_bgp",
    "telemetry.plugin_agent",
    "telemetry.plugin_grading",
    "srv6.plugin_paths",
    "srv6.plugin_dataplane",
    "srv6.plugin_intents",
    "dns_compute.plugin",
    "scheduler.registration",
    "scheduler.centres.plugin",
    "scheduler.plugin_billing",
    "optical.plugin",
    "labs.plugin",
)


@cache
def modules() -> tuple[ModuleType, ...]:
    out = []
    for name in PLUGINS:
        try:
            out.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                _broken(name, exc)
        except Exception as exc:  # a plugin's own bug: report it, keep the rest working
            _broken(name, exc)
    return tuple(out)


def _broken(name: str, exc: BaseException) -> None:
    logging.getLogger("cpn.plugins").error("plugin %s failed to load and is disabled: %s: %s",
                                           name, type(exc).__name__, exc)


@cache
def load_config_sections() -> None:
    from controller.config import register_section

    for mod in modules():
        for name, model in getattr(mod, "CONFIG_SECTIONS", {}).items():
            register_section(name, model)
