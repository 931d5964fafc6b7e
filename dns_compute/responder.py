"""Authoritative answers from a pre-rendered zone (sans-I/O; the server owns sockets).

Rules:
- ``WireZone.compile(zone)`` renders every RRset to wire form once (dnspython, off the
  hot path); answering is byte concatenation. Owner names in answers are compression
  pointers to the question (0xC00C).
- Rcodes: out-of-zone name or class other than IN → REFUSED (not authoritative, no
  AA); zone transfers over this responder → REFUSED (Knot serves those); existing name
  without the type, or an empty non-terminal → NOERROR/NODATA with the SOA; no such
  name → NXDOMAIN with the SOA (RFC 2308); parse errors per ``wire.parse_query``.
- ECS (RFC 7871): a steered name's A/AAAA come from the bucket of the most specific
  configured client subnet containing the ECS prefix (or, without ECS, the source
  address). The echoed option keeps family/source/address; the scope is the matched
  subnet's length (longer if a more specific configured subnet nests inside it), the
  source length when no subnet matches, and 0 for answers that do not depend on the
  client (§7.2.1). Source prefix 0 = client opted out: default answer, scope 0.
- Truncation: a UDP answer larger than the requester's EDNS size (512 without EDNS)
  is replaced by the header + question with TC set; the client retries over TCP.
- ``respond`` also says how the answer may be cached by the server: ``CACHE_ANY``
  (depends only on the query bytes after the id), ``CACHE_SOURCE`` (also on the source
  address), or ``CACHE_NONE``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dns_compute.fastpath import FastTable, compile_fast, fast_answer, scope_of
from dns_compute.models import ClientSubnet, RRset
from dns_compute.wire import (
    ECS_CODE,
    OPT,
    RCODE_FORMERR,
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    Query,
    Reject,
    name_to_wire,
    parse_query,
)
from dns_compute.zone import Zone

CACHE_NONE = 0
CACHE_ANY = 1
CACHE_SOURCE = 2
OUR_UDP_SIZE = 1232
QTYPE_ANY = 255
XFR_TYPES = {251, 252}

#: (record count, wire bytes) of one section part.
Part = tuple[int, bytes]


def _rdata_wire(rrset: RRset) -> list[bytes]:
    rdtype = dns.rdatatype.from_text(rrset.rdtype)
    out: list[bytes] = []
    for text in rrset.rdatas:
        wire = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=dns.name.root,
                                   relativize=False).to_wire()
        assert wire is not None
        out.append(wire)
    return out


_RENDERED: dict[tuple[RRset, bytes], Part] = {}
_RENDERED_MAX = 50_000


def render_rrset(rrset: RRset, owner: bytes) -> Part:
    """RRset → (count, wire) with ``owner`` bytes (a pointer or a full wire name).

    Memoised by value: a rebuild re-renders only the RRsets that changed (dnspython's
    text parsing is the slow part of a zone swap)."""
    key = (rrset, owner)
    part = _RENDERED.get(key)
    if part is None:
        if len(_RENDERED) >= _RENDERED_MAX:
            _RENDERED.clear()
        part = _RENDERED[key] = _render(rrset, owner)
    return part


def _render(rrset: RRset, owner: bytes) -> Part:
    head = owner + struct.pack("!HHI", int(dns.rdatatype.from_text(rrset.rdtype)), 1,
                               rrset.ttl)
    out = b"".join(head + struct.pack("!H", len(rd)) + rd for rd in _rdata_wire(rrset))
    return len(rrset.rdatas), out


def negative_soa(soa: RRset) -> RRset:
    """The SOA as it goes into the authority section of a negative answer: TTL
    min(SOA TTL, SOA MINIMUM) (RFC 2308 §3), so resolvers cache NXDOMAIN/NODATA for
    the negative TTL, not the SOA's own (which was 60 s against a MINIMUM of 5)."""
    try:
        minimum = int(soa.rdatas[0].split()[-1])
    except (IndexError, ValueError):
        return soa
    return soa if soa.ttl <= minimum else RRset(soa.name, soa.rdtype, minimum, soa.rdatas)


@dataclass(frozen=True)
class _Net:
    version: int
    network: int
    mask: int
    prefixlen: int
    nested: tuple[tuple[int, int], ...]  # (network, prefixlen) of subnets inside this one


@dataclass
class WireSteering:
    """Steered A/AAAA answers: ``nets[i]`` → ``answers[i]`` (qtype → Part)."""

    nets: list[_Net]
    answers: list[dict[int, Part]]
    default: dict[int, Part]

    def all_nets(self, version: int) -> tuple[tuple[int, int], ...]:
        return tuple((n.network, n.prefixlen) for n in self.nets if n.version == version)


@dataclass
class WireZone:
    """A zone rendered for answering: ``origin`` wire; ``nodes`` name → qtype → Part;
    ``ents`` empty non-terminals; ``soa`` authority Part; ``steering``; ``serial``."""

    origin: bytes
    serial: int
    nodes: dict[bytes, dict[int, Part]]
    ents: set[bytes]
    soa: Part
    steering: dict[bytes, WireSteering] = field(default_factory=dict)
    #: the fast path's template table (``fastpath.compile_fast``), built on first use
    fast: FastTable | None = field(default=None, repr=False, compare=False)

    @classmethod
    def compile(cls, zone: Zone) -> WireZone:
        origin = name_to_wire(zone.origin)
        nodes: dict[bytes, dict[int, Part]] = {}
        for (name, rdtype), rrset in zone.rrsets.items():
            nodes.setdefault(name_to_wire(name), {})[
                int(dns.rdatatype.from_text(rdtype))] = render_rrset(rrset, b"\xc0\x0c")
        ents: set[bytes] = set()
        for wname in nodes:
            pos = 0
            while wname[pos:] != origin and wname[pos] != 0:
                pos += 1 + wname[pos]
                parent = wname[pos:]
                if parent not in nodes and len(parent) >= len(origin):
                    ents.add(parent)
        soa = render_rrset(negative_soa(zone.rrsets[(zone.origin, "SOA")]), origin)
        steering: dict[bytes, WireSteering] = {}
        for name, st in zone.steering.items():
            nets = [_net(sub, st.subnets) for sub in st.subnets]
            answers = [_addr_parts(b) for b in st.buckets]
            steering[name_to_wire(name)] = WireSteering(nets, answers, _addr_parts(st.default))
        wz = cls(origin, zone.serial, nodes, ents, soa, steering)
        wz.fast = compile_fast(wz)
        return wz


def _addr_parts(rrsets: dict[str, RRset]) -> dict[int, Part]:
    return {int(dns.rdatatype.from_text(t)): render_rrset(rr, b"\xc0\x0c")
            for t, rr in rrsets.items()}


def _net(sub: ClientSubnet, all_subs: tuple[ClientSubnet, ...]) -> _Net:
    p = sub.prefix
    nested = tuple((int(o.prefix.network_address), o.prefix.prefixlen) for o in all_subs
                   if o.prefix.version == p.version and o.prefix != p
                   and o.prefix.subnet_of(p))  # type: ignore[arg-type]
    return _Net(p.version, int(p.network_address), int(p.netmask), p.prefixlen, nested)


def scope_for(addr: int, width: int, start: int, others: tuple[tuple[int, int], ...]) -> int:
    """RFC 7871 §7.2.1 scope: the shortest prefix length >= ``start`` whose block around
    ``addr`` overlaps none of ``others`` (subnets that would get another answer);
    computed in closed form by ``fastpath.scope_of``."""
    return scope_of(addr, width, start, others)


def _header(qid: int, rd: bool, aa: bool, tc: bool, rcode: int, opcode: int,
            qd: int, an: int, ns: int, ar: int) -> bytes:
    b2 = 0x80 | (opcode << 3) | (0x04 if aa else 0) | (0x02 if tc else 0) | (1 if rd else 0)
    b3 = rcode & 0x0F
    return struct.pack("!HBBHHHH", qid, b2, b3, qd, an, ns, ar)


def _opt(rcode: int, do: bool, ecs_echo: bytes | None) -> bytes:
    rdata = b"" if ecs_echo is None else struct.pack("!HH", ECS_CODE, len(ecs_echo)) + ecs_echo
    ttl = ((rcode >> 4) << 24) | (0x8000 if do else 0)
    return b"\x00" + struct.pack("!HHIH", OPT, OUR_UDP_SIZE, ttl, len(rdata)) + rdata


def _ecs_echo(q: Query, scope: int) -> bytes | None:
    if q.ecs is None:
        return None
    nbytes = (q.ecs.source + 7) // 8
    return struct.pack("!HBB", q.ecs.family, q.ecs.source, scope) + q.ecs.address[:nbytes]


def reject_wire(rej: Reject) -> bytes | None:
    """The wire answer for a ``Reject`` (None = send nothing)."""
    if rej.rcode is None:
        return None
    qd = 1 if rej.question else 0
    body = rej.question + (_opt(rej.rcode, False, None) if rej.edns else b"")
    return _header(rej.id, rej.rd, False, False, rej.rcode, rej.opcode, qd, 0, 0,
                   1 if rej.edns else 0) + body


class Responder:
    """Answers queries from the current ``WireZone``; ``swap`` replaces it atomically."""

    def __init__(self, zone: WireZone | None = None) -> None:
        self.zone = zone
        #: called with each new zone after a swap (the server feeds its worker processes)
        self.on_swap: list[Callable[[WireZone], None]] = []

    def swap(self, zone: WireZone) -> None:
        self.zone = zone  # one reference assignment: a query sees the old or the new zone
        for listener in self.on_swap:
            listener(zone)

    def respond(self, data: bytes, source: str = "127.0.0.1", tcp: bool = False,
                zone: WireZone | None = None) -> tuple[bytes | None, int]:
        """Answer ``data`` from ``source``; returns (wire or None, cache mode).

        UDP queries go through the template fast path first (``fastpath``); what it
        does not take is parsed and answered in full here, with the same bytes."""
        z = zone or self.zone
        if z is not None and not tcp:
            table = z.fast
            if table is None:
                table = z.fast = compile_fast(z)
            hit = fast_answer(table, data, source)
            if hit is not None:
                return hit
        return self.respond_full(data, source, tcp, z)

    def respond_full(self, data: bytes, source: str = "127.0.0.1", tcp: bool = False,
                     zone: WireZone | None = None) -> tuple[bytes | None, int]:
        """``respond`` without the fast path: parse the query, then answer it."""
        q = parse_query(data)
        if isinstance(q, Reject):
            return reject_wire(q), CACHE_NONE
        z = zone or self.zone
        if z is None:
            return reject_wire(Reject(RCODE_REFUSED, q.id, q.rd, question=q.question,
                                      edns=q.edns, why="no zone loaded")), CACHE_NONE
        if q.qclass != 1 or not _in_zone(q, z.origin) or (q.qtype in XFR_TYPES):
            rej = Reject(RCODE_REFUSED, q.id, q.rd, question=q.question, edns=q.edns)
            return reject_wire(rej), CACHE_ANY if not tcp else CACHE_NONE
        return self._answer(q, z, source, tcp)

    def _answer(self, q: Query, z: WireZone, source: str,
                tcp: bool) -> tuple[bytes, int]:
        scope = 0
        mode = CACHE_ANY
        node = z.nodes.get(q.qname)
        answer: list[Part] = []
        authority: list[Part] = []
        rcode = RCODE_NOERROR
        steer = z.steering.get(q.qname)
        if steer is not None and q.qtype in (1, 28, QTYPE_ANY):
            parts, scope, mode = _steer(steer, q, source)
            answer = [parts[t] for t in sorted(parts) if q.qtype in (t, QTYPE_ANY)]
            if q.qtype == QTYPE_ANY and node is not None:
                answer += [p for t, p in sorted(node.items()) if t not in (1, 28)]
        elif node is not None:
            if q.qtype == QTYPE_ANY:
                answer = [p for _, p in sorted(node.items())]
            elif q.qtype in node:
                answer = [node[q.qtype]]
        if not answer:
            if node is None and steer is None and q.qname not in z.ents:
                rcode = RCODE_NXDOMAIN
            authority = [z.soa]
        an = sum(c for c, _ in answer)
        ns = sum(c for c, _ in authority)
        ar = 1 if q.edns else 0
        opt = _opt(rcode, q.do, _ecs_echo(q, scope)) if q.edns else b""
        body = q.question + b"".join(p for _, p in answer) + b"".join(p for _, p in authority)
        limit = 65535 if tcp else (q.udp_size if q.edns else 512)
        if 12 + len(body) + len(opt) > limit:
            head = _header(q.id, q.rd, True, True, rcode, 0, 1, 0, 0, ar)
            return head + q.question + opt, mode
        head = _header(q.id, q.rd, True, False, rcode, 0, 1, an, ns, ar)
        return head + body + opt, mode


def _in_zone(q: Query, origin: bytes) -> bool:
    qn = q.qname
    if qn == origin:
        return True
    return any(qn[off:] == origin for off in q.labels)


def _steer(st: WireSteering, q: Query, source: str) -> tuple[dict[int, Part], int, int]:
    """Pick the bucket for the client → (answers, ECS scope, cache mode)."""
    if q.ecs is not None:
        if q.ecs.source == 0:
            return st.default, 0, CACHE_ANY
        version = 4 if q.ecs.family == 1 else 6
        addr = int.from_bytes(q.ecs.address, "big")
        src_len = q.ecs.source
        mode = CACHE_ANY
    else:
        try:
            ip = ip_address(source)
        except ValueError:
            return st.default, 0, CACHE_SOURCE
        version, addr, src_len = ip.version, int(ip), ip.max_prefixlen
        mode = CACHE_SOURCE
    width = 32 if version == 4 else 128
    for i, net in enumerate(st.nets):
        if net.version == version and (addr & net.mask) == net.network:
            if net.prefixlen > src_len and q.ecs is not None:
                continue  # the client hid bits this subnet needs: not a match
            return st.answers[i], scope_for(addr, width, net.prefixlen, net.nested), mode
    return st.default, scope_for(addr, width, 0, st.all_nets(version)), mode


__all__ = [
    "CACHE_ANY",
    "CACHE_NONE",
    "CACHE_SOURCE",
    "RCODE_FORMERR",
    "Responder",
    "WireZone",
    "reject_wire",
    "render_rrset",
    "scope_for",
]
