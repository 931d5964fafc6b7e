"""Shared builders for the intent tests: a binding in which every node of a topology is
programmable, each link's interface on a node named after the link key, and every
router R<i> an endpoint serving 10.<i>.0.0/24 (colour 100) and fd00:<i>::/64
(colour 200)."""

from __future__ import annotations

from srv6.intents.planner import Binding, Egress
from srv6.paths import Topology


def binding(topo: Topology, endpoints: list[str] | None = None) -> Binding:
    devs: dict[str, dict[str, str]] = {n: {} for n in topo.names}
    for e in topo.edges:
        devs[topo.names[e.a]][e.key] = f"if-{e.key}"[:15]
        devs[topo.names[e.b]][e.key] = f"if-{e.key}"[:15]
    egress = {}
    for name in endpoints if endpoints is not None else topo.names:
        i = int(name[1:])
        u = topo.index[name]
        loc = int(topo.node_sids[u]) & ~0xFFFF_FFFF_FFFF_FFFF_FFFF
        from ipaddress import IPv6Address

        egress[name] = Egress(
            dev="ehost", nh4=f"10.{i}.0.2", nh6=f"fd00:{i:x}::2",
            prefixes={f"10.{i}.0.0/24": 100, f"fd00:{i:x}::/64": 200},
            sid4=str(IPv6Address(loc | (0xD4 << 64))), sid6=str(IPv6Address(loc | (0xD6 << 64))))
    return Binding(devs, egress)
