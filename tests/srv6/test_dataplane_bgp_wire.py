"""BGP SR Policy codec (RFC 9830 / RFC 9831 / RFC 9012): known bytes, round trips
through our decoder (hypothesis), and a fuzz harness — the decoder only ever raises
``RemoteProtocolError`` on hostile input."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.errors import LocalProtocolError, RemoteProtocolError
from srv6.dataplane import bgp_wire as w
from srv6.dataplane.state import SRV6_BEHAVIORS, SrPolicyRoute, SrSegment, SrSegmentList

CTX = w.PathContext(local_as=65000, ibgp=True, as4=True, next_hop="192.0.2.1",
                    headend_id="192.0.2.9")


def body(msg: bytes) -> bytes:
    msgs, rest = w.split(msg)
    assert rest == b"" and len(msgs) == 1
    return msgs[0][1]


def roundtrip(route: SrPolicyRoute, ctx: w.PathContext = CTX) -> w.Update:
    return w.decode_update(body(w.encode_policy_update(route, ctx)))


def test_nlri_bytes_per_rfc9830() -> None:
    r = SrPolicyRoute.of(100, "10.0.0.5", ["fc00:2::1"], distinguisher=7)
    assert w.encode_nlri(r) == bytes([96]) + struct.pack("!II", 7, 100) + bytes([10, 0, 0, 5])
    r6 = SrPolicyRoute.of(100, "fc00:5::1", ["fc00:2::1"])
    assert w.encode_nlri(r6)[0] == 192 and len(w.encode_nlri(r6)) == 25


def test_segment_type_b_with_behaviour_and_structure() -> None:
    r = SrPolicyRoute(5, "fc00:5::1", (SrSegmentList((SrSegment("fc00:5::d4", "End.DX4",
                                                                (32, 16, 16, 0)),), 3),))
    tlv = w.encode_tunnel_encap(r)
    ttype, tlen = struct.unpack_from("!HH", tlv)
    assert ttype == 15 and tlen == len(tlv) - 4
    # Preference (12, len 6), then Segment List (128, 2-octet length)
    assert tlv[4:6] == bytes([12, 6]) and tlv[12] == 128
    sl = tlv[15:]
    assert sl[0] == 0  # reserved
    assert sl[1:3] == bytes([9, 6]) and struct.unpack_from("!I", sl, 5)[0] == 3  # weight
    assert sl[9:11] == bytes([13, 26]) and sl[11] == w.SEG_FLAG_B
    assert sl[13:29] == ipaddress.IPv6Address("fc00:5::d4").packed
    assert struct.unpack_from("!HHBBBB", sl, 29) == (17, 0, 32, 16, 16, 0)  # End.DX4 = 17


def test_update_carries_route_target_no_advertise_and_ibgp_attrs() -> None:
    upd = roundtrip(SrPolicyRoute.of(1, "fc00:5::1", ["fc00:2::1"]))
    assert upd.attrs[w.ATTR_EXT_COMMUNITIES] == b"\x01\x02" + bytes([192, 0, 2, 9, 0, 0])
    assert upd.attrs[w.ATTR_COMMUNITIES] == struct.pack("!I", w.NO_ADVERTISE)
    assert upd.attrs[w.ATTR_ORIGIN] == b"\x00" and upd.attrs[w.ATTR_AS_PATH] == b""
    assert w.ATTR_LOCAL_PREF in upd.attrs
    ebgp = roundtrip(SrPolicyRoute.of(1, "fc00:5::1", ["fc00:2::1"]),
                     w.PathContext(65001, False, True, "192.0.2.1", "192.0.2.9"))
    assert ebgp.attrs[w.ATTR_AS_PATH] == struct.pack("!BBI", 2, 1, 65001)
    assert w.ATTR_LOCAL_PREF not in ebgp.attrs


def test_ipv6_policy_over_ipv4_session_uses_mapped_next_hop() -> None:
    upd = roundtrip(SrPolicyRoute.of(1, "fc00:5::1", ["fc00:2::1"]))
    mp = upd.attrs[w.ATTR_MP_REACH]
    assert mp[3] == 16 and mp[4:20] == ipaddress.IPv6Address("::ffff:192.0.2.1").packed


def test_regression_gobgp_panics_when_path_name_is_last_sub_tlv() -> None:
    """GoBGP 3.10 reads 3 bytes past a Candidate Path Name sub-TLV; when it was the
    last one the daemon crashed (slice out of range). It is never encoded last."""
    r = SrPolicyRoute.of(1, "fc00:5::1", ["fc00:2::1"], path_name="cp")
    assert _sub_tlv_types(w.encode_tunnel_encap(r))[-1] != w.SUB_PATH_NAME


def _sub_tlv_types(tlv: bytes) -> list[int]:
    out, i, data = [], 0, tlv[4:]
    while i < len(data):
        code = data[i]
        if code >= 128:
            ln, i = struct.unpack_from("!H", data, i + 1)[0], i + 3
        else:
            ln, i = data[i + 1], i + 2
        out.append(code)
        i += ln
    return out


def test_withdraw_groups_by_family_and_splits_at_4096_bytes() -> None:
    routes = [SrPolicyRoute.of(c, "fc00:5::1", ["fc00:2::1"]) for c in range(1, 400)]
    routes += [SrPolicyRoute.of(7, "10.0.0.1", ["fc00:2::1"])]
    msgs = list(w.encode_withdraw(routes))
    assert len(msgs) >= 3 and all(len(m) <= w.MAX_MESSAGE for m in msgs)
    keys = [k for m in msgs for k in w.decode_update(body(m)).withdrawn]
    assert sorted(keys) == sorted(r.key for r in routes)


def test_too_big_policy_is_a_local_error_naming_the_fix() -> None:
    lists = tuple(SrSegmentList(tuple(SrSegment(f"fc00:{i}::{j + 1}", "End", (32, 16, 16, 0))
                                      for j in range(10))) for i in range(20))
    with pytest.raises(LocalProtocolError, match="fewer or shorter"):
        w.encode_policy_update(SrPolicyRoute(1, "fc00:5::1", lists), CTX)


def test_open_with_4_octet_as_and_families() -> None:
    msg = w.encode_open(w.Open(4200000000, 90, "192.0.2.1",
                               ((1, 73), (2, 73))))
    assert struct.unpack_from("!H", msg, 20)[0] == w.AS_TRANS
    got = w.decode_open(body(msg))
    assert got == w.Open(4200000000, 90, "192.0.2.1", ((1, 73), (2, 73)), True, True)


# ------------------------------------------------------------------ properties

ADDR6 = st.ip_addresses(v=6).map(str)
BEHAVIOR = st.sampled_from([None, *SRV6_BEHAVIORS])


@st.composite
def segments(draw: st.DrawFn) -> SrSegment:
    behavior = draw(BEHAVIOR)
    structure = None
    if behavior is not None and draw(st.booleans()):
        lb = draw(st.integers(1, 64))
        ln = draw(st.integers(0, 32))
        fn = draw(st.integers(1, 16))
        structure = (lb, ln, fn, draw(st.integers(0, 128 - lb - ln - fn)))
    return SrSegment(draw(ADDR6), behavior, structure)


NAME = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
policies = st.builds(
    SrPolicyRoute,
    color=st.integers(0, 2**32 - 1),
    endpoint=st.one_of(st.ip_addresses().map(str), st.sampled_from(["::", "0.0.0.0"])),
    segment_lists=st.lists(st.builds(SrSegmentList, st.lists(segments(), min_size=1,
                                                             max_size=5).map(tuple),
                                     st.integers(0, 2**32 - 1)),
                           min_size=1, max_size=3).map(tuple),
    distinguisher=st.integers(0, 2**32 - 1),
    preference=st.integers(0, 2**32 - 1),
    priority=st.one_of(st.none(), st.integers(0, 255)),
    binding_sid=st.one_of(st.none(), ADDR6),
    name=NAME, path_name=NAME,
)


@settings(max_examples=200, deadline=None)
@given(policies)
def test_every_policy_round_trips_through_the_decoder(route: SrPolicyRoute) -> None:
    upd = roundtrip(route)
    assert upd.policies == (route,) and not upd.other
    assert _sub_tlv_types(w.encode_tunnel_encap(route))[-1] != w.SUB_PATH_NAME
    (wd,) = list(w.encode_withdraw([route]))
    assert w.decode_update(body(wd)).withdrawn == (route.key,)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    for decode in (lambda d: w.decode_update(d), lambda d: w.decode_open(d),
                   lambda d: w.split(w.MARKER + d)):
        try:
            decode(data)
        except RemoteProtocolError:
            pass


@settings(max_examples=120, deadline=None)
@given(policies, st.data())
def test_fuzz_mutated_updates_only_raise_remote_protocol_error(route: SrPolicyRoute,
                                                               data: st.DataObject) -> None:
    raw = bytearray(body(w.encode_policy_update(route, CTX)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        try:
            w.decode_update(candidate)
        except RemoteProtocolError:
            pass


def test_ipv4_policy_over_ipv6_session_names_the_next_hop_fix() -> None:
    ctx = w.PathContext(65000, True, True, "fc00::1", "192.0.2.9")
    with pytest.raises(LocalProtocolError, match="bgp.next_hop"):
        w.encode_policy_update(SrPolicyRoute.of(1, "10.0.0.5", ["fc00:2::1"]), ctx)


def test_graceful_restart_capability_and_end_of_rib() -> None:
    msg = w.Open(65000, 90, "192.0.2.1", ((2, 73),), restart_time=120, restarting=True,
                 gr_families=((2, 73),))
    assert w.decode_open(body(w.encode_open(msg))) == msg
    eor = w.decode_update(body(w.encode_end_of_rib(2)))
    assert eor.end_of_rib == (2, 73) and eor.withdrawn == () and not eor.other
    with pytest.raises(LocalProtocolError, match="restart time"):
        w.encode_open(w.Open(65000, 90, "192.0.2.1", restart_time=5000))
