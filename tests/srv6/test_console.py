"""The console's flows view (srv6.console): a steered flow's path from its SIDs."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv6Network

from controller.models import Link, Router, Site, SiteKind
from srv6.console import flow_path
from srv6.flows import FlowSteering


def _flow(site: str, segments: list[str]) -> FlowSteering:
    return FlowSteering(service="video", headend="R1", site=site, segments=segments,
                        decided_at=datetime.now(UTC))


def test_flow_path_follows_locators_and_the_site_gateway() -> None:
    routers = [Router(name="R1", locator=IPv6Network("fc00:0:1::/48")),
               Router(name="R2", locator=IPv6Network("fc00:0:2::/48")),
               Router(name="R3", locator=IPv6Network("fc00:0:3::/48")),
               Router(name="R4", site="MEC-2")]
    sites = [Site(name="MEC-1", kind=SiteKind.MEC, region="x"),
             Site(name="MEC-2", kind=SiteKind.MEC, region="x")]
    links = [Link(a="R1", b="R2"), Link(a="R2", b="MEC-1"), Link(a="R1", b="R3"),
             Link(a="R3", b="R4")]
    assert flow_path(_flow("MEC-1", ["fc00:0:2::100"]), routers, sites, links) == \
        ["R1", "R2", "MEC-1"]
    # R3 is the last SID; MEC-2 hangs off its gateway R4
    assert flow_path(_flow("MEC-2", ["fc00:0:3::100"]), routers, sites, links) == \
        ["R1", "R3", "R4", "MEC-2"]
    # SIDs nobody owns are skipped; the site is reached through the router linked to both
    assert flow_path(_flow("MEC-1", ["2001:db8::1", "not-an-ip"]), routers, sites, links) \
        == ["R1", "R2", "MEC-1"]
