"""The lab's namespaces, links and static routes (GBA-App.B topology).

Rules:
- Data plane: cam ─ R1 ─ R2 ─ MEC-1 and R1 ─ R3 ─ MEC-2. R1–R2 and R1–R3 are IPv6-only
  (SRv6 transport); the access and MEC links are IPv4. The service anycast
  198.51.100.10/32 lives on both MECs' loopbacks.
- The flow controller owns the steering: R1's route to the anycast and the egress
  End.DX4 SIDs on R2/R3 are *not* installed here. The return path (MEC → camera) is
  static: R2/R3 encapsulate towards R1's End.DX4 SID fc00:0:1::100.
- Management: ``ctl`` (controller) has a /30 to cam, MEC-1 and MEC-2, so every TCP/UDP
  peer of the controller is in a namespace (TCP from the root namespace is refused).
"""

from __future__ import annotations

from dataclasses import dataclass

from labs.netns import Lab, Ns

ANYCAST = "198.51.100.10"
CTL_FOR = {"cam": "172.16.0.1", "mec1": "172.16.1.1", "mec2": "172.16.2.1"}
MEC_ADDR = {"MEC-1": "10.0.1.10", "MEC-2": "10.0.2.10"}


@dataclass
class Topology:
    cam: Ns
    r1: Ns
    r2: Ns
    r3: Ns
    mec1: Ns
    mec2: Ns
    ctl: Ns


def build(lab: Lab) -> Topology:
    t = Topology(*(lab.ns(n) for n in ("cam", "r1", "r2", "r3", "mec1", "mec2", "ctl")))
    for ns in (t.r1, t.r2, t.r3):
        ns.enable_forwarding(srv6=True)
    for ns in (t.cam, t.r1, t.r2, t.r3, t.mec1, t.mec2, t.ctl):
        ns.sysctl("net.ipv4.conf.all.rp_filter", 0)
        ns.sysctl("net.ipv4.conf.default.rp_filter", 0)
    lab.link(t.cam, t.r1, "eth0", "eth0", ["10.0.0.2/24"], ["10.0.0.1/24"])
    lab.link(t.r1, t.r2, "eth1", "eth0", ["fc00:12::1/64"], ["fc00:12::2/64"])
    lab.link(t.r1, t.r3, "eth2", "eth0", ["fc00:13::1/64"], ["fc00:13::3/64"])
    lab.link(t.r2, t.mec1, "eth1", "eth0", ["10.0.1.1/24"], [f"{MEC_ADDR['MEC-1']}/24"])
    lab.link(t.r3, t.mec2, "eth1", "eth0", ["10.0.2.1/24"], [f"{MEC_ADDR['MEC-2']}/24"])
    lab.link(t.ctl, t.cam, "m0", "mgmt", ["172.16.0.1/30"], ["172.16.0.2/30"])
    lab.link(t.ctl, t.mec1, "m1", "mgmt", ["172.16.1.1/30"], ["172.16.1.2/30"])
    lab.link(t.ctl, t.mec2, "m2", "mgmt", ["172.16.2.1/30"], ["172.16.2.2/30"])

    t.cam.run("ip route add default via 10.0.0.1 dev eth0")
    for mec, gw in ((t.mec1, "10.0.1.1"), (t.mec2, "10.0.2.1")):
        mec.run(f"ip addr add {ANYCAST}/32 dev lo")
        mec.run(f"ip route add default via {gw} dev eth0")
    # SRv6 locators (IGP stand-in: static routes)
    t.r1.run("ip -6 route add fc00:0:2::/48 via fc00:12::2 dev eth1")
    t.r1.run("ip -6 route add fc00:0:3::/48 via fc00:13::3 dev eth2")
    for r in (t.r2, t.r3):
        r.run("ip -6 route add fc00:0:1::/48 via fc00:" + ("12::1" if r is t.r2 else "13::1")
              + " dev eth0")
        # return path: encapsulate towards R1's End.DX4 SID
        r.run("ip route add 10.0.0.0/24 encap seg6 mode encap segs fc00:0:1::100 dev eth0")
    t.r1.run("ip -6 route add fc00:0:1::100/128 encap seg6local action End.DX4 "
             "nh4 10.0.0.2 dev eth0")
    return t


def steering_route(r1: Ns) -> str:
    """R1's current route to the service anycast (text), '' if none."""
    return r1.run(f"ip route show {ANYCAST}/32", check=False).stdout.strip()
