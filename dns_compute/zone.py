"""The compute zone: a pure function of the controller's state (GBA-6.5h).

Rules:
- Pure: ``build_zone(ZoneInput) -> Zone``; no store, no I/O, deterministic (sorted
  inputs, stable ranking), so two builds of the same state give the same records.
- Names (``Z`` = the zone, all lower case):
  ``<svc>.svc.Z`` A/AAAA = the instance chosen for the asking client (steered per
  client-subnet bucket, RFC 7871) or the anycast address (anycast mode, or when no
  instance is eligible); ``<svc>.svc.Z`` SVCB (and HTTPS for tcp/quic services,
  RFC 9460), one ServiceMode record per instance, priority = rank for a client with
  no known location; ``<site>.<svc>.svc.Z`` A/AAAA (the instance's unicast address)
  and TXT with DNS-SD-style keys (draft-liu-cats-dns-service-discovery);
  ``_<svc>._<proto>.svc.Z`` SRV; ``_compute.<site>.Z`` TXT describing the site;
  ``<subject>.<flow|job>.place.Z`` A/AAAA = the placed site's instance of the
  placement's service (one name per placement whose subject is a DNS label).
- Placements (``ZoneInput.placements``) override the ranking: the ``<svc>.svc.Z``
  answer of every client subnet whose ``node`` is a placement's origin is the placed
  site's instance (the latest placement of that service and origin wins; anycast mode
  does not apply to a pinned subnet). The ``why`` of the subnet shows the placed
  instances first with a ``placed by <decision>`` term. The answer for clients with no
  known location (and so Knot's) stays the ranking's.
- Compute attributes ride in private-use SvcParamKeys (RFC 9460 §14.3.2, 65280–65534),
  table ``SVC_KEYS``; values are decimal text.
- The SOA serial is not decided here: the caller passes it and bumps it whenever the
  content digest (``Zone.digest``, SOA excluded) changes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

from controller.models import (
    ComputeMetrics,
    ComputeResource,
    Link,
    Router,
    Service,
    Site,
)
from controller.models.metrics import metrics_by_site
from dns_compute.models import ClientSubnet, DnsSection, Placement, RRset
from dns_compute.ranking import Candidate, placed_first, rank

#: Private-use SvcParamKeys carrying compute attributes: key → (name, source).
#: Sources are ``l2`` (ComputeMetrics.l2) or an ``l0`` key.
SVC_KEYS: dict[int, tuple[str, str]] = {
    65280: ("cpn-l2", "l2"),
    65281: ("cpn-cpu-pct", "cpu_pct"),
    65282: ("cpn-gpu-free", "gpu_free"),
    65283: ("cpn-latency-ms", "delay_ms"),
    65284: ("cpn-price-per-hour", "price_per_hour"),
    65285: ("cpn-energy-w", "energy_w"),
    65286: ("cpn-util-pct", "util_pct"),
}

#: DNS-SD-style TXT keys (draft-liu-cats-dns-service-discovery) → l0 key.
TXT_KEYS: tuple[tuple[str, str], ...] = (
    ("cpu", "cpu_pct"), ("mem", "mem_pct"), ("lat", "delay_ms"), ("load", "util_pct"),
    ("gpu", "gpu_free"), ("accel", "npu_free"), ("cost", "price_per_hour"),
)


@dataclass(frozen=True)
class ZoneInput:
    """Everything the zone depends on (plain data, already read from the store)."""

    origin: str
    dns: DnsSection
    sites: Sequence[Site] = ()
    routers: Sequence[Router] = ()
    links: Sequence[Link] = ()
    services: Sequence[Service] = ()
    metrics: Sequence[ComputeMetrics] = ()
    resources: Sequence[ComputeResource] = ()
    ns_address: str = "127.0.0.1"
    placements: Sequence[Placement] = ()


@dataclass(frozen=True)
class Steering:
    """Per-client answers for one steered name: ``buckets[i]`` belongs to
    ``subnets[i]``; ``default`` when no subnet matches. Each answer maps rdtype →
    RRset (absent = NODATA for that type)."""

    subnets: tuple[ClientSubnet, ...]
    buckets: tuple[dict[str, RRset], ...]
    default: dict[str, RRset]


@dataclass
class Zone:
    """A built zone: ``origin`` (with trailing dot), ``serial``, ``rrsets`` (the
    answers for clients with no known location, which is also what an external primary
    gets), ``steering`` (name → per-bucket answers), ``why`` (service → bucket label →
    ranked candidates), ``digest`` of the content without the SOA."""

    origin: str
    serial: int
    rrsets: dict[tuple[str, str], RRset]
    steering: dict[str, Steering] = field(default_factory=dict)
    why: dict[str, dict[str, list[Candidate]]] = field(default_factory=dict)
    digest: str = ""

    def names(self) -> set[str]:
        return {name for name, _ in self.rrsets}

    def with_serial(self, serial: int) -> Zone:
        soa = self.rrsets[(self.origin, "SOA")]
        rr = dict(self.rrsets)
        rr[(self.origin, "SOA")] = RRset(soa.name, "SOA", soa.ttl, (_soa_text(self.origin,
                                                                            serial),))
        return Zone(self.origin, serial, rr, self.steering, self.why, self.digest)


def _soa_text(origin: str, serial: int) -> str:
    return f"ns.{origin} hostmaster.{origin} {serial} 3600 600 86400 5"


def label(name: str) -> str:
    return name.lower()


def _num(v: float) -> str:
    return f"{v:.6g}"


def _address_rrsets(name: str, addrs: Sequence[IPv4Address | IPv6Address],
                    ttl: int) -> dict[str, RRset]:
    out: dict[str, RRset] = {}
    v4 = sorted({str(a) for a in addrs if a.version == 4})
    v6 = sorted({str(a) for a in addrs if a.version == 6})
    if v4:
        out["A"] = RRset(name, "A", ttl, tuple(v4))
    if v6:
        out["AAAA"] = RRset(name, "AAAA", ttl, tuple(v6))
    return out


def _choose(svc: Service, ranked: list[Candidate], anycast: bool, name: str,
            ttl: int) -> dict[str, RRset]:
    """Best eligible instance per address family, else the anycast address."""
    if anycast:
        return _address_rrsets(name, svc.anycast, ttl)
    out: dict[str, RRset] = {}
    for version, rdtype in ((4, "A"), (6, "AAAA")):
        best = next((c for c in ranked if c.eligible
                     and ip_address(c.address).version == version), None)
        if best is not None:
            out[rdtype] = RRset(name, rdtype, ttl, (best.address,))
        else:
            fallback = [a for a in svc.anycast if a.version == version]
            if fallback:
                out.update(_address_rrsets(name, fallback, ttl))
    return out


def _svc_params(svc: Service, port: int, addr: IPv4Address | IPv6Address,
                m: ComputeMetrics | None) -> str:
    parts: list[str] = []
    alpn = {"quic": "h3", "tcp": "h2"}.get(svc.protocol.value)
    if alpn:
        parts.append(f"alpn={alpn}")
    parts.append(f"port={port}")
    parts.append(f"{'ipv4hint' if addr.version == 4 else 'ipv6hint'}={addr}")
    if m is not None:
        for key, (_, src) in SVC_KEYS.items():
            val = m.l2 if src == "l2" else m.l0.get(src)
            if val is not None:
                parts.append(f'key{key}="{_num(val)}"')
    return " ".join(parts)


def _txt(pairs: list[tuple[str, str]]) -> str:
    return " ".join(f'"{k}={v}"' for k, v in pairs)


def _service_records(inp: ZoneInput, svc: Service, out: dict[tuple[str, str], RRset],
                     steering: dict[str, Steering],
                     why: dict[str, dict[str, list[Candidate]]]) -> None:
    origin = inp.origin
    ttl = inp.dns.ttl_s
    opts = inp.dns.services.get(svc.name)
    if opts is not None and opts.ttl_s is not None:
        ttl = opts.ttl_s
    anycast = opts.anycast if opts is not None and opts.anycast is not None \
        else inp.dns.anycast
    static_ttl = inp.dns.static_ttl_s
    base = f"{label(svc.name)}.svc.{origin}"

    def ranked_for(node: str | None, region: str | None) -> list[Candidate]:
        return rank(svc, client_node=node, client_region=region, sites=inp.sites,
                    routers=inp.routers, links=inp.links, metrics=inp.metrics)

    default_rank = ranked_for(None, None)
    svc_why = {"default": default_rank}
    default = _choose(svc, default_rank, anycast, base, ttl)
    buckets = []
    subnets = _ordered_subnets(inp.dns.client_subnets)
    pins: dict[str, Placement] = {}  # origin -> latest placement of this service
    for p in inp.placements:
        if p.service == svc.name:
            old = pins.get(p.origin)
            if old is None or (p.decided_at, p.key) > (old.decided_at, old.key):
                pins[p.origin] = p
    for sub in subnets:
        r = ranked_for(sub.node, sub.region)
        pin = pins.get(sub.node) if sub.node else None
        if pin is not None and any(c.site == pin.site for c in r):
            r = placed_first(r, pin.site, pin.key)
            buckets.append(_choose(svc, r, False, base, ttl))
        else:
            buckets.append(_choose(svc, r, anycast, base, ttl))
        svc_why[str(sub.prefix)] = r
    for p in inp.placements:
        if p.service != svc.name or not _LABEL.fullmatch(p.subject):
            continue
        at_site = [c for c in placed_first(ranked_for(p.origin, None), p.site, p.key)
                   if c.site == p.site]
        if at_site:
            name = f"{label(p.subject)}.{p.subject_kind}.place.{origin}"
            svc_why[f"placement {p.key}"] = at_site
            for rr in _choose(svc, at_site, False, name, ttl).values():
                out[(name, rr.rdtype)] = rr
    why[svc.name] = svc_why
    steering[base] = Steering(tuple(subnets), tuple(buckets), default)
    for rdtype, rrset in default.items():
        out[(base, rdtype)] = rrset

    by_site = metrics_by_site(inp.metrics, svc.name)
    order = {(c.site, c.address): i for i, c in enumerate(default_rank)}
    eligible = {(c.site, c.address): c.eligible for c in default_rank}
    svcb: list[str] = []
    srv: list[str] = []
    for inst in svc.instances:
        ident = (inst.site, str(inst.address))
        prio = order.get(ident, len(order)) + 1
        target = f"{label(inst.site)}.{base}"
        port = inst.port or svc.port
        m = by_site.get(inst.site)
        svcb.append(f"{prio} {target} {_svc_params(svc, port, inst.address, m)}")
        srv_prio = prio * 10 if eligible.get(ident, False) else 65535
        srv.append(f"{srv_prio} {inst.weight} {port} {target}")
        for rr in _address_rrsets(target, [inst.address], static_ttl).values():
            _merge(out, rr)
        pairs = [("site", inst.site), ("addr", str(inst.address)), ("port", str(port))]
        if m is not None:
            pairs += [(k, _num(m.l0[src])) for k, src in TXT_KEYS if src in m.l0]
            pairs += [("l2", _num(m.l2)), ("overloaded", str(int(m.overloaded))),
                      ("usable", str(int(m.usable)))]
        pairs.append(("prio", str(prio)))
        _merge(out, RRset(target, "TXT", static_ttl, (_txt(pairs),)))
    if svcb:
        out[(base, "SVCB")] = RRset(base, "SVCB", ttl, tuple(sorted(svcb)))
        if svc.protocol.value in ("tcp", "quic"):
            out[(base, "HTTPS")] = RRset(base, "HTTPS", ttl, tuple(sorted(svcb)))
        proto = "tcp" if svc.protocol.value == "tcp" else "udp"
        srv_name = f"_{label(svc.name)}._{proto}.svc.{origin}"
        out[(srv_name, "SRV")] = RRset(srv_name, "SRV", ttl, tuple(sorted(srv)))


_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _merge(out: dict[tuple[str, str], RRset], rr: RRset) -> None:
    """Add ``rr``'s rdatas to an RRset already at its owner/type (several instances of a
    service at one site share the ``<site>.<svc>.svc`` name)."""
    key = (rr.name, rr.rdtype)
    old = out.get(key)
    if old is not None:
        rr = RRset(rr.name, rr.rdtype, rr.ttl, tuple(sorted(set(old.rdatas) | set(rr.rdatas))))
    out[key] = rr


def _ordered_subnets(subnets: Sequence[ClientSubnet]) -> list[ClientSubnet]:
    """Most specific first, so the first match is the longest match."""
    return sorted(subnets, key=lambda s: (s.prefix.version, -s.prefix.prefixlen,
                                          str(s.prefix)))


def _site_records(inp: ZoneInput, site: Site, out: dict[tuple[str, str], RRset]) -> None:
    name = f"_compute.{label(site.name)}.{inp.origin}"
    pairs: list[tuple[str, str]] = [("kind", site.kind.value), ("region", site.region)]
    if site.energy_w is not None:
        pairs.append(("energy_w", _num(site.energy_w)))
    if site.price_per_hour is not None:
        pairs.append(("cost", _num(site.price_per_hour)))
    totals: dict[str, float] = {}
    units: dict[str, str] = {}
    for res in inp.resources:
        if res.site == site.name and res.value is not None and not res.dynamic:
            totals[res.type.value] = totals.get(res.type.value, 0.0) + res.value
            units[res.type.value] = res.unit
    for rtype in sorted(totals):
        pairs.append((f"res.{rtype}", f"{_num(totals[rtype])}{units[rtype]}"))
    sitewide = next((m for m in inp.metrics if m.site == site.name and m.service == "*"),
                    None)
    if sitewide is not None:
        pairs += [(k, _num(sitewide.l0[src])) for k, src in TXT_KEYS if src in sitewide.l0]
        pairs += [("l2", _num(sitewide.l2)), ("overloaded", str(int(sitewide.overloaded)))]
    services = sorted(s.name for s in inp.services
                      if any(i.site == site.name for i in s.instances))
    if services:
        pairs.append(("services", ",".join(services)))
    out[(name, "TXT")] = RRset(name, "TXT", inp.dns.static_ttl_s, (_txt(pairs),))


def build_zone(inp: ZoneInput, serial: int = 1) -> Zone:
    """Build the compute zone for ``inp`` with SOA serial ``serial`` (see module rules)."""
    origin = inp.origin.lower().rstrip(".") + "."
    inp = ZoneInput(origin, inp.dns, sorted(inp.sites, key=lambda s: s.name),
                    sorted(inp.routers, key=lambda r: r.name),
                    sorted(inp.links, key=lambda lk: lk.key),
                    sorted(inp.services, key=lambda s: s.name),
                    sorted(inp.metrics, key=lambda m: m.key),
                    sorted(inp.resources, key=lambda r: r.key), inp.ns_address,
                    sorted(inp.placements, key=lambda p: p.key))
    static_ttl = inp.dns.static_ttl_s
    out: dict[tuple[str, str], RRset] = {
        (origin, "NS"): RRset(origin, "NS", static_ttl, (f"ns.{origin}",)),
    }
    ns_name = f"ns.{origin}"
    ns_ip = ip_address(inp.ns_address)
    out.update({(ns_name, t): rr for t, rr in
                _address_rrsets(ns_name, [ns_ip], static_ttl).items()})
    steering: dict[str, Steering] = {}
    why: dict[str, dict[str, list[Candidate]]] = {}
    for svc in inp.services:
        _service_records(inp, svc, out, steering, why)
    for site in inp.sites:
        _site_records(inp, site, out)
    digest = _digest(out, steering)
    out[(origin, "SOA")] = RRset(origin, "SOA", static_ttl, (_soa_text(origin, serial),))
    return Zone(origin, serial, out, steering, why, digest)


def _digest(rrsets: dict[tuple[str, str], RRset], steering: dict[str, Steering]) -> str:
    h = hashlib.sha256()
    for key in sorted(rrsets):
        h.update(repr(rrsets[key]).encode())
    for name in sorted(steering):
        st = steering[name]
        h.update(repr((name, [str(s.prefix) for s in st.subnets],
                       [sorted(b.items()) for b in st.buckets])).encode())
    return h.hexdigest()
