"""The GBA lab's SRv6 dataplane: every site of the example network is a kernel SRv6
router in a namespace, so placements with a network requirement become programmed
paths (issue 14 item 3, GBA-6.4.3c, GBA-6.5f-8).

Rules:
- One namespace per site of ``examples/gba.yaml`` (the sites are the topology's nodes:
  their ``locator`` is their SRv6 locator) and one veth pair per link, named ``l<i>``
  on both ends (parallel links between two hubs — OTN and IP-private — get their own
  interfaces); IPv6 ``fd98:<i>::1|2/64`` on each. The underlay is neighbour-only: each
  site reaches a neighbour's locator over the lowest-delay link to it (strict segment
  lists need nothing more).
- Every site has a host namespace behind it (``dev host``) owning ``10.60.<k>.2`` of its
  placement prefix ``10.60.<k>.0/24`` (colour ``COLOR``, the ``intents:`` section's
  ``placement_color``): the SR policy intent a placement gets steers that prefix.
- ``section(wired)`` is the controller's ``intents:`` section (netlink programmer per
  site, in its namespace; verification probes on). The controller runs in the root
  namespace and programs the namespaces over netlink.
- ``available()`` says whether it can run here (root, namespaces, SRv6 in the kernel);
  the lab reports why not otherwise.
- ``read_back(wired, node, prefix)``: the CPN-owned steering route for ``prefix`` in
  ``node``'s kernel (segments as programmed), for the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.models import Link, Site
from labs.netns import Lab, Ns
from labs.srv6lab import kernel_steering_route

COLOR = 300


@dataclass
class Wired:
    """``ns`` (site → namespace), ``hosts`` (site → host namespace), ``devs`` (site →
    link key → interface), ``prefix`` (site → placement prefix), ``why_not`` (empty
    when built)."""

    ns: dict[str, Ns] = field(default_factory=dict)
    hosts: dict[str, Ns] = field(default_factory=dict)
    devs: dict[str, dict[str, str]] = field(default_factory=dict)
    prefix: dict[str, str] = field(default_factory=dict)


def available() -> str | None:
    """None when the dataplane can be built here, else why not."""
    import os
    import shutil

    from labs.intents.backbone import srv6_supported

    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and ip netns"
    if not srv6_supported():
        return "this kernel cannot program SRv6 (no seg6 lwtunnel, no eBPF lwt)"
    return None


def build(lab: Lab, sites: list[Site], links: list[Link]) -> Wired:
    """Namespaces, veths, addresses and the underlay for the example network."""
    w = Wired()
    names = sorted(s.name for s in sites)
    for k, name in enumerate(names, start=1):
        n = lab.ns(name)
        n.enable_forwarding(srv6=True)
        w.ns[name] = n
        w.devs[name] = {}
        w.prefix[name] = f"10.60.{k}.0/24"
    best: dict[tuple[str, str], tuple[float, str, str, str]] = {}
    for i, ln in enumerate(sorted(links, key=lambda x: x.key)):
        dev = f"l{i}"
        aa, ba = f"fd98:{i + 1:x}::1", f"fd98:{i + 1:x}::2"
        lab.link(w.ns[ln.a], w.ns[ln.b], dev, dev, [f"{aa}/64"], [f"{ba}/64"])
        w.devs[ln.a][ln.key] = dev
        w.devs[ln.b][ln.key] = dev
        for x, y, via in ((ln.a, ln.b, ba), (ln.b, ln.a, aa)):
            cur = best.get((x, y))
            if cur is None or ln.delay_ms < cur[0]:
                best[(x, y)] = (ln.delay_ms, dev, via, y)
    loc = {s.name: str(s.locator) for s in sites if s.locator}
    for (x, y), (_, dev, via, _) in sorted(best.items()):
        if y in loc:
            w.ns[x].run(["ip", "-6", "route", "add", loc[y], "via", via, "dev", dev])
    for k, name in enumerate(names, start=1):
        h = lab.ns(f"h{k}")
        w.hosts[name] = h
        lab.link(w.ns[name], h, "host", "eth0", [f"10.60.{k}.1/24"], [f"10.60.{k}.2/24"])
        h.run(["ip", "route", "add", "default", "via", f"10.60.{k}.1"])
    for n in w.ns.values():  # seg6_enabled is per ingress interface
        for dev in n.run("ls /sys/class/net").stdout.split():
            n.sysctl(f"net.ipv6.conf.{dev}.seg6_enabled", 1)
        n.sysctl("net.ipv6.conf.all.seg6_enabled", 1)
    return w


def section(w: Wired) -> dict[str, Any]:
    """The controller's ``intents:`` section for the wired sites."""
    return {"nodes": {s: {"programmer": "netlink", "netns": n.name, "devs": w.devs[s]}
                      for s, n in w.ns.items()},
            "endpoints": {s: {"dev": "host", "nh4": p.rsplit(".", 1)[0] + ".2",
                              "prefixes": {p: COLOR}} for s, p in w.prefix.items()},
            "placement_color": COLOR, "readback_s": 1.0}


def read_back(w: Wired, node: str, prefix: str) -> dict[str, Any] | None:
    """The CPN-owned steering route for ``prefix`` in ``node``'s kernel."""
    return kernel_steering_route(node, w.ns[node].name, prefix)
