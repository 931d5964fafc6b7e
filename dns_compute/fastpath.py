"""The responder's fast path: precompiled answer templates, spliced per query (sans-I/O).

Rules:
- ``compile_fast(zone)`` turns a ``WireZone`` into a table keyed by the lower-case wire
  name: for every name in the zone (nodes, empty non-terminals, steered names) each
  answerable qtype maps to a template (the 10 header octets after the id for each
  RD/EDNS combination, and the answer + authority sections as wire bytes). A qtype the
  name lacks maps to the NODATA template.
- ``fast_answer(table, data, source)`` answers a query with one label walk, one dict
  lookup and a few concatenations: id and question as the client sent them (its
  spelling kept), the template body, and an OPT RR echoing the ECS option with the
  scope spliced in. No ``Query`` object and no dnspython on this path.
- It answers only what it can answer exactly as the full path (``Responder.respond``)
  would, byte for byte: a single IN question with no answer/authority records, at most
  one additional record which is an EDNS0 OPT carrying no option or exactly one valid
  ECS option, a name in the table (or below the origin and absent: NXDOMAIN) and an
  answer within the UDP size. Anything else returns ``None`` and the full path answers
  it (malformed input, ANY, zone transfers, other options, truncation, TCP).
  ``tests/dns_compute/test_fastpath.py`` checks the equivalence on generated queries.
"""

from __future__ import annotations

import struct
from ipaddress import ip_address
from typing import TYPE_CHECKING

from dns_compute.wire import RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED

if TYPE_CHECKING:
    from collections.abc import Callable

    from dns_compute.responder import Part, WireSteering, WireZone

MODE_ANY = 1  # = responder.CACHE_ANY
MODE_SOURCE = 2  # = responder.CACHE_SOURCE
OUR_UDP_SIZE = 1232

#: (header octets after the id, indexed by rd | edns << 1; answer + authority body)
Template = tuple[tuple[bytes, bytes, bytes, bytes], bytes]
#: steered name: (nets as (version, network, mask, prefixlen, nested), bucket
#: templates qtype → Template per net, default templates, (v4 nets, v6 nets))
Steer = tuple[list[tuple[int, int, int, int, tuple[tuple[int, int], ...]]],
              list[dict[int, Template]], dict[int, Template],
              tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]]
#: per name: (qtype → Template, NODATA template, steering or None)
Entry = tuple[dict[int, Template], Template, Steer | None]
#: the whole table: (name → Entry, origin wire, NXDOMAIN template, REFUSED template)
FastTable = tuple[dict[bytes, Entry], bytes, Template, Template]

_OPT_HEAD = (b"\x00" + struct.pack("!HHI", 41, OUR_UDP_SIZE, 0),
             b"\x00" + struct.pack("!HHI", 41, OUR_UDP_SIZE, 0x8000))
_EMPTY_RDLEN = b"\x00\x00"
_OPT_RR = struct.Struct("!BHHBBHH")  # owner, type, udp size, ext rcode, version, flags, rdlen
_ECS_HEAD = struct.Struct("!HHHBB")  # option code, length, family, source, scope
_BYTE = [bytes((i,)) for i in range(256)]
_IN_OPT = b"\x00\x01\x00\x00\x29"  # class IN, then an OPT RR: root owner, type 41


def _template(aa: bool, rcode: int, answer: list[Part], authority: list[Part]) -> Template:
    an = sum(c for c, _ in answer)
    ns = sum(c for c, _ in authority)
    heads = []
    for idx in range(4):
        rd, ar = idx & 1, idx >> 1
        b2 = 0x80 | (0x04 if aa else 0) | rd
        heads.append(struct.pack("!BBHHHH", b2, rcode & 0x0F, 1, an, ns, ar))
    body = b"".join(p for _, p in answer) + b"".join(p for _, p in authority)
    return (heads[0], heads[1], heads[2], heads[3]), body


def _steer(st: WireSteering, soa: Part) -> Steer:
    nodata = _template(True, RCODE_NOERROR, [], [soa])

    def parts(by_type: dict[int, Part]) -> dict[int, Template]:
        return {t: (_template(True, RCODE_NOERROR, [by_type[t]], [])
                    if t in by_type else nodata) for t in (1, 28)}

    nets = [(n.version, n.network, n.mask, n.prefixlen, n.nested) for n in st.nets]
    return (nets, [parts(a) for a in st.answers], parts(st.default),
            (st.all_nets(4), st.all_nets(6)))


def compile_fast(zone: WireZone) -> FastTable:
    """The template table of ``zone`` (see module rules)."""
    nodata = _template(True, RCODE_NOERROR, [], [zone.soa])
    table: dict[bytes, Entry] = {}
    for name in set(zone.nodes) | zone.ents | set(zone.steering):
        node = zone.nodes.get(name, {})
        types = {t: _template(True, RCODE_NOERROR, [p], []) for t, p in node.items()}
        st = zone.steering.get(name)
        table[name] = (types, nodata, _steer(st, zone.soa) if st is not None else None)
    nx = _template(True, RCODE_NXDOMAIN, [], [zone.soa])
    refused = _template(False, RCODE_REFUSED, [], [])
    return table, zone.origin, nx, refused


def scope_of(addr: int, width: int, start: int, others: tuple[tuple[int, int], ...]) -> int:
    """RFC 7871 §7.2.1 scope in closed form: a block of length L around ``addr`` overlaps
    the subnet (net, plen) iff L <= the common prefix length c of addr and net, or the
    subnet contains addr (plen <= c). So the answer is max(start, max c + 1), or the
    full width when a subnet contains addr (equal to ``responder.scope_for``'s search)."""
    best = start
    for net, plen in others:
        c = width - (addr ^ net).bit_length()
        if plen <= c:
            return width
        if c + 1 > best:
            best = c + 1
    return min(best, width)


def _pick(steer: Steer, version: int, addr: int, src_len: int, ecs: bool
          ) -> tuple[dict[int, Template], int]:
    nets, answers, default, alls = steer
    width = 32 if version == 4 else 128
    for i, (v, network, mask, plen, nested) in enumerate(nets):
        if v == version and (addr & mask) == network:
            if plen > src_len and ecs:
                continue  # the client hid bits this subnet needs: not a match
            return answers[i], scope_of(addr, width, plen, nested) if ecs else 0
    return default, scope_of(addr, width, 0, alls[0 if version == 4 else 1]) if ecs else 0


def fast_answer(table: FastTable, data: bytes, source: str | Callable[[], str]
                ) -> tuple[bytes, int] | None:
    """The UDP answer to ``data`` and its cache mode, or None (use the full path).
    ``source`` is the client's address, or a function returning it (called only when
    the answer depends on it: a steered name asked without ECS)."""
    n = len(data)
    if n < 17 or data[2] & 0xF8 or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None
    ar = data[11]
    if data[10] or ar > 1:
        return None
    names, origin, nx, refused = table
    # Quick split: the question ends where the OPT RR starts (class IN, root owner,
    # type 41) or at the end of the message. A name that is a key of the table is a
    # valid wire name, so the label walk from offset 12 would end at the same place.
    qend = (data.find(_IN_OPT, 17) + 2 if ar
            else n if data[n - 2:] == b"\x00\x01" else 1)
    entry = names.get(data[12:qend - 4].lower()) if qend > 16 else None
    if entry is None:  # walk the labels: NXDOMAIN / REFUSED need their offsets
        starts: list[int] = []
        pos = 12
        while True:
            if pos >= n:
                return None
            ln = data[pos]
            if not ln:
                break
            if ln > 63:
                return None
            starts.append(pos)
            pos += 1 + ln
        if pos - 11 > 255:
            return None
        qend = pos + 5
        if qend > n or data[pos + 3:qend] != b"\x00\x01":  # class IN
            return None
        entry = names.get(data[12:pos + 1].lower())
    qtype = data[qend - 4] << 8 | data[qend - 3]
    if qtype == 255 or qtype == 251 or qtype == 252:
        return None
    ecs = False
    do = 0
    limit = 512
    if ar:
        # OPT: root owner, type 41, udp size, ext-rcode, version 0, flags, rdlen
        if n < qend + 11:
            return None
        owner, rtype, size, _ext, version, flags, rdlen = _OPT_RR.unpack_from(data, qend)
        if owner or rtype != 41 or version or n != qend + 11 + rdlen:
            return None
        limit = size if size > 512 else 512
        do = flags & 0x8000
        if rdlen:
            if rdlen < 8:
                return None
            code, olen, family, src, qscope = _ECS_HEAD.unpack_from(data, qend + 11)
            if code != 8 or olen != rdlen - 4 or qscope or (family != 1 and family != 2):
                return None
            if src > (32 if family == 1 else 128) or olen != 4 + ((src + 7) >> 3):
                return None
            if src & 7 and data[-1] & (0xFF >> (src & 7)):
                return None
            ecs = True
    elif qend != n:
        return None
    mode = MODE_ANY
    scope = 0
    if entry is None:
        qname = data[12:qend - 4].lower()
        if qname.endswith(origin) and (qend - 4 - len(origin)) in starts:
            tpl = nx
        else:  # not ours: REFUSED, the OPT without DO or ECS (as ``reject_wire``)
            heads, body = refused
            opt = _OPT_HEAD[0] + _EMPTY_RDLEN if ar else b""
            return data[:2] + heads[(data[2] & 1) | (ar << 1)] + data[12:qend] + opt, mode
    else:
        types, nodata, steer = entry
        if steer is not None and (qtype == 1 or qtype == 28):
            if ecs:
                if src == 0:
                    tpl = steer[2][qtype]
                else:
                    width = 4 if family == 1 else 16
                    addr = int.from_bytes(data[qend + 19:], "big") << (8 * (width - olen + 4))
                    bucket, scope = _pick(steer, 4 if family == 1 else 6, addr, src, True)
                    tpl = bucket[qtype]
            else:
                mode = MODE_SOURCE
                try:
                    ip = ip_address(source if isinstance(source, str) else source())
                except ValueError:
                    tpl = steer[2][qtype]
                else:
                    bucket, _ = _pick(steer, ip.version, int(ip), ip.max_prefixlen, False)
                    tpl = bucket[qtype]
        else:
            tpl = types.get(qtype) or nodata
    heads, body = tpl
    # One join (cheaper than a chain of concatenations): id, header, the question as
    # sent, the template body, then the OPT RR: the echoed ECS option has the query's
    # lengths and bytes, the scope spliced in (the query's scope is 0, so a scope-0
    # answer echoes the option unchanged).
    if not ar:
        out = b"".join((data[:2], heads[data[2] & 1], data[12:qend], body))
    elif not scope:
        out = b"".join((data[:2], heads[(data[2] & 1) | 2], data[12:qend], body,
                        _OPT_HEAD[1 if do else 0], data[qend + 9:]))
    else:
        out = b"".join((data[:2], heads[(data[2] & 1) | 2], data[12:qend], body,
                        _OPT_HEAD[1 if do else 0], data[qend + 9:qend + 18], _BYTE[scope],
                        data[qend + 19:]))
    if len(out) > limit:
        return None
    return out, mode
