"""The ``PolicyProgrammer`` contract against a real kernel: ``NetlinkProgrammer`` in a
namespace (GBA-6.4.3c), once per kernel SRv6 dataplane this kernel has — seg6 lwtunnels
and/or eBPF H.Encaps with the IPv6 core's SRH (``seg6bpf``; the eBPF one runs on every
kernel with ``CONFIG_LWTUNNEL_BPF``). Tampering is done with ``ip route`` (or, for routes
``ip`` cannot spell, by a second programmer) behind its back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from labs.netns import Lab, Ns
from srv6.dataplane import PolicyProgrammer, Seg6Route
from srv6.dataplane.netlink import NetlinkProgrammer
from srv6.dataplane.seg6bpf import Seg6Dataplane
from srv6.dataplane.state import RTPROT_CPN, Route, RouteOp, Seg6LocalRoute
from tests.conftest import needs_netns
from tests.srv6.test_programmer_contract import ProgrammerContract


def node_ns(lab: Lab) -> Ns:
    """One router namespace with eth0/eth1 (veths to a peer) and SRv6 enabled."""
    r1, peer = lab.ns("r1"), lab.ns("p")
    lab.link(r1, peer, "eth0", "eth0", ["10.0.0.1/24", "fd00::1/64"],
             ["10.0.0.2/24", "fd00::2/64"])
    lab.link(r1, peer, "eth1", "eth1", ["10.0.1.1/24", "fd01::1/64"],
             ["10.0.1.2/24", "fd01::2/64"])
    r1.enable_forwarding(srv6=True)
    return r1


def ip_args(route: Route) -> list[str]:
    """``ip`` words for a seg6 lwtunnel route (kernels with CONFIG_IPV6_SEG6_LWTUNNEL)."""
    if isinstance(route, Seg6Route):
        return ["ip", route.dst, "encap", "seg6", "mode", route.mode, "segs",
                ",".join(route.segments), "dev", route.dev]
    nh = ["nh4", route.nh4] if route.nh4 else ["nh6", route.nh6] if route.nh6 else []
    return ["ip", "-6", "route", route.sid, "encap", "seg6local", "action", route.action,
            *[x for x in nh if x], "dev", route.dev]


def add_by_intruder(ns: Ns, route: Route) -> None:
    """Install ``route`` as CPN's behind a programmer's back (eBPF routes cannot be spelt
    with ``ip`` without an ELF object: a second writer does it over netlink)."""
    other = NetlinkProgrammer("intruder", netns=ns.name, dataplane="bpf")
    try:
        other._apply(RouteOp("add", route))
    finally:
        other.close()


def kernel_dataplanes() -> list[Seg6Dataplane]:
    """The kernel SRv6 dataplanes this machine has (eBPF always; lwtunnels if built)."""
    if not Path("/var/run/netns").exists() and os.geteuid() != 0:
        return ["bpf"]
    try:
        with Lab("probe") as lab:
            p = NetlinkProgrammer("probe", netns=lab.ns("p").name)
            try:
                return ["bpf", "lwtunnel"] if p.dataplane == "lwtunnel" else ["bpf"]
            finally:
                p.close()
    except Exception:  # no root/namespaces: the needs_netns mark reports it
        return ["bpf"]


@needs_netns
@pytest.mark.lab
class TestNetlink(ProgrammerContract):
    @pytest.fixture(autouse=True, params=kernel_dataplanes())
    def _lab(self, request: pytest.FixtureRequest) -> Iterator[None]:
        self.dataplane: Seg6Dataplane = request.param
        self.inline = self.dataplane == "lwtunnel"
        with Lab("nl") as lab:
            self.ns = node_ns(lab)
            yield

    def make(self) -> PolicyProgrammer:
        return NetlinkProgrammer("r1", netns=self.ns.name, dataplane=self.dataplane)

    def tamper_delete(self, prog: PolicyProgrammer, route: Route) -> None:
        dst = route.dst if isinstance(route, Seg6Route) else route.sid
        fam = "-4" if isinstance(route, Seg6Route) and route.family == 4 else "-6"
        self.ns.run(["ip", fam, "route", "del", dst])

    def tamper_add(self, prog: PolicyProgrammer, route: Route) -> None:
        if self.dataplane == "bpf":
            add_by_intruder(self.ns, route)
            return
        args = ip_args(route)
        if args[1] != "-6":
            args = ["ip", "route", "add", *args[1:]]
        else:
            args = ["ip", "-6", "route", "add", *args[3:]]
        self.ns.run([*args, "proto", str(RTPROT_CPN)])

    def bad_route(self, prog: PolicyProgrammer) -> Route:
        return Seg6Route(dst="10.99.0.0/24", segments=("fc00:9::1",), dev="nosuchdev")

    def test_foreign_routes_are_left_alone(self, prog: PolicyProgrammer) -> None:
        # a SID route installed by someone else (proto boot) is not CPN's
        if self.dataplane == "bpf":
            self.ns.run("ip -6 route add local fc00:1::77 dev eth0")
        else:
            self.ns.run("ip -6 route add fc00:1::77 encap seg6local action End dev eth0")
        assert len(prog.read_actual()) == 0
        prog.load(prog.read_actual())
        assert prog.commit().ops == 0
        assert "fc00:1::77" in self.ns.run("ip -6 route show table all").stdout

    def test_kernel_shows_travel_order(self, prog: PolicyProgrammer) -> None:
        r = Seg6Route(dst="10.30.0.0/24", segments=("fc00:2::1", "fc00:3::1", "fc00:5::d4"),
                      dev="eth0")
        local = Seg6LocalRoute(sid="fc00:1::1", action="End", dev="eth0")
        from srv6.dataplane import NodeState
        prog.load(NodeState.of([r, local]))
        assert not prog.commit().failed
        out = self.ns.run("ip route show 10.30.0.0/24").stdout
        if self.dataplane == "bpf":
            assert "encap bpf xmit cpn-h.encaps segs=fc00:2::1,fc00:3::1,fc00:5::d4" in out
        else:
            assert "segs 3 [ fc00:2::1 fc00:3::1 fc00:5::d4 ]" in out, out


@needs_netns
@pytest.mark.lab
def test_raw_writes_refused_by_the_kernel_say_why_and_undo() -> None:
    """The eBPF dataplane writes over raw rtnetlink: a refusal (here a gateway on no
    reachable network) is a failed commit naming the kernel's errno and reason, and the
    route written before it in the same commit is undone."""
    with Lab("nlraw") as lab:
        ns = node_ns(lab)
        prog = NetlinkProgrammer("r1", netns=ns.name, dataplane="bpf")
        try:
            good = Seg6LocalRoute(sid="fc00:1::a", action="End", dev="eth0")
            bad = Seg6LocalRoute(sid="fc00:1::b", action="End.DX4", dev="eth0",
                                 nh4="192.0.2.9")  # no route to this next hop
            from srv6.dataplane import NodeState
            prog.load(NodeState.of([good, bad]))
            res = prog.commit()
            assert res.failed
            assert "fc00:1::b" in res.error and "unreachable" in res.error.lower(), res.error
            assert len(prog.read_actual()) == 0
            assert "fc00:1::a" not in ns.run("ip -6 route show table all").stdout
        finally:
            prog.close()


@needs_netns
@pytest.mark.lab
def test_next_hop_rule_written_twice_stays_one_rule() -> None:
    """A SID with a next hop re-programmed (its table was removed by hand): the fwmark
    rule already there is kept, not duplicated (``EEXIST`` on an exclusive add)."""
    from srv6.dataplane import NodeState
    from srv6.dataplane.seg6bpf import mark_of

    with Lab("nlrule") as lab:
        ns = node_ns(lab)
        prog = NetlinkProgrammer("r1", netns=ns.name, dataplane="bpf")
        try:
            sid = Seg6LocalRoute(sid="fc00:1::d4", action="End.DX4", dev="eth0",
                                 nh4="10.0.0.2")
            prog.load(NodeState.of([sid]))
            assert not prog.commit().failed
            mark = mark_of("fc00:1::d4")
            ns.run(["ip", "route", "flush", "table", str(mark)])
            assert len(prog.read_actual()) == 0  # its next-hop table is gone
            res = prog.commit()
            assert not res.failed and res.ops == 1, res
            assert list(prog.read_actual()) == [sid]
            rules = ns.run(["ip", "rule", "show"]).stdout
            assert rules.count(f"fwmark {mark:#x}") == 1, rules
            assert "10.0.0.2" in ns.run(["ip", "route", "show", "table", str(mark)]).stdout
        finally:
            prog.close()


@needs_netns
@pytest.mark.lab
def test_prepare_enables_srh_and_reads_the_source_before_any_write() -> None:
    """``prepare`` (called when the controller opens a node) does the first write's
    set-up ahead of it: SRH processing on, the encapsulation source known; a node
    without a global IPv6 address yet still prepares (the source is resolved later)."""
    with Lab("nlprep") as lab:
        ns = node_ns(lab)
        for dev in ("all", "eth0"):
            ns.sysctl(f"net.ipv6.conf.{dev}.seg6_enabled", 0)
        bare = lab.ns("bare")
        for name in (ns.name, bare.name):
            prog = NetlinkProgrammer("r1", netns=name, dataplane="bpf")
            try:
                prog.prepare()
                if name == ns.name:
                    assert prog._sources["eth0"] == "fd00::1"
                    for dev in ("all", "eth0", "eth1"):
                        out = ns.run(["sysctl", "-n", f"net.ipv6.conf.{dev}.seg6_enabled"])
                        assert out.stdout.strip() == "1", dev
                else:
                    assert prog._sources == {}
            finally:
                prog.close()
