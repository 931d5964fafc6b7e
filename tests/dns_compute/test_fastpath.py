"""The template fast path answers exactly as the full path, or leaves the query to it."""

from __future__ import annotations

import dns.edns
import dns.message
from hypothesis import given, settings
from hypothesis import strategies as st

from dns_compute.fastpath import fast_answer, scope_of
from dns_compute.keeper import ZoneKeeper
from dns_compute.responder import Responder, WireZone
from tests.dns_compute.topo import ZONE, dns_section, entities

NAMES = ["video.svc.cpn.example", "mec-1.video.svc.cpn.example",
         "mec-2.video.svc.cpn.example", "_video._udp.svc.cpn.example",
         "_compute.mec-1.cpn.example", "svc.cpn.example", "cpn.example",
         "nothing.cpn.example", "a.b.nothing.cpn.example", "example.org", "xcpn.example"]
TYPES = ["A", "AAAA", "SVCB", "SRV", "TXT", "MX", "SOA", "NS", "HTTPS"]
SUBNETS = ["10.0.0.0/24", "10.0.1.0/24", "10.0.7.0/24", "10.0.0.0/16", "10.0.0.0/8",
           "10.0.1.128/25", "192.0.2.0/24", "0.0.0.0/0", "2001:db8::/56", "10.0.0.0/12"]
SOURCES = ["10.0.0.9", "10.0.1.7", "192.0.2.1", "::1", "not-an-address"]


def _responder() -> tuple[Responder, WireZone]:
    k = ZoneKeeper(ZONE, dns_section())
    k.load(entities())
    k.rebuild()
    z = k.responder.zone
    assert z is not None and z.fast is not None
    return k.responder, z


RESPONDER, ZONE_WIRE = _responder()


def _spell(name: str, flips: list[bool]) -> str:
    return "".join(c.upper() if f else c for c, f in zip(name, flips + [False] * len(name),
                                                         strict=False))


@settings(max_examples=600, deadline=None)
@given(name=st.sampled_from(NAMES), flips=st.lists(st.booleans(), max_size=30),
       rdtype=st.sampled_from(TYPES), rd=st.booleans(), edns=st.sampled_from([None, 0]),
       payload=st.sampled_from([0, 512, 600, 1232, 4096]), do=st.booleans(),
       subnet=st.none() | st.sampled_from(SUBNETS), source=st.sampled_from(SOURCES),
       qid=st.integers(0, 65535))
def test_fast_path_answers_byte_for_byte_as_the_full_path(
        name: str, flips: list[bool], rdtype: str, rd: bool, edns: int | None, payload: int,
        do: bool, subnet: str | None, source: str, qid: int) -> None:
    opts = [dns.edns.ECSOption.from_text(subnet)] if subnet else []
    use_edns = 0 if subnet else edns
    q = dns.message.make_query(_spell(name, flips), rdtype, use_edns=use_edns,  # type: ignore[arg-type]
                               payload=payload or 1232, want_dnssec=do and use_edns is not None,
                               options=opts)
    q.id = qid
    if not rd:
        q.flags &= ~dns.flags.RD
    wire = q.to_wire()
    fast = fast_answer(ZONE_WIRE.fast, wire, source)  # type: ignore[arg-type]
    full = RESPONDER.respond_full(wire, source, False, ZONE_WIRE)
    if fast is not None:
        assert fast == full
    assert RESPONDER.respond(wire, source) == full


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=0, max_size=80))
def test_fast_path_never_answers_what_the_full_path_refuses_to_parse(data: bytes) -> None:
    fast = fast_answer(ZONE_WIRE.fast, data, "192.0.2.1")  # type: ignore[arg-type]
    if fast is not None:
        assert fast == RESPONDER.respond_full(data, "192.0.2.1", False, ZONE_WIRE)


def test_ordinary_queries_take_the_fast_path() -> None:
    for name in NAMES:
        for subnet in (None, "10.0.0.0/24", "10.0.9.0/24"):
            opts = [dns.edns.ECSOption.from_text(subnet)] if subnet else []
            q = dns.message.make_query(name.upper(), "A", use_edns=0 if subnet else None,
                                       options=opts)
            assert fast_answer(ZONE_WIRE.fast, q.to_wire(), "10.0.0.9") is not None, (  # type: ignore[arg-type]
                name, subnet)


def _scope_search(addr: int, width: int, start: int,
                  others: tuple[tuple[int, int], ...]) -> int:
    """The definition of the RFC 7871 scope, searched length by length (the oracle)."""
    for length in range(start, width + 1):
        if not any((addr >> (width - min(length, p))) == (net >> (width - min(length, p)))
                   for net, p in others):
            return length
    return width


@settings(max_examples=500, deadline=None)
@given(addr=st.integers(0, 2**32 - 1), start=st.integers(0, 32),
       nets=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), max_size=5))
def test_scope_closed_form_equals_the_search(addr: int, start: int,
                                             nets: list[tuple[int, int]]) -> None:
    others = tuple((n >> (32 - p) << (32 - p) if p else 0, p) for n, p in nets)
    assert scope_of(addr, 32, start, others) == _scope_search(addr, 32, start, others)
