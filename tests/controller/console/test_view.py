"""Console data and routes without a browser: a flow's path from its SIDs, the overview
document, static files (no traversal), the page without a token, data only with one."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv6Network
from pathlib import Path

from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.console.view import flow_path
from controller.flows import FlowSteering
from controller.models import Link, Router, Site, SiteKind
from tests.conftest import example_runtime

OP = "op-token-0123456789"


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


def test_page_is_public_data_needs_a_token_static_is_contained(tmp_path: Path) -> None:
    with example_runtime(tmp_path, "gba.yaml", (OP, "ops", "operator", None)) as rt:
        c = TestClient(create_app(rt))
        page = c.get("/console")
        assert page.status_code == 200 and "CPN console" in page.text
        assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN
        assert c.get("/console/static/vendor/cytoscape.min.js").status_code == 200
        assert c.get("/console/static/../routes.py").status_code == 404
        assert c.get("/console/static/%2e%2e/routes.py").status_code == 404
        r = c.get("/api/v1/console/overview")
        assert r.status_code == 401 and "missing bearer token" in r.json()["error"]["message"]
        ov = c.get("/api/v1/console/overview", headers={"Authorization": f"Bearer {OP}"}).json()
        assert len(ov["sites"]) == 8 and ov["whoami"]["role"] == "operator"
        assert all({"a", "b", "kind", "state", "load_pct"} <= set(lk) for lk in ov["links"])
