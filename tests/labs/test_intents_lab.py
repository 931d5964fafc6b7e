"""``cpn lab intents`` end to end (issue 13 Show): intents over REST and NETCONF are
verified by capture, a cut link under a 1 kHz stream re-paths with the loss counted,
a hand-deleted route is repaired — on real kernels in namespaces.

Needs kernel SRv6 (seg6 lwtunnel): on a kernel built without
``CONFIG_IPV6_SEG6_LWTUNNEL`` no SRv6 route can exist, so the lab cannot run and the
test says so (the lab itself refuses with the same reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labs.intents.backbone import srv6_supported
from labs.intents.scenario import run
from tests.conftest import needs_netns


@needs_netns
def test_intents_lab_verifies_repaths_and_repairs(tmp_path: Path) -> None:
    if not srv6_supported():
        pytest.skip("this kernel has no seg6 lwtunnel (CONFIG_IPV6_SEG6_LWTUNNEL)")
    out = run(tmp_path, rate=1000, seconds=3.0)
    assert out["rest_intent"]["status"]["state"] == "verified"
    assert out["netconf_intent"]["status"]["state"] == "verified"
    cap = out["capture"]
    assert cap["equal"] and cap["egress_segments"] == cap["computed_segments"]
    cut = out["cut"]
    assert cut["path_after"] and cut["path_after"] != cut["path_before"]
    assert cut["cut_link"] not in "~".join(cut["path_after"])
    assert cut["receiver"]["lost"] <= 50, cut  # backup pre-installed: ≤ 50 ms at 1 kHz
    assert out["repair"]["repairs_counted"] >= 1 and out["repair"]["restored_ms"] < 5000
    assert out["restart"]["first_pass_ops"] == 0  # restart tears nothing down
    assert out["restart"]["stream"]["lost"] == 0
    assert set(out["final"].values()) <= {"programmed", "verified"}
    assert (tmp_path / "intents-report.txt").read_text().startswith("intents lab:")
