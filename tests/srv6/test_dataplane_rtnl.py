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


# -- writes: the requests the eBPF dataplane sends (encoded here, sent in the lab tests)
def _decode_request(msg: bytes) -> tuple[int, int, bytes, dict[int, bytes]]:
    length, kind, flags, _seq, _pid = struct.unpack_from("=IHHII", msg, 0)
    assert length == len(msg)
    head = msg[16:28]
    return kind, flags, head, rtnl._attrs(msg, 28, len(msg))


def test_route_request_replace_carries_the_bpf_hook_fd_and_name() -> None:
    msg = rtnl.route_request("replace", 7, dst="fc00:3::d4/128", table=254, protocol=200,
                             oif=4, priority=1024, local=True,
                             bpf={"in": (9, "cpn-sid End.DX4 nh4=10.0.0.2")})
    kind, flags, head, at = _decode_request(msg)
    assert kind == rtnl.RTM_NEWROUTE
    assert flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | \
        rtnl.NLM_F_REPLACE
    fam, dst_len, _s, _t, table, proto, scope, rtype, _f = struct.unpack("=BBBBBBBBI", head)
    assert (fam, dst_len, table, proto, scope, rtype) == (
        socket.AF_INET6, 128, 254, 200, rtnl.RT_SCOPE_UNIVERSE, rtnl.RTN_LOCAL)
    assert at[rtnl.RTA_DST] == ipaddress.IPv6Address("fc00:3::d4").packed
    assert struct.unpack("=I", at[rtnl.RTA_OIF])[0] == 4
    assert struct.unpack("=I", at[rtnl.RTA_PRIORITY])[0] == 1024
    assert struct.unpack("=H", at[rtnl.RTA_ENCAP_TYPE][:2])[0] == rtnl.LWT_BPF
    hooks = rtnl._attrs(at[rtnl.RTA_ENCAP], 0, len(at[rtnl.RTA_ENCAP]))
    prog = rtnl._attrs(hooks[1], 0, len(hooks[1]))  # LWT_BPF_IN
    assert struct.unpack("=I", prog[rtnl.LWT_BPF_PROG_FD])[0] == 9
    assert prog[rtnl.LWT_BPF_PROG_NAME] == b"cpn-sid End.DX4 nh4=10.0.0.2\0"


def test_route_request_big_table_and_delete_of_any_scope() -> None:
    msg = rtnl.route_request("del", 8, dst="0.0.0.0/0", table=0x0C123456, protocol=200)
    kind, flags, head, at = _decode_request(msg)
    assert (kind, flags) == (rtnl.RTM_DELROUTE, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK)
    _fam, dst_len, _s, _t, table, _p, scope, rtype, _f = struct.unpack("=BBBBBBBBI", head)
    assert (dst_len, table, scope, rtype) == (0, rtnl.RT_TABLE_COMPAT,
                                              rtnl.RT_SCOPE_NOWHERE, 0)
    assert struct.unpack("=I", at[rtnl.RTA_TABLE])[0] == 0x0C123456
    assert rtnl.RTA_ENCAP not in at and rtnl.RTA_OIF not in at


def test_rule_request_add_is_exclusive() -> None:
    msg = rtnl.rule_request("add", 3, family=socket.AF_INET, fwmark=0x0C000001,
                            table=0x0C000001, priority=100)
    kind, flags, _head, at = _decode_request(msg)
    assert kind == rtnl.RTM_NEWRULE and flags & rtnl.NLM_F_EXCL
    assert struct.unpack("=I", at[rtnl.FRA_FWMARK])[0] == 0x0C000001
    assert struct.unpack("=I", at[rtnl.FRA_TABLE])[0] == 0x0C000001


def test_ack_refusal_raises_with_the_kernels_reason() -> None:
    reason = rta(rtnl.NLMSGERR_ATTR_MSG, b"Nexthop device is not up\0")
    body = struct.pack("=i", -19) + struct.pack("=IHHII", 40, rtnl.RTM_NEWROUTE, 5, 4, 0)
    err = struct.pack("=IHHII", 16 + len(body) + len(reason), rtnl.NLMSG_ERROR,
                      rtnl.NLM_F_CAPPED | rtnl.NLM_F_ACK_TLVS, 4, 0) + body + reason
    with pytest.raises(OSError, match="No such device.*Nexthop device is not up") as exc:
        rtnl.parse_ack(err, 4)
    assert exc.value.errno == 19
    ok = struct.pack("=IHHIIi", 36, rtnl.NLMSG_ERROR, rtnl.NLM_F_CAPPED, 5, 0, 0) + \
        struct.pack("=IHHII", 16, rtnl.RTM_NEWROUTE, 5, 5, 0)
    assert not rtnl.parse_ack(ok, 4)  # another request's ACK: not ours
    assert rtnl.parse_ack(ok, 5)
