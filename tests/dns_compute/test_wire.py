"""Query parser and responder on bad input: right rcode, never a crash (issue 5 "Bad input")."""

from __future__ import annotations

import struct

import dns.edns
import dns.message
import dns.rcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dns_compute.responder import Responder, WireZone
from dns_compute.wire import (
    RCODE_BADVERS,
    RCODE_FORMERR,
    RCODE_NOTIMP,
    Query,
    Reject,
    parse_query,
)
from dns_compute.zone import ZoneInput, build_zone
from tests.dns_compute.topo import ZONE, dns_section, entities


def _responder() -> Responder:
    ents = entities()
    from controller.models import (
        ComputeMetrics,
        ComputeResource,
        Link,
        Router,
        Service,
        Site,
    )

    def of(c: type) -> list:  # type: ignore[type-arg]
        return [e for e in ents if isinstance(e, c)]

    z = build_zone(ZoneInput(ZONE, dns_section(), of(Site), of(Router), of(Link), of(Service),
                             of(ComputeMetrics), of(ComputeResource)), 1)
    return Responder(WireZone.compile(z))


RESPONDER = _responder()


def _query(name: str = "video.svc.cpn.example", rdtype: str = "A", **kw: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()  # type: ignore[arg-type]


def _ecs_query(family: int, source: int, scope: int, addr: bytes) -> bytes:
    body = struct.pack("!HBB", family, source, scope) + addr
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 4 + len(body)) + \
        struct.pack("!HH", 8, len(body)) + body
    base = bytearray(_query())
    base[11] = 1  # ARCOUNT = 1
    return bytes(base) + opt


def test_parses_plain_query() -> None:
    q = parse_query(_query("Video.SVC.cpn.example", "SVCB"))
    assert isinstance(q, Query)
    assert q.qname == b"\x05video\x03svc\x03cpn\x07example\x00"
    assert q.qtype == 64 and q.qclass == 1 and not q.edns


def test_parses_ecs() -> None:
    q = parse_query(_ecs_query(1, 24, 0, bytes([10, 0, 1])))
    assert isinstance(q, Query) and q.ecs is not None
    assert (q.ecs.family, q.ecs.source, q.ecs.address) == (1, 24, bytes([10, 0, 1, 0]))


def test_short_and_response_messages_are_dropped() -> None:
    assert parse_query(b"\x00\x01") == Reject(None, why="shorter than a DNS header")
    resp = bytearray(_query())
    resp[2] |= 0x80
    r = parse_query(bytes(resp))
    assert isinstance(r, Reject) and r.rcode is None
    assert RESPONDER.respond(bytes(resp))[0] is None


def test_notify_opcode_is_notimp() -> None:
    msg = bytearray(_query())
    msg[2] = (msg[2] & 0x87) | (4 << 3)
    out, _ = RESPONDER.respond(bytes(msg))
    assert out is not None and dns.message.from_wire(out).rcode() == RCODE_NOTIMP


def test_oversized_name_is_formerr() -> None:
    labels = b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\x00"
    msg = _query()[:12] + labels + b"\x00\x01\x00\x01"
    r = parse_query(msg)
    assert isinstance(r, Reject) and r.rcode == RCODE_FORMERR and "255" in r.why


def test_compressed_question_name_is_formerr() -> None:
    msg = _query()[:12] + b"\xc0\x0c\x00\x01\x00\x01"
    r = parse_query(msg)
    assert isinstance(r, Reject) and r.rcode == RCODE_FORMERR


def test_edns_version_1_is_badvers() -> None:
    out, _ = RESPONDER.respond(_query(use_edns=1))
    assert out is not None
    msg = dns.message.from_wire(out)
    assert msg.rcode() == RCODE_BADVERS


def test_unknown_class_is_refused() -> None:
    out, _ = RESPONDER.respond(_query(rdclass="CH"))
    assert out is not None and dns.message.from_wire(out).rcode() == dns.rcode.REFUSED


def test_two_opt_records_are_formerr() -> None:
    base = bytearray(_query())
    base[11] = 2
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    r = parse_query(bytes(base) + opt + opt)
    assert isinstance(r, Reject) and r.rcode == RCODE_FORMERR


@given(source=st.integers(0, 255), scope=st.integers(0, 255),
       addr=st.binary(max_size=20), family=st.sampled_from([0, 1, 2, 3]))
def test_ecs_lengths_validated(source: int, scope: int, addr: bytes, family: int) -> None:
    """RFC 7871 §6/§7.1.1: wrong lengths, non-zero scope, stray bits ⇒ FORMERR."""
    msg = _ecs_query(family, source, scope, addr)
    r = parse_query(msg)
    width = {1: 4, 2: 16}.get(family)
    valid = (width is not None and source <= width * 8 and scope == 0
             and len(addr) == (source + 7) // 8
             and not (source % 8 and addr and addr[-1] & (0xFF >> (source % 8))))
    if valid:
        assert isinstance(r, Query) and r.ecs is not None and r.ecs.source == source
    else:
        assert isinstance(r, Reject) and r.rcode == RCODE_FORMERR, r
    out, _ = RESPONDER.respond(msg)
    assert out is not None
    assert dns.message.from_wire(out).rcode() == (0 if valid else RCODE_FORMERR)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_crash(data: bytes) -> None:
    r = parse_query(data)
    assert isinstance(r, Query | Reject)
    out, _ = RESPONDER.respond(data)
    if out is not None:
        assert out[:2] == data[:2] and out[2] & 0x80  # our id, QR set


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, 200), byte=st.integers(0, 255), cut=st.integers(0, 200),
       edns=st.booleans())
def test_fuzz_mutated_queries(pos: int, byte: int, cut: int, edns: bool) -> None:
    opts = [dns.edns.ECSOption.from_text("10.0.1.0/24")] if edns else []
    good = _query(use_edns=0 if edns else False, options=opts)
    msg = bytearray(good)
    msg[pos % len(msg)] = byte
    msg = msg[:max(12, len(msg) - cut % 8)]
    out, _ = RESPONDER.respond(bytes(msg))
    if out is not None:
        parsed = dns.message.from_wire(out, ignore_trailing=True)
        assert parsed.id == int.from_bytes(msg[:2], "big")
