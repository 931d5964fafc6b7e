"""A five-router SRv6 namespace lab (tests, benches, demos) — topology and policies.

Rules:
- ``h1 — r1 ═ r2 — r3 — r5 — h2`` and ``r1 — r4 — r5``: IPv6 underlay with static
  routes toward each router's locator ``fc00:N::/48``; IPv4 only at the edges (h1, h2)
  and on the return path ``r5 → r4 → r1`` (plain IPv4 forwarding).
- On router ``rN`` the interface toward ``rM`` is named ``rM``; toward a host ``ehost``.
- Path A = ``r2 r3 r5``: SIDs ``fc00:2::1 fc00:3::1 fc00:5::d4``; path B = ``r4 r5``:
  ``fc00:4::1 fc00:5::d4``. ``fc00:5::d4`` is End.DX4 to h2 (10.2.0.2).
- Policies are real ``srv6.models`` objects rendered by ``render``; the lab only wires
  namespaces. Everything lives inside the caller's ``Lab`` (cleaned up by it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from labs.netns import Lab, Ns
from srv6.dataplane.render import render
from srv6.dataplane.state import NodeState
from srv6.models import CandidatePath, LocalSid, SegmentList, SidBehavior, SrPolicy

ROUTERS = ("r1", "r2", "r3", "r4", "r5")
LINKS = (("r1", "r2"), ("r2", "r3"), ("r3", "r5"), ("r1", "r4"), ("r4", "r5"))
H2 = "10.2.0.2"
DST_PREFIX = "10.2.0.0/24"
PATH_A = ("r2", "r3", "r5")
PATH_B = ("r4", "r5")


def sid_of(node: str) -> str:
    return "fc00:5::d4" if node == "r5" else f"fc00:{node[1:]}::1"


def local_sids() -> list[LocalSid]:
    out = [LocalSid(sid=IPv6Address(sid_of(r)), behavior=SidBehavior.END, node=r,
                    locator=f"loc-{r}") for r in ("r2", "r3", "r4")]
    out.append(LocalSid(sid=IPv6Address("fc00:5::d4"), behavior=SidBehavior.END_DX4,
                        node="r5", locator="loc-r5", nexthop=IPv4Address(H2),
                        interface="ehost"))
    return out


def policy(path: tuple[str, ...], preference: int = 100) -> SrPolicy:
    sl = SegmentList(sids=[IPv6Address(sid_of(n)) for n in path], hops=list(path))
    return SrPolicy(headend="r1", color=100, endpoint="r5",
                    candidate_paths=[CandidatePath(preference=preference,
                                                   segment_lists=[sl])])


def desired(path: tuple[str, ...]) -> dict[str, NodeState]:
    """Desired state of every router with the policy on ``path`` (only the SIDs the path
    uses are installed)."""
    pol = policy(path)
    sids = [s for s in local_sids() if s.node in path]
    devices = {"r1": path[0], "r2": "r3", "r3": "r5", "r4": "r5", "r5": "ehost"}
    return render([pol], sids, {pol.key: [DST_PREFIX]}, devices)


@dataclass
class SrLab:
    lab: Lab
    ns: dict[str, Ns] = field(default_factory=dict)


def _addr(a: str, b: str) -> tuple[str, str]:
    x, y = sorted((a[1:], b[1:]))
    return f"fd{x}{y}::{a[1:]}", f"fd{x}{y}::{b[1:]}"


def build(lab: Lab) -> SrLab:
    """Create and wire the namespaces; return them by short name."""
    sr = SrLab(lab)
    for name in (*ROUTERS, "h1", "h2"):
        sr.ns[name] = lab.ns(name)
    for a, b in LINKS:
        aa, ba = _addr(a, b)
        v4 = []
        if (a, b) in (("r1", "r4"), ("r4", "r5")):
            net = f"10.{a[1:]}{b[1:]}.0"
            v4 = [f"{net}.{a[1:]}/24", f"{net}.{b[1:]}/24"]
        lab.link(sr.ns[a], sr.ns[b], b, a, [f"{aa}/64", *v4[:1]], [f"{ba}/64", *v4[1:]])
    lab.link(sr.ns["h1"], sr.ns["r1"], "r1", "ehost", ["10.1.0.2/24"], ["10.1.0.1/24"])
    lab.link(sr.ns["h2"], sr.ns["r5"], "r5", "ehost", [f"{H2}/24"], ["10.2.0.1/24"])
    for r in ROUTERS:
        sr.ns[r].enable_forwarding(srv6=True)
        # SRH processing happens per ingress interface (seg6_enabled per device)
        for dev in sr.ns[r].run("ls /sys/class/net").stdout.split():
            sr.ns[r].sysctl(f"net.ipv6.conf.{dev}.seg6_enabled", 1)
    sr.ns["h1"].run("ip route add default via 10.1.0.1")
    sr.ns["h2"].run("ip route add default via 10.2.0.1")
    underlay = {
        "r1": [("fc00:2::/48", "r2"), ("fc00:3::/48", "r2"), ("fc00:4::/48", "r4"),
               ("fc00:5::/48", "r2")],
        "r2": [("fc00:3::/48", "r3"), ("fc00:5::/48", "r3")],
        "r3": [("fc00:5::/48", "r5")],
        "r4": [("fc00:5::/48", "r5")],
    }
    for r, routes in underlay.items():
        for pfx, via in routes:
            nh = _addr(r, via)[1]
            sr.ns[r].run(["ip", "-6", "route", "add", pfx, "via", nh, "dev", via])
    # IPv4 return path h2 → r5 → r4 → r1 → h1 (no SRv6 needed)
    sr.ns["r5"].run("ip route add 10.1.0.0/24 via 10.45.0.4")
    sr.ns["r4"].run("ip route add 10.1.0.0/24 via 10.14.0.1")
    return sr


def kernel_steering_route(node: str, netns: str, prefix: str) -> dict[str, Any] | None:
    """The CPN-owned steering route for ``prefix`` read back from ``node``'s kernel
    (namespace ``netns``), as the controller's programmer reads it; None if absent."""
    from srv6.dataplane.netlink import NetlinkProgrammer

    prog = NetlinkProgrammer(node, netns=netns)
    try:
        for r in prog.read_actual():
            if getattr(r, "dst", None) == prefix and not getattr(r, "backup", False):
                return {"dst": prefix, "segments": list(getattr(r, "segments", ())),
                        "dev": getattr(r, "dev", None)}
        return None
    finally:
        prog.close()
