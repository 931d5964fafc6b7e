"""Authoritative answers: rcodes, ECS scope, truncation (RFC 1035/2308/6891/7871)."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from dns_compute.keeper import ZoneKeeper
from dns_compute.responder import CACHE_ANY, CACHE_SOURCE, Responder, scope_for
from tests.dns_compute.topo import ZONE, dns_section, entities, overloaded

VIDEO = "video.svc.cpn.example."


def keeper(**over: object) -> ZoneKeeper:
    k = ZoneKeeper(ZONE, dns_section(**over))
    k.load(entities())
    k.rebuild()
    return k


def ask(r: Responder, name: str, rdtype: str = "A", subnet: str | None = None,
        source: str = "192.0.2.1", tcp: bool = False, **kw: object
        ) -> tuple[dns.message.Message, int]:
    opts = [dns.edns.ECSOption.from_text(subnet)] if subnet else []
    edns = 0 if subnet else kw.pop("use_edns", None)
    q = dns.message.make_query(name, rdtype, use_edns=edns,  # type: ignore[arg-type]
                               options=opts, **kw)  # type: ignore[arg-type]
    out, mode = r.respond(q.to_wire(), source, tcp)
    assert out is not None
    return dns.message.from_wire(out), mode


def ecs_scope(msg: dns.message.Message) -> int:
    return next(o.scopelen for o in msg.options if isinstance(o, dns.edns.ECSOption))


def test_answer_is_authoritative() -> None:
    msg, mode = ask(keeper().responder, "mec-1.video.svc.cpn.example", "A")
    assert msg.rcode() == 0 and msg.flags & dns.flags.AA and mode == CACHE_ANY
    assert msg.answer[0][0].to_text() == "10.0.1.10"


def test_nxdomain_nodata_and_empty_non_terminal_carry_soa() -> None:
    r = keeper().responder
    nx, _ = ask(r, "nothing.cpn.example")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == dns.rdatatype.SOA
    nodata, _ = ask(r, "mec-1.video.svc.cpn.example", "MX")
    assert nodata.rcode() == 0 and not nodata.answer and nodata.authority
    ent, _ = ask(r, "svc.cpn.example", "A")
    assert ent.rcode() == 0 and not ent.answer and ent.authority


def test_other_zone_and_axfr_are_refused() -> None:
    r = keeper().responder
    other, _ = ask(r, "example.org")
    assert other.rcode() == dns.rcode.REFUSED and not other.flags & dns.flags.AA
    suffix_trap, _ = ask(r, "xcpn.example")
    assert suffix_trap.rcode() == dns.rcode.REFUSED
    axfr, _ = ask(r, "cpn.example", "AXFR", tcp=True)
    assert axfr.rcode() == dns.rcode.REFUSED


def test_case_insensitive_and_case_preserved() -> None:
    msg, _ = ask(keeper().responder, "VIDEO.Svc.CPN.example", "SVCB")
    assert msg.question[0].name.to_text() == "VIDEO.Svc.CPN.example."
    assert len(msg.answer[0]) == 2


def test_ecs_scope_rules() -> None:
    r = keeper().responder
    near1, _ = ask(r, VIDEO, subnet="10.0.0.9/32")
    assert near1.answer[0][0].to_text() == "10.0.1.10" and ecs_scope(near1) == 24
    near2, _ = ask(r, VIDEO, subnet="10.0.1.0/24")
    assert near2.answer[0][0].to_text() == "10.0.2.10" and ecs_scope(near2) == 24
    campus, _ = ask(r, VIDEO, subnet="10.0.7.0/24")  # only the /16 matches
    # 10.0.4.0/22 is the largest block around it holding neither nested /24.
    assert ecs_scope(campus) == 22
    far, _ = ask(r, VIDEO, subnet="10.1.0.0/16")  # outside the /16: default answer
    assert ecs_scope(far) == 16  # 10.1/16 is the largest block not touching 10.0/16
    outside, _ = ask(r, VIDEO, subnet="203.0.113.0/24")
    assert ecs_scope(outside) == 1  # 128.0.0.0/1 holds no configured subnet
    optout, _ = ask(r, VIDEO, subnet="0.0.0.0/0")
    assert ecs_scope(optout) == 0
    static, _ = ask(r, "_compute.mec-1.cpn.example", "TXT", subnet="10.0.0.0/24")
    assert ecs_scope(static) == 0  # RFC 7871 §7.2.1: answer does not depend on the client


def test_scope_for_is_the_largest_clean_block() -> None:
    nested = ((0x0A000000, 24), (0x0A000100, 24))  # 10.0.0.0/24, 10.0.1.0/24
    assert scope_for(0x0A000700, 32, 16, nested) == 22  # 10.0.7.0 → 10.0.4.0/22
    assert scope_for(0x0A000200, 32, 16, nested) == 23  # 10.0.2.0 → 10.0.2.0/23
    assert scope_for(0x0A000000, 32, 24, ()) == 24


def test_without_ecs_the_source_address_steers() -> None:
    r = keeper().responder
    msg, mode = ask(r, VIDEO, source="10.0.1.77")
    assert msg.answer[0][0].to_text() == "10.0.2.10" and mode == CACHE_SOURCE


def test_truncation_over_udp_then_full_over_tcp() -> None:
    services = {"video": {"ttl_s": 5}}
    k = ZoneKeeper(ZONE, dns_section(services=services))
    ents = entities()
    from controller.models import Service

    svc = next(e for e in ents if isinstance(e, Service))
    many = [{"site": "MEC-1", "address": f"10.0.9.{i}"} for i in range(1, 40)]
    svc2 = Service.model_validate({**svc.model_dump(mode="json"),
                                   "instances": [i.model_dump(mode="json")
                                                 for i in svc.instances] + many})
    k.load([e for e in ents if not isinstance(e, Service)] + [svc2])
    k.rebuild()
    udp, _ = ask(k.responder, VIDEO, "SVCB")
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp, _ = ask(k.responder, VIDEO, "SVCB", tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 41


def test_swap_changes_answer_and_serial() -> None:
    k = keeper()
    before = k.current
    assert before is not None
    assert k.rebuild() is None  # nothing changed: no new version
    k.load([overloaded("MEC-1")])
    v = k.rebuild()
    assert v is not None and v.zone.serial == before.zone.serial + 1
    assert "video.svc.cpn.example." in v.changed
    msg, _ = ask(k.responder, VIDEO, subnet="10.0.0.0/24")
    assert msg.answer[0][0].to_text() == "10.0.2.10"


def test_ipv6_instances_and_ecs() -> None:
    from controller.models import Service

    ents = entities()
    svc = next(e for e in ents if isinstance(e, Service))
    v6 = Service.model_validate({
        **svc.model_dump(mode="json"), "anycast": ["198.51.100.10", "2001:db8::10"],
        "instances": [i.model_dump(mode="json") for i in svc.instances]
        + [{"site": "MEC-2", "address": "2001:db8:2::10"}]})
    k = ZoneKeeper(ZONE, dns_section(client_subnets=[
        {"prefix": "10.0.0.0/24", "node": "R2"}, {"prefix": "2001:db8:1::/48", "node": "R3"}]))
    k.load([e for e in ents if not isinstance(e, Service)] + [v6])
    k.rebuild()
    aaaa, _ = ask(k.responder, VIDEO, "AAAA", subnet="2001:db8:1:5::/64")
    assert aaaa.answer[0][0].to_text() == "2001:db8:2::10" and ecs_scope(aaaa) == 48
    a, _ = ask(k.responder, VIDEO, "A", subnet="2001:db8:1:5::/64")
    assert a.answer[0][0].to_text() == "10.0.2.10"  # R3 is nearest to MEC-2 for IPv4 too
    svcb, _ = ask(k.responder, VIDEO, "SVCB")
    assert 'ipv6hint="2001:db8:2::10"' in svcb.answer[0].to_text()
    # Two instances at MEC-2 share mec-2.video.svc: both addresses and both TXTs stay.
    txt, _ = ask(k.responder, "mec-2.video.svc.cpn.example", "TXT")
    assert len(txt.answer[0]) == 2
    both, _ = ask(k.responder, "mec-2.video.svc.cpn.example", "AAAA")
    assert both.answer[0][0].to_text() == "2001:db8:2::10"


def test_negative_answer_soa_ttl_is_min_of_ttl_and_minimum() -> None:
    """RFC 2308 §3: the SOA in NXDOMAIN/NODATA had its own TTL (60) instead of 5."""
    from dns_compute.models import RRset
    from dns_compute.responder import negative_soa

    soa = RRset("cpn.example.", "SOA", 60,
                ("ns.cpn.example. hostmaster.cpn.example. 7 3600 600 86400 5",))
    assert negative_soa(soa).ttl == 5
    assert negative_soa(RRset(soa.name, "SOA", 3, soa.rdatas)).ttl == 3
