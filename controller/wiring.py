"""Which components the controller runs, in start order.

Each package contributes factories here (one line each); a factory gets the
runtime and returns a component, or None when its config section is absent.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.runtime import Component, Runtime

Factory = Callable[[Runtime], Component | None]


def _api(rt: Runtime) -> Component | None:
    from controller.api.server import ApiServer

    return ApiServer()


COMPONENTS: list[Factory] = [
    _api,
]


def build(rt: Runtime) -> list[Component]:
    out = []
    for factory in COMPONENTS:
        comp = factory(rt)
        if comp is not None:
            out.append(comp)
    return out
