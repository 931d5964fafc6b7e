"""Probe decoding (scapy, pure) and capture across real namespaces: an SRv6 frame with
the probe's nonce is decoded to the travel-order segment list; a frame without it is
ignored; the capture machinery sees a probe crossing a router."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from labs.netns import Lab
from srv6.intents.verify import MAGIC, decode_frame, probe, probe_address
from tests.conftest import needs_netns

SEGS = ["fc00:0:2::1", "fc00:0:3::1", "fc00:0:5:100::"]


def frame(nonce: bytes, segleft: int) -> bytes:
    # scapy's addresses are in wire order: index 0 = the last segment (RFC 8754 §2)
    pkt = (Ether() / IPv6(src="fc00:0:1::1", dst=SEGS[len(SEGS) - 1 - segleft])
           / IPv6ExtHdrSegmentRouting(addresses=list(reversed(SEGS)), segleft=segleft,
                                      lastentry=len(SEGS) - 1)
           / IP(src="10.0.0.2", dst="10.5.0.2") / UDP(dport=33434) / Raw(MAGIC + nonce))
    return bytes(pkt)


def test_decode_frame_returns_travel_order_and_needs_the_nonce() -> None:
    n = b"n" * 12
    assert decode_frame(frame(n, 0), n) == ("fc00:0:5:100::", 0, tuple(SEGS))
    assert decode_frame(frame(n, 2), n) == ("fc00:0:2::1", 2, tuple(SEGS))
    assert decode_frame(frame(n, 0), b"x" * 12) is None
    plain = bytes(Ether() / IPv6(dst="fc00::1") / UDP() / Raw(MAGIC + n))
    assert decode_frame(plain, n) == ("fc00::1", None, ())
    v4 = bytes(Ether() / IP(dst="10.5.0.2") / UDP() / Raw(MAGIC + n))
    assert decode_frame(v4, n) == ("10.5.0.2", None, ())
    assert probe_address("10.1.0.0/24") == "10.1.0.2"


@needs_netns
def test_probe_is_captured_where_it_arrives_and_reported_per_hop() -> None:
    """Plain IPv4 forwarding h → r → e (no SRv6 needed): the capture sockets see the
    probe at r and e; with no SRH the segment list is empty, so the check fails and
    says what the egress saw."""
    with Lab("vfy") as lab:
        h, r, e = lab.ns("h"), lab.ns("r"), lab.ns("e")
        lab.link(h, r, "r", "h", ["10.8.1.1/24"], ["10.8.1.2/24"])
        lab.link(r, e, "e", "r", ["10.8.2.1/24"], ["10.8.2.2/24"])
        r.enable_forwarding()
        h.run("ip route add default via 10.8.1.2")
        e.run("ip route add default via 10.8.2.1")
        res = probe(h.name, "10.8.2.2", SEGS, [("R", r.name), ("E", e.name)], "E",
                    timeout=2.0)
        assert [s.node for s in res.hops] == ["R", "E"]
        assert res.egress is not None and res.egress.dev == "r"
        assert res.egress.segments == () and not res.ok
        assert "expected" in res.detail
        assert all(s.ms >= 0 for s in res.hops)
        lost = probe(h.name, "10.8.9.9", SEGS, [("E", e.name)], "E", timeout=0.3)
        assert not lost.ok and "not seen at the egress E" in lost.detail


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
