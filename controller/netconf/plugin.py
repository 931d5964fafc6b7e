"""Plug the NETCONF northbound into the controller (``netconf:`` config section).

Rules: cheap to import — the server (asyncssh, state builders) is imported only when
the component is built. Plugin packages add their lists, containers, rules, state and
notifications through ``netconf()`` in their own plugin module
(``controller.netconf.extension``).
"""

from __future__ import annotations

from typing import Any

from controller.netconf.config import NetconfSection

CONFIG_SECTIONS = {"netconf": NetconfSection}


def components(rt: Any) -> list[Any]:
    if rt.cfg is None:
        return []
    raw = rt.cfg.sections.get("netconf")
    if not isinstance(raw, NetconfSection) or not raw.users:
        return []
    from controller.netconf.server import NetconfServer

    return [NetconfServer(raw)]
