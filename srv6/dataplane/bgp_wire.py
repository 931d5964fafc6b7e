"""BGP messages for SR Policy (SAFI 73), sans-I/O: bytes in, values out; values in, bytes out.

Rules:
- No sockets, no clocks: ``bgp_session`` drives the state machine, ``bgp_srpolicy``
  owns the TCP connection. Everything here is a pure function and is fuzzed.
- What is encoded (RFC 4271 messages, RFC 4760 multiprotocol, RFC 9012 Tunnel
  Encapsulation attribute, RFC 9830 SR Policy NLRI and sub-TLVs, RFC 9831 SRv6 segment
  type B and SRv6 Binding SID):
  * OPEN with capabilities Multiprotocol (AFI 1/2, SAFI 73), Route Refresh, 4-octet AS;
  * one SR policy candidate path per UPDATE (RFC 9830 §2.1: the Tunnel Encapsulation
    attribute describes exactly one NLRI): MP_REACH_NLRI with NLRI = length (bits),
    distinguisher, colour, endpoint; ORIGIN IGP; AS_PATH; LOCAL_PREF (iBGP); the
    NO_ADVERTISE community and a Route Target extended community (IPv4-address
    format) carrying the headend's BGP Identifier (RFC 9830 §4.2.1: a policy without
    either is not usable by the receiver); the Tunnel Encapsulation attribute with one
    TLV of tunnel type 15 (SR Policy) carrying, in this order, Preference (12),
    Candidate Path Name (129), SRv6 Binding SID (20), Priority (15), Segment Lists
    (128: Weight 9 and type-B segments 13 with the optional endpoint behaviour and SID
    structure) and Policy Name (130). The order is free in RFC 9830; this one keeps
    the path name away from the end of the TLV, which crashes GoBGP 3.10 (its decoder
    reads 3 bytes past that sub-TLV);
  * withdrawals as MP_UNREACH_NLRI, several NLRIs of one family per UPDATE;
  * Graceful Restart (RFC 4724): the capability with the R bit and F bits, and the
    End-of-RIB marker (an empty MP_UNREACH_NLRI).
- Decoding accepts what the encoder produces and anything else RFC-shaped; sub-TLVs it
  does not model are skipped; a malformed length raises ``RemoteProtocolError`` naming
  the field and offset (the peer misbehaved), never ``IndexError``/``struct.error``.
- Misuse by the caller (a value that cannot be encoded) raises ``LocalProtocolError``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from controller.errors import LocalProtocolError, RemoteProtocolError, ValidationError

from .state import SRV6_BEHAVIORS, SrPolicyRoute, SrSegment, SrSegmentList

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE = 4096  # RFC 4271 §4.1 (no Extended Message capability)

OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5
AFI_IP, AFI_IP6, SAFI_SR_POLICY = 1, 2, 73
AS_TRANS = 23456

CAP_MP, CAP_ROUTE_REFRESH, CAP_GRACEFUL_RESTART, CAP_AS4 = 1, 2, 64, 65

ATTR_ORIGIN, ATTR_AS_PATH, ATTR_LOCAL_PREF, ATTR_COMMUNITIES = 1, 2, 5, 8
ATTR_MP_REACH, ATTR_MP_UNREACH, ATTR_EXT_COMMUNITIES, ATTR_TUNNEL_ENCAP = 14, 15, 16, 23
NO_ADVERTISE = 0xFFFFFF02

TUNNEL_SR_POLICY = 15
SUB_PREFERENCE, SUB_BINDING_SID, SUB_PRIORITY, SUB_SRV6_BSID = 12, 13, 15, 20
SUB_SEGMENT_LIST, SUB_PATH_NAME, SUB_POLICY_NAME = 128, 129, 130
SEG_WEIGHT, SEG_TYPE_B = 9, 13
SEG_FLAG_B = 0x10  # RFC 9830 §2.4.4.2: V A S B (bit 3: behaviour and structure present)

_CODE_BEHAVIOR = {v: k for k, v in SRV6_BEHAVIORS.items()}


# ----------------------------------------------------------------- message values


@dataclass(frozen=True, slots=True)
class Open:
    """OPEN: ``asn`` (4-octet when ``as4``), ``hold_time`` s, ``router_id`` (dotted),
    ``families`` ((afi, safi), …), ``route_refresh`` and ``as4`` capabilities;
    ``restart_time`` s of the Graceful Restart capability (RFC 4724; ``None`` = not
    announced), ``restarting`` (its R bit) and ``gr_families`` (families whose forwarding
    state is preserved: F bit set)."""

    asn: int
    hold_time: int
    router_id: str
    families: tuple[tuple[int, int], ...] = ()
    route_refresh: bool = True
    as4: bool = True
    restart_time: int | None = None
    restarting: bool = False
    gr_families: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Keepalive:
    pass


@dataclass(frozen=True, slots=True)
class Notification:
    """NOTIFICATION ``code``/``subcode`` (RFC 4271 §4.5) and ``data``."""

    code: int
    subcode: int
    data: bytes = b""

    def __str__(self) -> str:
        names = {1: "message header error", 2: "OPEN message error", 3: "UPDATE message error",
                 4: "hold timer expired", 5: "finite state machine error", 6: "cease"}
        return f"{names.get(self.code, 'error')} ({self.code}/{self.subcode})"


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    afi: int
    safi: int


@dataclass(frozen=True, slots=True)
class Update:
    """A decoded UPDATE, as far as SR policies go: ``policies`` advertised, ``withdrawn``
    policy keys, ``other`` = True when it carried anything else (e.g. unicast routes)."""

    policies: tuple[SrPolicyRoute, ...] = ()
    withdrawn: tuple[tuple[str, int, str], ...] = ()
    other: bool = False
    attrs: dict[int, bytes] = field(default_factory=dict)
    end_of_rib: tuple[int, int] | None = None


Message = Open | Keepalive | Notification | RouteRefresh | Update


@dataclass(frozen=True, slots=True)
class PathContext:
    """What the encoder needs from the session: ``local_as``, whether the peer is iBGP
    (``ibgp``), ``as4`` negotiated, the ``next_hop`` (our address on the session) and
    ``headend_id`` (the receiving router's BGP Identifier, for the Route Target)."""

    local_as: int
    ibgp: bool
    as4: bool
    next_hop: str
    headend_id: str


# ----------------------------------------------------------------------- framing


def frame(mtype: int, body: bytes) -> bytes:
    n = HEADER_LEN + len(body)
    if n > MAX_MESSAGE:
        raise LocalProtocolError(f"BGP message of {n} bytes exceeds {MAX_MESSAGE} "
                                 "(fix: fewer or shorter segment lists per policy)")
    return MARKER + struct.pack("!HB", n, mtype) + body


def split(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Complete messages ``(type, body)`` at the front of ``buf`` and the rest."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while len(buf) - pos >= HEADER_LEN:
        if buf[pos:pos + 16] != MARKER:
            raise RemoteProtocolError(f"BGP header at offset {pos}: marker is not all ones")
        length, mtype = struct.unpack_from("!HB", buf, pos + 16)
        if not HEADER_LEN <= length <= MAX_MESSAGE:
            raise RemoteProtocolError(f"BGP header at offset {pos}: bad length {length}")
        if len(buf) - pos < length:
            break
        out.append((mtype, bytes(buf[pos + HEADER_LEN:pos + length])))
        pos += length
    return out, bytes(buf[pos:])


class _Reader:
    """Bounds-checked reads over one field; errors name the field and offset."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int, field_name: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise RemoteProtocolError(f"{self.what}: {field_name} at offset {self.pos} needs "
                                      f"{n} bytes, {len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, f: str) -> int:
        return self.take(1, f)[0]

    def u16(self, f: str) -> int:
        return int.from_bytes(self.take(2, f), "big")

    def u32(self, f: str) -> int:
        return int.from_bytes(self.take(4, f), "big")

    def left(self) -> int:
        return len(self.data) - self.pos


# -------------------------------------------------------------------------- OPEN


def encode_open(msg: Open) -> bytes:
    caps = b""
    for afi, safi in msg.families:
        caps += struct.pack("!BBHBB", CAP_MP, 4, afi, 0, safi)
    if msg.route_refresh:
        caps += struct.pack("!BB", CAP_ROUTE_REFRESH, 0)
    if msg.restart_time is not None:
        if not 0 <= msg.restart_time <= 4095:
            raise LocalProtocolError(f"restart time {msg.restart_time} outside 0..4095 s")
        gr = struct.pack("!H", (0x8000 if msg.restarting else 0) | msg.restart_time)
        for afi, safi in msg.gr_families:
            gr += struct.pack("!HBB", afi, safi, 0x80)
        caps += struct.pack("!BB", CAP_GRACEFUL_RESTART, len(gr)) + gr
    if msg.as4:
        caps += struct.pack("!BBI", CAP_AS4, 4, msg.asn)
    params = struct.pack("!BB", 2, len(caps)) + caps if caps else b""
    my_as = msg.asn if msg.asn <= 0xFFFF else AS_TRANS
    if not msg.as4 and msg.asn > 0xFFFF:
        raise LocalProtocolError(f"AS {msg.asn} needs the 4-octet AS capability")
    body = struct.pack("!BHH4sB", 4, my_as, msg.hold_time,
                       ipaddress.IPv4Address(msg.router_id).packed, len(params)) + params
    return frame(OPEN, body)


def decode_open(body: bytes) -> Open:
    r = _Reader(body, "OPEN")
    version = r.u8("version")
    if version != 4:
        raise RemoteProtocolError(f"OPEN: BGP version {version}, only 4 is spoken")
    asn, hold = r.u16("my AS"), r.u16("hold time")
    router_id = str(ipaddress.IPv4Address(r.take(4, "BGP identifier")))
    params = _Reader(r.take(r.u8("optional parameters length"), "optional parameters"),
                     "OPEN parameters")
    families: list[tuple[int, int]] = []
    refresh = as4 = restarting = False
    restart_time: int | None = None
    gr_families: list[tuple[int, int]] = []
    while params.left():
        ptype, plen = params.u8("parameter type"), params.u8("parameter length")
        pval = params.take(plen, "parameter value")
        if ptype != 2:
            continue
        caps = _Reader(pval, "OPEN capabilities")
        while caps.left():
            code, clen = caps.u8("capability code"), caps.u8("capability length")
            cval = _Reader(caps.take(clen, f"capability {code}"), f"capability {code}")
            if code == CAP_MP and clen == 4:
                afi = cval.u16("AFI")
                cval.u8("reserved")
                families.append((afi, cval.u8("SAFI")))
            elif code == CAP_ROUTE_REFRESH:
                refresh = True
            elif code == CAP_AS4 and clen == 4:
                as4, asn = True, cval.u32("4-octet AS")
            elif code == CAP_GRACEFUL_RESTART and clen >= 2:
                head = cval.u16("restart flags and time")
                restarting, restart_time = bool(head & 0x8000), head & 0x0FFF
                while cval.left() >= 4:
                    afi, safi, flags = cval.u16("AFI"), cval.u8("SAFI"), cval.u8("flags")
                    if flags & 0x80:
                        gr_families.append((afi, safi))
    return Open(asn, hold, router_id, tuple(families), refresh, as4, restart_time,
                restarting, tuple(gr_families))


def encode_keepalive() -> bytes:
    return frame(KEEPALIVE, b"")


def encode_notification(msg: Notification) -> bytes:
    return frame(NOTIFICATION, struct.pack("!BB", msg.code, msg.subcode) + msg.data)


def encode_route_refresh(afi: int, safi: int) -> bytes:
    return frame(ROUTE_REFRESH, struct.pack("!HBB", afi, 0, safi))


# ------------------------------------------------------------- SR policy encoding


def _attr(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        flags |= 0x10
    if flags & 0x10:
        return struct.pack("!BBH", flags, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def _sub(code: int, value: bytes) -> bytes:
    # RFC 9012 §2: sub-TLV types 0-127 have a 1-octet length, 128-255 a 2-octet one
    if code < 128:
        if len(value) > 255:
            raise LocalProtocolError(f"sub-TLV {code} of {len(value)} bytes")
        return struct.pack("!BB", code, len(value)) + value
    return struct.pack("!BH", code, len(value)) + value


def _afi(route: SrPolicyRoute) -> int:
    return AFI_IP if route.family == 4 else AFI_IP6


def encode_nlri(route: SrPolicyRoute) -> bytes:
    ep = ipaddress.ip_address(route.endpoint).packed
    return struct.pack("!BII", (8 + len(ep)) * 8, route.distinguisher, route.color) + ep


def _segment(seg: SrSegment) -> bytes:
    sid = ipaddress.IPv6Address(seg.sid).packed
    if seg.behavior is None:
        return _sub(SEG_TYPE_B, b"\x00\x00" + sid)
    lb, ln, fn, arg = seg.structure or (0, 0, 0, 0)
    extra = struct.pack("!HHBBBB", SRV6_BEHAVIORS[seg.behavior], 0, lb, ln, fn, arg)
    return _sub(SEG_TYPE_B, bytes((SEG_FLAG_B, 0)) + sid + extra)


def encode_tunnel_encap(route: SrPolicyRoute) -> bytes:
    """The Tunnel Encapsulation attribute value: one SR Policy TLV (type 15)."""
    subs = _sub(SUB_PREFERENCE, struct.pack("!BBI", 0, 0, route.preference))
    if route.path_name:
        # never last: GoBGP 3.10 reads 3 bytes past this sub-TLV (and panics when they
        # are past the attribute); a segment list always follows it here
        subs += _sub(SUB_PATH_NAME, b"\x00" + route.path_name.encode())
    if route.binding_sid is not None:
        subs += _sub(SUB_SRV6_BSID, b"\x00\x00" + ipaddress.IPv6Address(route.binding_sid).packed)
    if route.priority is not None:
        subs += _sub(SUB_PRIORITY, struct.pack("!BB", route.priority, 0))
    for sl in route.segment_lists:
        body = b"\x00" + _sub(SEG_WEIGHT, struct.pack("!BBI", 0, 0, sl.weight))
        body += b"".join(_segment(s) for s in sl.segments)
        subs += _sub(SUB_SEGMENT_LIST, body)
    if route.name:
        subs += _sub(SUB_POLICY_NAME, b"\x00" + route.name.encode())
    return struct.pack("!HH", TUNNEL_SR_POLICY, len(subs)) + subs


def _common_attrs(ctx: PathContext) -> bytes:
    if ctx.ibgp:
        as_path = b""
    elif ctx.as4:
        as_path = struct.pack("!BBI", 2, 1, ctx.local_as)
    else:
        as_path = struct.pack("!BBH", 2, 1, ctx.local_as if ctx.local_as <= 0xFFFF else AS_TRANS)
    out = _attr(0x40, ATTR_ORIGIN, b"\x00") + _attr(0x40, ATTR_AS_PATH, as_path)
    if ctx.ibgp:
        out += _attr(0x40, ATTR_LOCAL_PREF, struct.pack("!I", 100))
    return out


def encode_policy_update(route: SrPolicyRoute, ctx: PathContext) -> bytes:
    """One UPDATE advertising ``route`` (one NLRI, RFC 9830 §2.1)."""
    afi = _afi(route)
    nh_addr = ipaddress.ip_address(ctx.next_hop)
    if afi == AFI_IP6 and nh_addr.version == 4:
        nh = ipaddress.IPv6Address(f"::ffff:{nh_addr}").packed  # RFC 4291 §2.5.5.2
    elif afi == AFI_IP and nh_addr.version == 6:
        raise LocalProtocolError("an IPv4 SR policy needs an IPv4 next hop, and the session "
                                 "runs over IPv6 (fix: set bgp.next_hop to an IPv4 address "
                                 "of CPN)")
    else:
        nh = nh_addr.packed
    mp = struct.pack("!HBB", afi, SAFI_SR_POLICY, len(nh)) + nh + b"\x00" + encode_nlri(route)
    rt = b"\x01\x02" + ipaddress.IPv4Address(ctx.headend_id).packed + b"\x00\x00"
    attrs = (_common_attrs(ctx)
             + _attr(0xC0, ATTR_COMMUNITIES, struct.pack("!I", NO_ADVERTISE))
             + _attr(0x90, ATTR_MP_REACH, mp)
             + _attr(0xC0, ATTR_EXT_COMMUNITIES, rt)
             + _attr(0xD0, ATTR_TUNNEL_ENCAP, encode_tunnel_encap(route)))
    return frame(UPDATE, struct.pack("!HH", 0, len(attrs)) + attrs)


def encode_end_of_rib(afi: int, safi: int = SAFI_SR_POLICY) -> bytes:
    """The End-of-RIB marker of a family (RFC 4724 §2): an UPDATE whose MP_UNREACH_NLRI
    carries no NLRI."""
    attrs = _attr(0x80, ATTR_MP_UNREACH, struct.pack("!HB", afi, safi))
    return frame(UPDATE, struct.pack("!HH", 0, len(attrs)) + attrs)


def encode_withdraw(routes: Iterable[SrPolicyRoute]) -> Iterator[bytes]:
    """UPDATEs withdrawing ``routes`` (MP_UNREACH_NLRI, grouped per family)."""
    by_afi: dict[int, list[bytes]] = {}
    for r in routes:
        by_afi.setdefault(_afi(r), []).append(encode_nlri(r))
    for afi, nlris in sorted(by_afi.items()):
        chunk: list[bytes] = []
        for n in [*nlris, None]:
            # 4096 − header 19 − lengths 4 − attribute header 4 − AFI/SAFI 3
            if n is None or sum(map(len, chunk)) + len(n) > MAX_MESSAGE - 30:
                if chunk:
                    mp = struct.pack("!HB", afi, SAFI_SR_POLICY) + b"".join(chunk)
                    attrs = _attr(0x90, ATTR_MP_UNREACH, mp)
                    yield frame(UPDATE, struct.pack("!HH", 0, len(attrs)) + attrs)
                chunk = []
            if n is not None:
                chunk.append(n)


# ------------------------------------------------------------- SR policy decoding


def _decode_nlri(r: _Reader, afi: int) -> tuple[int, int, str]:
    bits = r.u8("NLRI length")
    size = {AFI_IP: 12, AFI_IP6: 24}.get(afi)
    if size is None or bits != size * 8:
        raise RemoteProtocolError(f"SR Policy NLRI: length {bits} bits for AFI {afi} "
                                  f"(expected {size * 8 if size else '96 or 192'})")
    dist, color = r.u32("distinguisher"), r.u32("color")
    endpoint = str(ipaddress.ip_address(r.take(size - 8, "endpoint")))
    return dist, color, endpoint


def _decode_segment_list(data: bytes) -> SrSegmentList:
    r = _Reader(data, "Segment List sub-TLV")
    r.u8("reserved")
    weight = 1
    segs: list[SrSegment] = []
    while r.left():
        code, ln = r.u8("segment sub-TLV type"), r.u8("segment sub-TLV length")
        v = _Reader(r.take(ln, f"segment sub-TLV {code}"), f"segment sub-TLV {code}")
        if code == SEG_WEIGHT:
            v.take(2, "weight flags")
            weight = v.u32("weight")
        elif code == SEG_TYPE_B:
            if ln not in (18, 26):
                raise RemoteProtocolError(f"segment type B: length {ln} (18 or 26)")
            flags = v.u8("flags")
            v.u8("reserved")
            sid = str(ipaddress.IPv6Address(v.take(16, "SRv6 SID")))
            behavior, structure = None, None
            if ln == 26:
                code_b = v.u16("endpoint behavior")
                v.take(2, "reserved")
                st = tuple(v.take(4, "SID structure"))
                if flags & SEG_FLAG_B:
                    behavior = _CODE_BEHAVIOR.get(code_b)
                    if behavior is None:
                        raise RemoteProtocolError(
                            f"segment {sid}: endpoint behavior {code_b} is not one CPN knows")
                    structure = (st[0], st[1], st[2], st[3]) if behavior else None
            try:
                segs.append(SrSegment(sid, behavior, structure))
            except ValidationError as exc:
                raise RemoteProtocolError(f"segment {sid}: {exc}") from exc
        else:
            raise RemoteProtocolError(f"segment list: segment type {code} is not SRv6 type B")
    if not segs:
        raise RemoteProtocolError("Segment List sub-TLV without segments")
    return SrSegmentList(tuple(segs), weight)


def decode_tunnel_encap(data: bytes, color: int, endpoint: str,
                        distinguisher: int) -> SrPolicyRoute:
    r = _Reader(data, "Tunnel Encapsulation attribute")
    found: SrPolicyRoute | None = None
    while r.left():
        ttype, tlen = r.u16("tunnel type"), r.u16("tunnel TLV length")
        tval = r.take(tlen, f"tunnel TLV {ttype}")
        if ttype != TUNNEL_SR_POLICY:
            continue
        if found is not None:
            raise RemoteProtocolError("Tunnel Encapsulation: more than one SR Policy TLV")
        s = _Reader(tval, "SR Policy TLV")
        pref, prio, bsid, name, path_name = 100, None, None, "", ""
        lists: list[SrSegmentList] = []
        while s.left():
            code = s.u8("sub-TLV type")
            ln = s.u16(f"sub-TLV {code} length") if code >= 128 else s.u8(f"sub-TLV {code} length")
            v = _Reader(s.take(ln, f"sub-TLV {code}"), f"sub-TLV {code}")
            if code == SUB_PREFERENCE:
                v.take(2, "flags")
                pref = v.u32("preference")
            elif code == SUB_PRIORITY:
                prio = v.u8("priority")
            elif code == SUB_SRV6_BSID:
                v.take(2, "flags")
                bsid = str(ipaddress.IPv6Address(v.take(16, "SRv6 Binding SID")))
            elif code == SUB_SEGMENT_LIST:
                lists.append(_decode_segment_list(v.data))
            elif code in (SUB_PATH_NAME, SUB_POLICY_NAME):
                v.u8("reserved")
                try:
                    text = v.take(v.left(), "name").decode()
                except UnicodeDecodeError as exc:
                    raise RemoteProtocolError(f"sub-TLV {code}: name is not UTF-8") from exc
                if code == SUB_PATH_NAME:
                    path_name = text
                else:
                    name = text
        if not lists:
            raise RemoteProtocolError("SR Policy TLV without a Segment List sub-TLV")
        try:
            found = SrPolicyRoute(color, endpoint, tuple(lists), distinguisher, pref, prio,
                                  bsid, name, path_name)
        except ValidationError as exc:
            raise RemoteProtocolError(f"SR policy {color}/{endpoint}: {exc}") from exc
    if found is None:
        raise RemoteProtocolError("Tunnel Encapsulation attribute without an SR Policy TLV")
    return found


def decode_update(body: bytes) -> Update:
    r = _Reader(body, "UPDATE")
    withdrawn_len = r.u16("withdrawn routes length")
    other = withdrawn_len > 0
    r.take(withdrawn_len, "withdrawn routes")
    attrs_r = _Reader(r.take(r.u16("path attributes length"), "path attributes"),
                      "path attributes")
    other = other or r.left() > 0  # IPv4 unicast NLRI
    attrs: dict[int, bytes] = {}
    while attrs_r.left():
        flags, code = attrs_r.u8("attribute flags"), attrs_r.u8("attribute type")
        ln = attrs_r.u16(f"attribute {code} length") if flags & 0x10 \
            else attrs_r.u8(f"attribute {code} length")
        if code in attrs:
            raise RemoteProtocolError(f"UPDATE: attribute {code} appears twice")
        attrs[code] = attrs_r.take(ln, f"attribute {code}")
    policies: list[SrPolicyRoute] = []
    withdrawn: list[tuple[str, int, str]] = []
    if ATTR_MP_REACH in attrs:
        m = _Reader(attrs[ATTR_MP_REACH], "MP_REACH_NLRI")
        afi, safi = m.u16("AFI"), m.u8("SAFI")
        m.take(m.u8("next hop length"), "next hop")
        m.u8("reserved")
        if safi != SAFI_SR_POLICY:
            other = True
        else:
            keys = []
            while m.left():
                keys.append(_decode_nlri(m, afi))
            if len(keys) != 1:
                raise RemoteProtocolError(f"SR Policy UPDATE with {len(keys)} NLRIs (must be 1)")
            if ATTR_TUNNEL_ENCAP not in attrs:
                raise RemoteProtocolError("SR Policy UPDATE without a Tunnel Encapsulation "
                                          "attribute")
            dist, color, endpoint = keys[0]
            policies.append(decode_tunnel_encap(attrs[ATTR_TUNNEL_ENCAP], color, endpoint,
                                                dist))
    if ATTR_MP_UNREACH in attrs:
        m = _Reader(attrs[ATTR_MP_UNREACH], "MP_UNREACH_NLRI")
        afi, safi = m.u16("AFI"), m.u8("SAFI")
        eor = (afi, safi) if not m.left() and len(attrs) == 1 else None
        if safi != SAFI_SR_POLICY:
            other = eor is None
        else:
            while m.left():
                dist, color, endpoint = _decode_nlri(m, afi)
                withdrawn.append(("srpolicy", color, f"{endpoint}#{dist}"))
        return Update(tuple(policies), tuple(withdrawn), other, attrs, eor)
    return Update(tuple(policies), tuple(withdrawn), other, attrs)


def decode(mtype: int, body: bytes) -> Message:
    """One message body (after ``split``) → its value."""
    if mtype == OPEN:
        return decode_open(body)
    if mtype == KEEPALIVE:
        if body:
            raise RemoteProtocolError("KEEPALIVE with a body")
        return Keepalive()
    if mtype == NOTIFICATION:
        r = _Reader(body, "NOTIFICATION")
        return Notification(r.u8("error code"), r.u8("error subcode"), r.take(r.left(), "data"))
    if mtype == ROUTE_REFRESH:
        r = _Reader(body, "ROUTE-REFRESH")
        afi = r.u16("AFI")
        r.u8("reserved")
        return RouteRefresh(afi, r.u8("SAFI"))
    if mtype == UPDATE:
        return decode_update(body)
    raise RemoteProtocolError(f"unknown BGP message type {mtype}")
