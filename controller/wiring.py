"""Which components the controller runs, in start order: the REST API, then each
plugin's components (``controller.plugins``)."""

from __future__ import annotations

from controller import plugins
from controller.runtime import Component, Runtime


def build(rt: Runtime) -> list[Component]:
    from controller.api.server import ApiServer

    out: list[Component] = [ApiServer()]
    for mod in plugins.modules():
        factory = getattr(mod, "components", None)
        if factory is not None:
            out.extend(factory(rt))
    return out
