"""The web console stays live through the security-video lab (issue #18 "Show"): the
CPN run of the lab with ``console_dir`` set, so headless Chromium (selenium) runs inside
the controller's namespace and watches ``/console`` without reloading while MEC-1 is
loaded and the video flow moves to MEC-2. Asserts what the page showed (from its own
DOM, sampled every 0.25 s): live the whole time, the flow's site MEC-1 then MEC-2 with
the path R1 → R3 → MEC-2, MEC-1 overloaded, and redraws driven by the change feed.
Latency figures are the other lab test's business (the browser takes CPU here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import have, needs_netns


@needs_netns
@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.skipif(not have("chromedriver") or not have("gobgpd"),
                    reason="needs Debian chromium + chromium-driver and gobgpd")
def test_console_stays_live_while_the_flow_moves(tmp_path: Path) -> None:
    from labs.security_video.scenario import Params, run_scenario

    data = run_scenario(tmp_path / "cpn", Params(steer=True, before_s=4.0, after_s=6.0,
                                                 console_dir=str(tmp_path / "console")))
    assert [d["site"] for d in data["decisions"]][:2] == ["MEC-1", "MEC-2"]
    c = data["console"]
    print("console screenshots:", *c["screenshots"])
    assert c["live_throughout"] and c["samples"] >= 20
    assert c["moves_seen"] == [["MEC-1", "MEC-2"]]
    after = [r for r in c["timeline"] if r["flow_site"] == "MEC-2"]
    assert after and "R1 → R3 → MEC-2" in after[-1]["flow_path"]
    assert any(r["mec1"] == "overloaded" for r in c["timeline"])
    assert c["renders"] >= 3  # redrawn by the change feed, never reloaded
    assert all(Path(s).stat().st_size > 10_000 for s in c["screenshots"])
