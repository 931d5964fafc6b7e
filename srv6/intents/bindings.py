"""What a node binding and the stored sites/routers give the intent reconciler.

Rules:
- ``make_programmer``: the ``PolicyProgrammer`` backend a node binding names (memory,
  BGP SR Policy, node agent over mTLS, or netlink into the router's namespace — a
  namespace that does not exist is refused, never created).
- ``locators_by_node``: Locator records win; a router's or site's ``locator`` field
  makes one.
"""

from __future__ import annotations

import os
from ipaddress import IPv6Network
from pathlib import Path

from controller.errors import ConnectionError
from controller.models import Router, Site
from controller.store import Store
from srv6.dataplane.programmer import PolicyProgrammer
from srv6.intents.models import NodeBinding
from srv6.models import Locator


def make_programmer(node: str, b: NodeBinding) -> PolicyProgrammer:
    """The backend a node binding names."""
    if b.programmer == "memory":
        from srv6.dataplane import MemoryProgrammer

        return MemoryProgrammer(node)
    if b.programmer == "bgp-sr-policy":
        from srv6.dataplane.bgp_config import build_bgp

        assert b.bgp is not None
        # a short wait: an unreachable router is frozen by the pass and retried, it must
        # not hold the controller's start-up (the speaker keeps reconnecting)
        return build_bgp(node, b.bgp, connect_timeout=3.0)
    if b.programmer == "agent":
        from srv6.dataplane.agent import AgentProgrammer

        assert b.url and b.cert and b.key and b.ca
        return AgentProgrammer(node, b.url.removeprefix("https://"), Path(b.cert),
                               Path(b.key), Path(b.ca), netns=b.netns)
    from srv6.dataplane.netlink import NetlinkProgrammer

    if b.netns and not os.path.exists(f"/var/run/netns/{b.netns}"):
        # pyroute2 would create an empty namespace of that name: refuse instead
        raise ConnectionError(f"{node}: network namespace {b.netns!r} does not exist")
    prog = NetlinkProgrammer(node, netns=b.netns)
    try:
        prog.prepare()  # first-write costs paid at open, off the switch's critical path
    except ConnectionError:
        prog.close()
        raise
    return prog


def locators_by_node(store: Store) -> dict[str, Locator]:
    """Locator records win; a router's or site's ``locator`` field makes one
    (``loc-<node>``: block = prefix length − 16, node 16 bits, function 16 bits)."""
    out: dict[str, Locator] = {}
    owners: list[tuple[str, IPv6Network | None]] = [
        *((s.name, s.locator) for s in store.list(Site)),
        *((r.name, r.locator) for r in store.list(Router))]
    for name, pfx in owners:
        if pfx is not None and pfx.prefixlen > 16:
            out[name] = Locator(name=f"loc-{name}", node=name, prefix=pfx,
                                block_len=pfx.prefixlen - 16, node_len=16)
    for loc in store.list(Locator):
        out[loc.node] = loc
    return out
