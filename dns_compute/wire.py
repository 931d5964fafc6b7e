"""Sans-I/O DNS query parsing (RFC 1035, RFC 6891 EDNS0, RFC 7871 ECS).

Rules:
- Bytes in, a ``Query`` or a ``Reject`` out; never raises on any input (fuzzed in
  ``tests/dns_compute/test_wire.py``). No sockets here.
- ``Reject.rcode`` is what the server must answer: FORMERR for malformed messages
  (bad label, name > 255 octets, truncation, trailing bytes, two OPT RRs, bad ECS
  lengths or non-zero bits beyond the source prefix or non-zero query scope, RFC 7871
  §6/§7.1.1), NOTIMP for opcodes other than QUERY, BADVERS for EDNS version > 0.
  ``Reject.rcode is None`` means "do not answer at all" (shorter than a header, or
  the message is a response: answering responses invites loops).
- Names are returned in wire form, lower-cased (ASCII only, RFC 4343), with the
  offsets of their labels so suffix checks stay label-aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_BADVERS = 16

OPT = 41
ECS_CODE = 8
MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class Ecs:
    """EDNS Client Subnet option: ``family`` (1 = IPv4, 2 = IPv6), ``source`` prefix
    length, ``address`` (the prefix, left-aligned, full 4/16 octets)."""

    family: int
    source: int
    address: bytes


@dataclass(frozen=True, slots=True)
class Query:
    """A well-formed query. ``qname`` lower-case wire form; ``labels`` offsets of each
    label inside ``qname``; ``question`` the question section as sent (case kept);
    ``rd`` the RD bit; ``edns``/``udp_size``/``do`` from the OPT RR; ``ecs``."""

    id: int
    rd: bool
    qname: bytes
    labels: tuple[int, ...]
    qtype: int
    qclass: int
    question: bytes
    edns: bool = False
    udp_size: int = 512
    do: bool = False
    ecs: Ecs | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """An answerable-with-error or ignorable message. ``rcode`` None = drop; ``question``
    is echoed when it could be parsed; ``edns`` says whether to add an OPT RR."""

    rcode: int | None
    id: int = 0
    rd: bool = False
    opcode: int = 0
    question: bytes = b""
    edns: bool = False
    why: str = ""


def _read_name(data: bytes, pos: int) -> tuple[bytes, tuple[int, ...], int] | str:
    """Uncompressed name at ``pos`` → (lower wire, label offsets, next pos) or an error."""
    labels: list[int] = []
    start = pos
    n = len(data)
    while True:
        if pos >= n:
            return "name runs past the end of the message"
        ln = data[pos]
        if ln == 0:
            pos += 1
            break
        if ln & 0xC0:
            # A question name can only point backwards into the header; treat as malformed.
            return "compressed or extended label in question"
        labels.append(pos - start)
        pos += 1 + ln
        if pos - start + 1 > MAX_NAME:
            return "name longer than 255 octets"
    return data[start:pos].lower(), tuple(labels), pos


def _parse_ecs(opt: bytes) -> Ecs | str:
    if len(opt) < 4:
        return "ECS option shorter than 4 octets"
    family = int.from_bytes(opt[0:2], "big")
    source, scope = opt[2], opt[3]
    addr = opt[4:]
    width = {1: 4, 2: 16}.get(family)
    if width is None:
        return f"ECS family {family} unknown"
    if source > width * 8:
        return f"ECS source prefix {source} too long for family {family}"
    if scope != 0:
        return "ECS scope prefix must be 0 in queries"
    if len(addr) != (source + 7) // 8:
        return f"ECS address has {len(addr)} octets, source /{source} needs {(source + 7) // 8}"
    if source % 8 and addr and addr[-1] & (0xFF >> (source % 8)):
        return "ECS address has bits set beyond the source prefix"
    return Ecs(family, source, addr + bytes(width - len(addr)))


def parse_query(data: bytes) -> Query | Reject:
    """Parse one DNS query message (see module rules)."""
    if len(data) < 12:
        return Reject(None, why="shorter than a DNS header")
    qid = int.from_bytes(data[0:2], "big")
    flags = data[2]
    if flags & 0x80:
        return Reject(None, qid, why="message is a response")
    rd = bool(flags & 0x01)
    opcode = (flags >> 3) & 0x0F
    qd = int.from_bytes(data[4:6], "big")
    an = int.from_bytes(data[6:8], "big")
    ns = int.from_bytes(data[8:10], "big")
    ar = int.from_bytes(data[10:12], "big")
    if opcode != 0:
        return Reject(RCODE_NOTIMP, qid, rd, opcode, why=f"opcode {opcode} not implemented")
    if qd != 1:
        return Reject(RCODE_FORMERR, qid, rd, why=f"{qd} questions (need exactly 1)")
    name = _read_name(data, 12)
    if isinstance(name, str):
        return Reject(RCODE_FORMERR, qid, rd, why=name)
    qname, labels, pos = name
    if pos + 4 > len(data):
        return Reject(RCODE_FORMERR, qid, rd, why="question truncated")
    qtype = int.from_bytes(data[pos:pos + 2], "big")
    qclass = int.from_bytes(data[pos + 2:pos + 4], "big")
    pos += 4
    question = data[12:pos]
    if an or ns:
        return Reject(RCODE_FORMERR, qid, rd, question=question,
                      why="query carries answer/authority records")
    edns = False
    udp_size = 512
    do = False
    ecs: Ecs | None = None
    version = 0
    for _ in range(ar):
        if pos >= len(data):
            return Reject(RCODE_FORMERR, qid, rd, question=question, edns=edns,
                          why="additional section truncated")
        if data[pos] != 0:
            return Reject(RCODE_FORMERR, qid, rd, question=question, edns=edns,
                          why="unsupported additional record (only OPT)")
        if pos + 11 > len(data):
            return Reject(RCODE_FORMERR, qid, rd, question=question, edns=edns,
                          why="OPT record truncated")
        rtype = int.from_bytes(data[pos + 1:pos + 3], "big")
        if rtype != OPT:
            return Reject(RCODE_FORMERR, qid, rd, question=question, edns=edns,
                          why=f"unsupported additional record type {rtype}")
        if edns:
            return Reject(RCODE_FORMERR, qid, rd, question=question, edns=True,
                          why="more than one OPT record (RFC 6891 §6.1.1)")
        edns = True
        udp_size = max(512, int.from_bytes(data[pos + 3:pos + 5], "big"))
        version = data[pos + 6]
        do = bool(data[pos + 7] & 0x80)
        rdlen = int.from_bytes(data[pos + 9:pos + 11], "big")
        opts = data[pos + 11:pos + 11 + rdlen]
        if len(opts) != rdlen:
            return Reject(RCODE_FORMERR, qid, rd, question=question, edns=True,
                          why="OPT rdata truncated")
        pos += 11 + rdlen
        i = 0
        while i < len(opts):
            if i + 4 > len(opts):
                return Reject(RCODE_FORMERR, qid, rd, question=question, edns=True,
                              why="EDNS option header truncated")
            code = int.from_bytes(opts[i:i + 2], "big")
            olen = int.from_bytes(opts[i + 2:i + 4], "big")
            body = opts[i + 4:i + 4 + olen]
            if len(body) != olen:
                return Reject(RCODE_FORMERR, qid, rd, question=question, edns=True,
                              why="EDNS option truncated")
            i += 4 + olen
            if code == ECS_CODE:
                if ecs is not None:
                    return Reject(RCODE_FORMERR, qid, rd, question=question, edns=True,
                                  why="more than one ECS option")
                parsed = _parse_ecs(body)
                if isinstance(parsed, str):
                    return Reject(RCODE_FORMERR, qid, rd, question=question, edns=True,
                                  why=parsed)
                ecs = parsed
    if pos != len(data):
        return Reject(RCODE_FORMERR, qid, rd, question=question, edns=edns,
                      why=f"{len(data) - pos} trailing octets")
    if edns and version != 0:
        return Reject(RCODE_BADVERS, qid, rd, question=question, edns=True,
                      why=f"EDNS version {version} (only 0)")
    return Query(qid, rd, qname, labels, qtype, qclass, question, edns, udp_size, do, ecs)


def name_to_wire(name: str) -> bytes:
    """Absolute presentation name (``a.b.``) → lower-case wire form (no escapes)."""
    out = bytearray()
    for part in name.lower().rstrip(".").split("."):
        if part:
            raw = part.encode("ascii")
            out.append(len(raw))
            out += raw
    out.append(0)
    return bytes(out)
