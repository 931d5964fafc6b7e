"""Plug the NETCONF northbound into the controller (``netconf:`` config section).

Rules: cheap to import — the server (asyncssh, srv6, state builders) is imported only
when the component is built; the stored ``SchedulerSettings`` kind is registered here,
before any store is opened, so a committed scheduling policy is loaded on restart.
"""

from __future__ import annotations

from typing import Any

# imported for its side effect: registers the SchedulerSettings kind before a store loads
import controller.netconf.models  # noqa: F401
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
