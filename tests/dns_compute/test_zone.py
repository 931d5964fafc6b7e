"""The compute zone is a pure, deterministic function of state (issue 5 §1)."""

from __future__ import annotations

from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.models import (
    ComputeMetrics,
    ComputeResource,
    Entity,
    Link,
    Router,
    Service,
    Site,
)
from dns_compute.zone import SVC_KEYS, ZoneInput, build_zone
from tests.dns_compute.topo import ZONE, dns_section, entities, overloaded


def zone_input(ents: list[Entity], **dns_over: Any) -> ZoneInput:
    def of(c: type) -> list[Any]:
        return [e for e in ents if isinstance(e, c)]

    return ZoneInput(ZONE, dns_section(**dns_over), of(Site), of(Router), of(Link),
                     of(Service), of(ComputeMetrics), of(ComputeResource))


def with_metrics(m: ComputeMetrics) -> list[Entity]:
    return [e for e in entities() if not (isinstance(e, ComputeMetrics) and e.key == m.key)] \
        + [m]


def test_records_parse_and_names_follow_the_scheme() -> None:
    z = build_zone(zone_input(entities()), 42)
    for rr in z.rrsets.values():  # every rdata is valid presentation format
        for text in rr.rdatas:
            dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rr.rdtype), text)
    keys = set(z.rrsets)
    assert ("video.svc.cpn.example.", "A") in keys
    assert ("video.svc.cpn.example.", "SVCB") in keys
    assert ("_video._udp.svc.cpn.example.", "SRV") in keys
    assert ("mec-1.video.svc.cpn.example.", "TXT") in keys
    assert ("_compute.mec-1.cpn.example.", "TXT") in keys
    soa = z.rrsets[("cpn.example.", "SOA")].rdatas[0]
    assert soa.split()[2] == "42"
    assert z.rrsets[("video.svc.cpn.example.", "A")].ttl == 5


def test_svcb_carries_compute_keys_and_txt_dns_sd_keys() -> None:
    z = build_zone(zone_input(entities()))
    svcb = " ".join(z.rrsets[("video.svc.cpn.example.", "SVCB")].rdatas)
    assert 'key65280="8"' in svcb and 'key65281="20"' in svcb  # l2, cpu_pct of MEC-1
    assert 'key65285="400"' in svcb  # energy_w
    assert SVC_KEYS[65280][0] == "cpn-l2"
    txt = z.rrsets[("mec-1.video.svc.cpn.example.", "TXT")].rdatas[0]
    for k in ('"cpu=20"', '"gpu=1"', '"cost=1.5"', '"load=20"', '"prio=1"'):
        assert k in txt
    site = z.rrsets[("_compute.mec-1.cpn.example.", "TXT")].rdatas[0]
    assert '"res.cpu=8cores"' in site and '"services=video"' in site


def test_subnets_steer_to_nearest_instance() -> None:
    z = build_zone(zone_input(entities()))
    st = z.steering["video.svc.cpn.example."]
    answers = {str(s.prefix): b["A"].rdatas for s, b in zip(st.subnets, st.buckets,
                                                              strict=True)}
    assert answers["10.0.0.0/24"] == ("10.0.1.10",)  # behind R2 → MEC-1
    assert answers["10.0.1.0/24"] == ("10.0.2.10",)  # behind R3 → MEC-2
    assert [str(s.prefix) for s in st.subnets][-1] == "10.0.0.0/16"  # most specific first


def test_overload_moves_answer_and_srv_priority() -> None:
    z = build_zone(zone_input(with_metrics(overloaded("MEC-1"))))
    st = z.steering["video.svc.cpn.example."]
    assert all(b["A"].rdatas == ("10.0.2.10",) for b in st.buckets)
    assert z.rrsets[("video.svc.cpn.example.", "A")].rdatas == ("10.0.2.10",)
    srv = z.rrsets[("_video._udp.svc.cpn.example.", "SRV")].rdatas
    assert "65535 1 5004 mec-1.video.svc.cpn.example." in srv
    why = z.why["video"]["10.0.0.0/24"]
    assert not why[-1].eligible and "overloaded" in why[-1].why_not


def test_no_eligible_instance_falls_back_to_anycast() -> None:
    ents = with_metrics(overloaded("MEC-1"))
    ents = [e for e in ents if not (isinstance(e, ComputeMetrics) and e.site == "MEC-2")]
    ents.append(overloaded("MEC-2"))
    z = build_zone(zone_input(ents))
    assert z.rrsets[("video.svc.cpn.example.", "A")].rdatas == ("198.51.100.10",)


def test_anycast_mode_global_and_per_service() -> None:
    z = build_zone(zone_input(entities(), anycast=True))
    assert z.rrsets[("video.svc.cpn.example.", "A")].rdatas == ("198.51.100.10",)
    z2 = build_zone(zone_input(entities(), services={"video": {"anycast": True, "ttl_s": 1}}))
    rr = z2.rrsets[("video.svc.cpn.example.", "A")]
    assert rr.rdatas == ("198.51.100.10",) and rr.ttl == 1


def test_digest_is_deterministic_and_ignores_serial() -> None:
    a = build_zone(zone_input(entities()), 1)
    b = build_zone(zone_input(list(reversed(entities()))), 2)
    assert a.digest == b.digest
    c = build_zone(zone_input(with_metrics(overloaded("MEC-1"))), 1)
    assert c.digest != a.digest


@settings(max_examples=60, deadline=None)
@given(l2a=st.floats(0, 10), l2b=st.floats(0, 10), over_a=st.booleans(), over_b=st.booleans(),
       stale_b=st.booleans(), cpu=st.floats(0, 100))
def test_property_answer_is_best_eligible_or_anycast(l2a: float, l2b: float, over_a: bool,
                                                     over_b: bool, stale_b: bool,
                                                     cpu: float) -> None:
    ents = [e for e in entities() if not isinstance(e, ComputeMetrics)]
    ents += [ComputeMetrics(site="MEC-1", service="video", l2=l2a, overloaded=over_a,
                            l0={"cpu_pct": cpu}),
             ComputeMetrics(site="MEC-2", service="video", l2=l2b, overloaded=over_b,
                            stale=stale_b)]
    z = build_zone(zone_input(ents))
    for rr in z.rrsets.values():
        for text in rr.rdatas:
            dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rr.rdtype), text)
    st_ = z.steering["video.svc.cpn.example."]
    for sub, bucket in zip(st_.subnets, st_.buckets, strict=True):
        ranked = z.why["video"][str(sub.prefix)]
        eligible = [c for c in ranked if c.eligible]
        want = eligible[0].address if eligible else "198.51.100.10"
        assert bucket["A"].rdatas == (want,)
        assert all(c.eligible for c in ranked[:len(eligible)])  # eligible first
    assert z.digest == build_zone(zone_input(list(reversed(ents)))).digest
