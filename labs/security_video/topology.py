"""The lab's topology (GBA-App.B), built with Mininet: hosts, links, the access switch.

Rules:
- Built by ``labs.mn.MininetTopo``: every node is a Mininet host (its namespace attached
  to the ``Lab``), the access switch ``s1`` is Open vSwitch on the userspace datapath,
  controlled over OpenFlow 1.3 by the os-ken steering app (``of_port`` on 127.0.0.1).
- Data plane: cam ─ s1 ─ R1 ─ R2 ─ MEC-1 and R1 ─ R3 ─ MEC-2. R1–R2 and R1–R3 are IPv6-only
  (SRv6 transport); the access and MEC links are IPv4. The service anycast
  198.51.100.10/32 lives on both MECs' loopbacks.
- The flow controller owns the steering: R1's route to the anycast and the egress
  End.DX4 SIDs on R2/R3 are *not* installed here. The return path (MEC → camera) is
  static: R2/R3 encapsulate towards R1's End.DX4 SID fc00:0:1::100.
- Management: ``ctl`` (controller) has a /30 to cam, MEC-1 and MEC-2, so every TCP/UDP
  peer of the controller is in a namespace (TCP from the root namespace is refused).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from labs.mn import MininetTopo
from labs.netns import Lab, LabError, Ns
from srv6.dataplane.netlink import NetlinkProgrammer
from srv6.dataplane.state import Seg6LocalRoute, Seg6Route, route_from_dict

RTPROT_STATIC = 4  # rtnetlink.h: a route an administrator made

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
    mn: MininetTopo
    access: str  # the access switch's bridge name


NODES = ("cam", "r1", "r2", "r3", "mec1", "mec2", "ctl")


def build(lab: Lab, of_port: int) -> Topology:
    """Build and start the topology; ``of_port``: the access switch's controller."""
    mn = MininetTopo(lab)
    for n in NODES:
        mn.host(n)
    access = mn.switch("s1", of_port)
    mn.link("cam", "s1", "eth0", None, ["10.0.0.2/24"])
    mn.link("r1", "s1", "eth0", None, ["10.0.0.1/24"])
    mn.link("r1", "r2", "eth1", "eth0", ["fc00:12::1/64"], ["fc00:12::2/64"])
    mn.link("r1", "r3", "eth2", "eth0", ["fc00:13::1/64"], ["fc00:13::3/64"])
    mn.link("r2", "mec1", "eth1", "eth0", ["10.0.1.1/24"], [f"{MEC_ADDR['MEC-1']}/24"])
    mn.link("r3", "mec2", "eth1", "eth0", ["10.0.2.1/24"], [f"{MEC_ADDR['MEC-2']}/24"])
    mn.link("ctl", "cam", "m0", "mgmt", ["172.16.0.1/30"], ["172.16.0.2/30"])
    mn.link("ctl", "mec1", "m1", "mgmt", ["172.16.1.1/30"], ["172.16.1.2/30"])
    mn.link("ctl", "mec2", "m2", "mgmt", ["172.16.2.1/30"], ["172.16.2.2/30"])
    ns = mn.start()
    t = Topology(ns["cam"], ns["r1"], ns["r2"], ns["r3"], ns["mec1"], ns["mec2"], ns["ctl"],
                 mn=mn, access=access)
    for r in (t.r1, t.r2, t.r3):
        r.enable_forwarding(srv6=True)
    for node in (t.cam, t.r1, t.r2, t.r3, t.mec1, t.mec2, t.ctl):
        node.sysctl("net.ipv4.conf.all.rp_filter", 0)
        node.sysctl("net.ipv4.conf.default.rp_filter", 0)

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
        static_srv6(r, Seg6Route(dst="10.0.0.0/24", segments=("fc00:0:1::100",),
                                 dev="eth0"))
    static_srv6(t.r1, Seg6LocalRoute(sid="fc00:0:1::100", action="End.DX4", nh4="10.0.0.2",
                                     dev="eth0"))
    return t


def static_srv6(node: Ns, *routes: Seg6Route | Seg6LocalRoute) -> None:
    """Hand-made SRv6 routes (``proto static``: CPN's programmer leaves them alone), in
    whichever kernel dataplane the node has (seg6 lwtunnels or eBPF, ``seg6bpf``).

    Programmed by a short child process started inside the node (``ip netns exec``):
    pyroute2's own namespace switching, used from this long-lived process on a second
    Mininet run, was seen to open a namespace without the node's devices ("no interface
    'eth0'") — the child needs none."""
    payload = json.dumps([r.to_dict() for r in routes])
    res = node.run([sys.executable, "-m", "labs.security_video.topology"], input=payload,
                   check=False)
    if res.returncode != 0:
        raise LabError(f"[{node.name}] static SRv6 routes refused: "
                       f"{(res.stderr or res.stdout).strip()}")


def _program_here(payload: str) -> str:
    """Child side of ``static_srv6``: program the routes in this namespace; '' or why not."""
    routes = [route_from_dict(d) for d in json.loads(payload)]
    prog = NetlinkProgrammer("static", protocol=RTPROT_STATIC)
    try:
        prog.load(prog.read_actual().merged(routes))
        res = prog.commit()
        return res.error if res.failed else ""
    finally:
        prog.close()


def steering_route(r1: Ns) -> str:
    """R1's current route to the service anycast (text), '' if none."""
    return r1.run(f"ip route show {ANYCAST}/32", check=False).stdout.strip()


if __name__ == "__main__":  # static_srv6's child, inside the node's namespace
    why = _program_here(sys.stdin.read())
    if why:
        sys.exit(why)
