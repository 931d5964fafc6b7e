"""``cpn lab placement`` end to end (issue 14 item 3 Show): a flow placed through REST
becomes a programmed SR path on real kernel SRv6 routers (read back, probed, carrying
traffic) and a DNS answer; both follow it when it moves and are released when it ends;
an infeasible placement programs nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from labs.intents.backbone import srv6_supported
from labs.intents.placement import INSTANCES, run
from tests.conftest import needs_netns


@needs_netns
def test_placement_becomes_path_and_dns_answer_then_released(tmp_path: Path) -> None:
    if not srv6_supported():
        pytest.skip("this kernel cannot program SRv6 (no seg6 lwtunnel, no eBPF lwt)")
    out = run(tmp_path)
    before = out["before"]
    assert before["placement_name"]["rcode"] == "NXDOMAIN"
    ranking = before["service"]["a"]
    for step in ("placed", "moved"):
        s = out[step]
        assert s["state"] == "verified" and s["decision_network"]["state"] == "verified"
        assert s["kernel_equals_status"] and s["kernel_route_at_BJ"]["segments"]
        assert s["probe_ok"] and s["probe_egress_segments"] == s["segments"]
        assert s["dns"]["service"]["a"] == [INSTANCES[s["site"]]]
        assert s["dns"]["placement_name"]["a"] == [INSTANCES[s["site"]]]
        assert s["stream"]["received"] == s["stream"]["sent"], s["stream"]
    assert out["moved"]["site"] != out["placed"]["site"]
    assert out["moved"]["old_route_at_BJ"] is None
    rel = out["released"]
    assert rel["intents_left"] == [] and rel["dns"]["service"]["a"] == ranking
    assert rel["dns"]["placement_name"]["rcode"] == "NXDOMAIN"
    assert rel["stream"]["received"] == 0  # the path is gone: nothing arrives
    bad = out["infeasible"]
    assert bad["code"] == "unschedulable" and bad["intent"] is None
    assert {c for _, c, _ in bad["not_chosen"]} == {"delay-bound"}
    assert bad["place_intents"] == [] and bad["routes_at_BJ_unchanged"]
    assert bad["dns_after"] == ranking
    assert (tmp_path / "placement-report.txt").read_text().startswith("placement lab:")
