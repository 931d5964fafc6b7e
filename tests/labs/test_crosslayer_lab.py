"""``cpn lab crosslayer`` end to end (issue 14 item 4): between two hubs, the OTN path
is provisioned on netconfd NEs for an SR policy intent and read back before the SRv6
path is programmed in the kernel, traffic flows over it, and deleting the intent
removes the routes and then the OTN path from the NEs."""

from __future__ import annotations

from pathlib import Path

import pytest

from labs.crosslayer import LINK, run
from labs.intents.backbone import srv6_supported
from tests.conftest import needs_netns


@needs_netns
def test_otn_path_provisioned_for_the_intent_and_released_after(tmp_path: Path) -> None:
    if not srv6_supported():
        pytest.skip("this kernel can program no SRv6 (no seg6 lwtunnel, no eBPF lwt)")
    out = run(tmp_path)
    assert out["nes_before"] == {}  # nothing lit before the intent
    up = out["otn_up"]
    assert up["path"] == "xl-HA.HB" and up["nes"][0] == "ne0" and up["nes"][-1] == "ne2"
    lit = out["nes_with_intent"]  # read by our own NETCONF session, not the controller's
    assert set(lit) == set(up["nes"])  # a cross-connect on every NE of the path
    assert out["optical_paths"][0]["state"] == "active"
    assert out["optical_paths"][0]["ip-links"] == [LINK]
    assert out["status"]["state"] == "verified"  # probe captured at the egress
    assert out["status"]["active"]["links"] == [LINK]
    otn = out["otn_links"]["items"][0]  # GET /api/v1/srv6/otn-links
    assert otn["link"] == LINK and otn["up"] and otn["used_by"] == ["HA~100~HB"]
    cli = out["otn_links_cli"]  # cpn srv6 intents otn-links
    assert "HA~HB" in cli and "xl-HA.HB" in cli and "HA~100~HB" in cli, cli
    assert out["headend_routes"]  # the kernel steers the prefix into the SR policy
    t = out["traffic"]
    assert t["received"] >= 0.95 * t["sent"], t
    assert out["headend_routes_after"] == [] and out["nes_after"] == {}
    assert out["otn_release"]["ok"] and out["optical_paths_after"] == []
    assert out["routes_removed_ms"] <= out["otn_released_ms"]
    assert (tmp_path / "crosslayer-report.json").exists()
