"""Candidate paths for placement (``scheduler.paths``): the SRv6 engine and the fallback
agree, including on sites attached to a router through ``Router.site`` (issue #19)."""

from __future__ import annotations

from controller.models import Link, Router, Site, SiteKind
from scheduler.paths import fallback_k_paths, k_paths


def attached() -> tuple[list[Router], list[Site], list[Link]]:
    """R1 - R2 - R3 and R1 - R3 (slow); MEC-2 hangs off R3 only through ``Router.site``."""
    routers = [Router(name="R1"), Router(name="R2"), Router(name="R3", site="MEC-2")]
    sites = [Site(name="MEC-2", kind=SiteKind.MEC, region="r")]
    links = [Link(a="R1", b="R2", delay_ms=2), Link(a="R2", b="R3", delay_ms=3),
             Link(a="R1", b="R3", delay_ms=9)]
    return routers, sites, links


def test_flow_to_site_attached_through_router_site_gets_candidate_paths() -> None:
    routers, sites, links = attached()
    got, engine = k_paths(links, routers, sites, [("R1", "MEC-2")], 3)
    assert engine == "srv6"
    paths = got[("R1", "MEC-2")]
    assert [p.links for p in paths] == [("R1~R2", "R2~R3"), ("R1~R3",)]
    assert [p.delay_ms for p in paths] == [5.0, 9.0]
    assert all("@" not in key for p in paths for key in p.links)  # no attachment keys
    fallback = fallback_k_paths(links, routers, [("R1", "MEC-2")], 3)[("R1", "MEC-2")]
    assert [p.links for p in fallback] == [p.links for p in paths]
