"""eBPF SRv6 dataplane (``seg6bpf``): the header and program it builds, the names it
reads back, and — in a namespace pair — what a real kernel puts on the wire (RFC 8754
SRH in travel order, outer payload length, the inner DSCP copied outward)."""

from __future__ import annotations

import ipaddress
import struct
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.utils import rdpcap

from controller.errors import CommitError
from labs.netns import Lab
from srv6.dataplane import NodeState, Seg6LocalRoute, Seg6Route
from srv6.dataplane import seg6bpf as sb
from srv6.dataplane.netlink import NetlinkProgrammer
from tests.conftest import needs_netns

SEGS = ("fc00:2::1", "fc00:3::1", "fc00:5::d4")


def test_header_is_ipv6_with_srh_in_wire_order() -> None:
    inner = bytes(IP(src="10.1.0.2", dst="10.2.0.2") / UDP(dport=5004) / b"x")
    hdr = bytearray(sb.encap_header("fc00:1::1", SEGS, 4))
    assert hdr[4:6] == b"\0\0"  # the program writes the payload length per packet
    struct.pack_into("!H", hdr, 4, len(hdr) - 40 + len(inner))
    pkt = IPv6(bytes(hdr) + inner)
    srh = pkt[IPv6ExtHdrSegmentRouting]
    assert pkt.nh == 43 and pkt.dst == SEGS[0] and pkt.src == "fc00:1::1"
    assert srh.addresses == list(reversed(SEGS))  # Segment List[0] = last segment
    assert srh.segleft == 2 and srh.lastentry == 2 and srh.nh == 4 and srh.type == 4
    assert pkt[IP].dst == "10.2.0.2"


def test_program_jumps_stay_inside_and_end_in_exit() -> None:
    for version in (4, 6):
        code = sb.encap_program(sb.encap_header("fc00:1::1", SEGS, version), version)
        n = len(code) // 8
        assert len(code) % 8 == 0 and code[-8] == 0x95  # EXIT
        for i in range(n):
            op, off = code[8 * i], int.from_bytes(code[8 * i + 2:8 * i + 4], "little",
                                                  signed=True)
            if op == 0x55:  # JNE imm
                assert 0 <= i + 1 + off < n


def test_too_many_segments_is_refused_with_the_fix() -> None:
    segs = tuple(f"fc00:{i:x}::1" for i in range(1, 15))
    with pytest.raises(CommitError, match="fix: use 1 to 13 segments"):
        sb.encap_header("fc00:1::1", segs, 4)
    assert len(sb.encap_header("fc00:1::1", segs[:13], 4)) <= sb.MAX_HEADROOM


@given(st.lists(st.ip_addresses(v=6).map(str), min_size=1, max_size=13))
def test_encap_name_round_trips(segs: list[str]) -> None:
    got = sb.decode_name(sb.encap_name(tuple(segs)))
    assert got is not None and got.kind == "encap" and got.segments == tuple(segs)


@pytest.mark.parametrize(("action", "nh4", "nh6"), [
    ("End", None, None), ("End.DX4", "10.0.0.2", None), ("End.X", None, "fd00::2"),
    ("End.DX6", None, "fd00::2")])
def test_sid_name_round_trips(action: str, nh4: str | None, nh6: str | None) -> None:
    got = sb.decode_name(sb.sid_name(action, nh4, nh6))
    assert got == sb.Decoded("sid", action=action, nh4=nh4, nh6=nh6)


@pytest.mark.parametrize("name", ["", "cpn-h.encaps", "cpn-h.encaps segs=", "other x",
                                  "cpn-sid", "cpn-sid End nh4=1 nh6=2 extra"])
def test_names_cpn_did_not_write_are_not_read_as_cpn(name: str) -> None:
    assert sb.decode_name(name) is None


@needs_netns
@pytest.mark.lab
def test_kernel_encapsulates_with_length_and_dscp(tmp_path: Path) -> None:
    with Lab("bpf") as lab:
        a, b = lab.ns("a"), lab.ns("b")
        lab.link(a, b, "eth0", "eth0", ["fd00::1/64", "10.9.0.1/24"],
                 ["fd00::2/64", "10.9.0.2/24"])
        a.address("lo", ["fc00:1::1/128", "10.1.0.1/32"])
        a.run("ip -6 route add fc00::/16 via fd00::2")
        prog = NetlinkProgrammer("a", netns=a.name, dataplane="bpf")
        try:
            prog.load(NodeState.of([
                Seg6Route(dst="10.2.0.0/24", segments=SEGS, dev="eth0"),
                Seg6Route(dst="fd20::/64", segments=SEGS[:1], dev="eth0"),
                Seg6LocalRoute(sid="fc00:1::d4", action="End.DX4", nh4="10.9.0.2",
                               dev="eth0")]))
            res = prog.commit()
            assert not res.failed, res.error
            assert prog.read_actual() == prog._candidate  # read back from the names
        finally:
            prog.close()
        pcap = tmp_path / "b.pcap"
        # one IPv4 (DSCP EF) and one IPv6 (TC 0x28) datagram, resent until both are seen
        cap = subprocess.Popen(b.argv(["tcpdump", "-U", "-c", "2", "-ni", "eth0", "-w",
                                       str(pcap), "ip6 and dst net fc00::/16 and "
                                       "(ip6[40] == 4 or ip6[40] == 41)"]),
                               stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while cap.poll() is None and time.monotonic() < deadline:
                a.run(["python3", "-c", "import socket;s=socket.socket(2,2);"
                       "s.setsockopt(0,1,0xb8);s.sendto(b'hello',('10.2.0.2',5004))"])
                a.run(["python3", "-c", "import socket;s=socket.socket(10,2);"
                       "s.setsockopt(41,67,0x28);s.sendto(b'hi6',('fd20::2',5004))"])
                time.sleep(0.3)
        finally:
            if cap.poll() is None:
                cap.terminate()
            cap.wait(5)
        pkts = [p for p in rdpcap(str(pcap)) if IPv6ExtHdrSegmentRouting in p]
        v4 = next(p for p in pkts if p[IPv6ExtHdrSegmentRouting].nh == 4)
        v6 = next(p for p in pkts if p[IPv6ExtHdrSegmentRouting].nh == 41)
        assert v4[IPv6].tc == 0xB8 and v4[IPv6].plen == len(bytes(v4[IPv6].payload))
        assert v4[IPv6ExtHdrSegmentRouting].addresses == list(reversed(SEGS))
        assert bytes(v4[UDP].payload) == b"hello" and v4[IP].tos == 0xB8
        assert v6[IPv6].tc == 0x28 and v6[IPv6ExtHdrSegmentRouting].nh == 41
        assert ipaddress.IPv6Address(v6[IPv6].src) == ipaddress.IPv6Address("fc00:1::1")
        assert "End.DX4 nh4=10.9.0.2" in a.run("ip -6 route show table all").stdout
        # the SID's next hop: its mark → its own table → default via nh4
        mark = sb.mark_of("fc00:1::d4")
        assert f"fwmark {mark:#x} lookup {mark}" in a.run("ip rule").stdout
        assert "default via 10.9.0.2" in a.run(f"ip route show table {mark}").stdout
