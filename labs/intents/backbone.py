"""Backbone topologies for the intents lab and benches, and their namespace wiring.

Rules:
- ``national()``: a small national backbone (8 core routers, two MEC gateways, one
  access router) shaped like the GBA hub mesh; ``mesh(n)``: ``n`` routers on a ring
  with chords (benches). Both are plain data (``Backbone``): routers, links (delay ms,
  IGP metric), endpoints with coloured prefixes.
- ``config(bb, …)`` renders the controller config (routers, links, ``intents:``) with
  every node bound to a programmer; on router X the interface toward Y is named Y.
- ``build(lab, bb)`` wires real namespaces: one per router plus a host behind every
  endpoint (``h-<router>``, addresses ``10.<k>.<c>.2`` for each served /24). The
  underlay is neighbour-only: each router reaches a neighbour's locator over the
  direct link (no IGP), which is what ``segments: strict`` needs. Headend routers get
  ``ignore_routes_with_linkdown`` (backup routes take over at the next packet) and
  ``keep_addr_on_down``.
- ``srv6_supported()`` says whether CPN can program SRv6 on this kernel (seg6
  lwtunnels, or the eBPF dataplane of ``srv6.dataplane.seg6bpf`` where the kernel was
  built without them); labs refuse to start without either, naming why.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any

from labs.netns import Lab, Ns


@dataclass
class Backbone:
    """``routers`` (short names), ``links`` (a, b, delay_ms, igp), ``endpoints`` (router
    → prefix → colour), ``sites`` (MEC site name → its gateway router), ``access``
    (router → client prefix of a client host behind it)."""

    routers: list[str]
    links: list[tuple[str, str, float, int]]
    endpoints: dict[str, dict[str, int]] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    access: dict[str, str] = field(default_factory=dict)

    def index(self, r: str) -> int:
        return self.routers.index(r) + 1

    def locator(self, r: str) -> str:
        return f"fc00:0:{self.index(r):x}::/48"

    def neighbours(self, r: str) -> list[str]:
        return [b if a == r else a for a, b, *_ in self.links if r in (a, b)]


def national() -> Backbone:
    """Eight core routers (BJ … GZ), MEC-1 dual-homed on GZ and CS (gateway M1), MEC-2 on
    SH and NJ (gateway M2); cameras and users attach at BJ (10.0.0.0/24). Every MEC is
    reachable from BJ over two link-disjoint paths (protection can be pre-installed)."""
    core = ["BJ", "TJ", "JN", "NJ", "SH", "WH", "CS", "GZ"]
    links = [("BJ", "TJ", 1.0, 10), ("TJ", "JN", 1.5, 10), ("JN", "NJ", 2.0, 10),
             ("NJ", "SH", 1.0, 10), ("SH", "GZ", 6.0, 30), ("BJ", "WH", 5.0, 30),
             ("WH", "CS", 2.0, 10), ("CS", "GZ", 2.5, 10), ("JN", "WH", 3.0, 15),
             ("NJ", "WH", 2.5, 15), ("GZ", "M1", 0.2, 1), ("CS", "M1", 1.0, 5),
             ("SH", "M2", 0.2, 1), ("NJ", "M2", 1.0, 5)]
    return Backbone([*core, "M1", "M2"], links,
                    endpoints={"M1": {"10.1.0.0/24": 100, "10.1.1.0/24": 200},
                               "M2": {"10.2.0.0/24": 100, "10.2.1.0/24": 200}},
                    sites={"MEC-1": "M1", "MEC-2": "M2"}, access={"BJ": "10.0.0.0/24"})


def mesh(n: int = 20, endpoints: int = 5, colors: int = 14) -> Backbone:
    """``n`` routers ``R1..Rn`` on a ring with chords ``i → i+4`` (every other router);
    the last ``endpoints`` routers serve ``10.<k>.<c>.0/24`` with colour ``c``."""
    rs = [f"R{i}" for i in range(1, n + 1)]
    links = [(rs[i], rs[(i + 1) % n], 1.0 + (i % 3), 10) for i in range(n)]
    links += [(rs[i], rs[(i + 4) % n], 3.0, 25) for i in range(0, n, 2)]
    seen: set[tuple[str, str]] = set()
    uniq = []
    for a, b, d, m in links:
        k = (min(a, b), max(a, b))
        if k not in seen and a != b:
            seen.add(k)
            uniq.append((a, b, d, m))
    eps = {rs[n - 1 - k]: {f"10.{k + 1}.{c}.0/24": c for c in range(1, colors + 1)}
           for k in range(endpoints)}
    return Backbone(rs, uniq, eps)


def config(bb: Backbone, programmer: str = "memory", netns: dict[str, str] | None = None,
           **intents: Any) -> dict[str, Any]:
    """The controller config for ``bb`` (YAML-able dict)."""
    routers = [{"name": r, "locator": bb.locator(r),
                **({"site": s} if (s := next((k for k, v in bb.sites.items() if v == r),
                                              None)) else {}),
                "links": [{"to": b, "delay_ms": d, "igp_metric": m}
                          for a, b, d, m in bb.links if a == r]}
               for r in bb.routers]
    nodes = {r: {"programmer": programmer, "devs": {f"{a}~{b}": (b if a == r else a)
                                                    for a, b, *_ in bb.links if r in (a, b)},
                 **({"netns": netns[r]} if netns else {})}
             for r in bb.routers}
    eps = {r: {"dev": "host", "nh4": _host_addr(bb, r), "prefixes": dict(p)}
           for r, p in bb.endpoints.items()}
    sites = [{"name": s, "kind": "mec", "region": "lab"} for s in bb.sites]
    return {"zone": "cpn.example", "sites": sites, "routers": routers,
            "intents": {"nodes": nodes, "endpoints": eps, **intents}}


def _host_addr(bb: Backbone, r: str) -> str:
    first = sorted(bb.endpoints[r])[0]
    return first.rsplit(".", 1)[0] + ".2"


def _link_addrs(bb: Backbone, a: str, b: str) -> tuple[str, str]:
    i = next(k for k, (x, y, *_) in enumerate(bb.links) if {x, y} == {a, b}) + 1
    return f"fd99:{i:x}::{bb.index(a):x}", f"fd99:{i:x}::{bb.index(b):x}"


def srv6_supported() -> bool:
    """True when CPN can program SRv6 here: a steering route and an End SID committed
    through ``NetlinkProgrammer`` in a scratch namespace (kernel seg6 lwtunnels, or the
    eBPF dataplane on kernels built without them)."""
    from srv6.dataplane import NodeState, Seg6LocalRoute, Seg6Route
    from srv6.dataplane.netlink import NetlinkProgrammer

    with Lab("s6ck") as lab:
        a, b = lab.ns("a"), lab.ns("b")
        lab.link(a, b, "b", "a", ["fd00:77::1/64"], ["fd00:77::2/64"])
        a.enable_forwarding(srv6=True)
        prog = NetlinkProgrammer("probe", netns=a.name)
        try:
            prog.load(NodeState.of([
                Seg6Route(dst="10.77.0.0/24", segments=("fd00:77::2",), dev="b"),
                Seg6LocalRoute(sid="fc00:77::1", action="End", dev="b")]))
            return not prog.commit().failed
        finally:
            prog.close()


@dataclass
class Wired:
    """``ns`` (router → namespace), ``hosts`` (endpoint router → its host), ``clients``
    (access router → its client host)."""

    lab: Lab
    ns: dict[str, Ns]
    hosts: dict[str, Ns]
    clients: dict[str, Ns] = field(default_factory=dict)


def build(lab: Lab, bb: Backbone) -> Wired:
    """Namespaces for every router and endpoint host, wired as ``bb`` says."""
    ns = {r: lab.ns(r) for r in bb.routers}
    for n in ns.values():
        n.enable_forwarding(srv6=True)
        for scope in ("all", "default"):
            n.sysctl(f"net.ipv4.conf.{scope}.ignore_routes_with_linkdown", 1)
            n.sysctl(f"net.ipv6.conf.{scope}.ignore_routes_with_linkdown", 1)
            n.sysctl(f"net.ipv6.conf.{scope}.keep_addr_on_down", 1)
            n.sysctl(f"net.ipv6.conf.{scope}.seg6_enabled", 1)
    for a, b, *_ in bb.links:
        aa, ba = _link_addrs(bb, a, b)
        lab.link(ns[a], ns[b], b, a, [f"{aa}/64"], [f"{ba}/64"])
    for a, b, *_ in bb.links:  # neighbour-only underlay: locators over direct links
        aa, ba = _link_addrs(bb, a, b)
        ns[a].run(["ip", "-6", "route", "add", bb.locator(b), "via", ba, "dev", b])
        ns[b].run(["ip", "-6", "route", "add", bb.locator(a), "via", aa, "dev", a])
    hosts: dict[str, Ns] = {}
    for r, prefixes in bb.endpoints.items():
        h = lab.ns(f"h{r}")
        hosts[r] = h
        gw_addrs = [p.rsplit(".", 1)[0] + ".1/24" for p in sorted(prefixes)]
        h_addrs = [p.rsplit(".", 1)[0] + ".2/24" for p in sorted(prefixes)]
        lab.link(ns[r], h, "host", "eth0", gw_addrs[:1], h_addrs)
        h.run(["ip", "route", "add", "default", "via", gw_addrs[0].split("/")[0]])
    clients: dict[str, Ns] = {}
    for r, prefix in bb.access.items():
        c = lab.ns(f"c{r}")
        clients[r] = c
        base = prefix.rsplit(".", 1)[0]
        lab.link(ns[r], c, "client", "eth0", [f"{base}.1/24"], [f"{base}.2/24"])
        c.run(["ip", "route", "add", "default", "via", f"{base}.1"])
    for n in ns.values():  # seg6_enabled is per ingress interface
        for dev in n.run("ls /sys/class/net").stdout.split():
            n.sysctl(f"net.ipv6.conf.{dev}.seg6_enabled", 1)
            for fam in ("ipv4", "ipv6"):
                n.sysctl(f"net.{fam}.conf.{dev}.ignore_routes_with_linkdown", 1)
    return Wired(lab, ns, hosts, clients)


def cut(w: Wired, a: str, b: str) -> None:
    """Fibre cut between ``a`` and ``b`` as ``a`` sees it: ``b``'s end goes down, so
    ``a``'s interface loses carrier (its routes stay, flagged linkdown)."""
    w.ns[b].run(["ip", "link", "set", "dev", a, "down"])


def mend(w: Wired, a: str, b: str) -> None:
    w.ns[b].run(["ip", "link", "set", "dev", a, "up"])


def ip_route_del(ns: Ns, prefix: str) -> subprocess.CompletedProcess[str]:
    """Delete a route by hand (an operator's mistake the reconciler must repair)."""
    return ns.run(["ip", "route", "del", prefix], check=False)
