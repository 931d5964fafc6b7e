"""Sans-I/O rtnetlink route codec (``srv6.dataplane.rtnl``): known messages decode,
arbitrary bytes never crash with anything but ``RemoteProtocolError``/``OSError``."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import RemoteProtocolError
from srv6.dataplane import rtnl


def rta(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * ((4 - len(raw) % 4) % 4)


def seg6_route(segs: list[str]) -> bytes:
    srh = struct.pack("=BBBBBBH", 0, 2 * len(segs), 4, len(segs) - 1, len(segs) - 1, 0, 0)
    srh += b"".join(ipaddress.IPv6Address(s).packed for s in segs)
    encap = rta(1, struct.pack("=i", 1) + srh)
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 200, 0, 1, 0)
    body += rta(rtnl.RTA_TABLE, struct.pack("=I", 254)) + rta(rtnl.RTA_DST, bytes([10, 2, 0, 0]))
    body += rta(rtnl.RTA_OIF, struct.pack("=i", 3))
    body += rta(rtnl.RTA_ENCAP_TYPE, struct.pack("=H", 5)) + rta(rtnl.RTA_ENCAP, encap)
    return struct.pack("=IHHII", 16 + len(body), rtnl.RTM_NEWROUTE, 2, 1, 0) + body


def test_seg6_route_decodes_in_wire_order() -> None:
    done = struct.pack("=IHHIIi", 20, rtnl.NLMSG_DONE, 2, 1, 0, 0)
    routes, finished = rtnl.parse(seg6_route(["fc00:5::d4", "fc00:2::1"]) + done)
    assert finished
    (r,) = routes
    assert (r["dst"], r["dst_len"], r["table"], r["oif"], r["protocol"]) == (
        "10.2.0.0", 24, 254, 3, 200)
    assert r["encap"] == {"type": "seg6", "mode": "encap", "segs": ["fc00:5::d4", "fc00:2::1"]}


def test_dump_request_asks_for_protocol() -> None:
    req = rtnl.dump_request(socket.AF_INET6, 7, 200)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags & rtnl.NLM_F_DUMP, seq, req[16 + 5]) == (
        len(req), rtnl.RTM_GETROUTE, rtnl.NLM_F_DUMP, 7, 200)


def test_truncated_message_is_a_protocol_error() -> None:
    whole = seg6_route(["fc00::1"])
    with pytest.raises(RemoteProtocolError, match="overruns"):
        rtnl.parse(whole[:40])  # header claims more bytes than arrived


@given(st.binary(max_size=300))
def test_fuzz_never_crashes_otherwise(data: bytes) -> None:
    try:
        rtnl.parse(data)
    except (RemoteProtocolError, OSError):
        pass
