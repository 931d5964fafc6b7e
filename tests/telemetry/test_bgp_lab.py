"""Namespace test with real daemons (issue #3 "Show"): GoBGP in two MEC namespaces
peers with the controller's managed ExaBGP in a controller namespace; metric change,
withdraw and session loss reach the store as the right ComputeMetrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

import pytest

from controller.events import StateChanged
from controller.models import ComputeMetrics, Service, Site, SiteKind
from controller.runtime import Runtime, Settings
from labs.gobgp_site import GobgpNeighbor, announce_argv, gobgp_toml, withdraw_argv
from labs.netns import Lab, Ns
from telemetry import cats
from telemetry.bgp.codec import ComputeMetadata
from telemetry.bgp.decoder import PeerDown, PeerUp, Rejected
from telemetry.bgp.models import BgpConfig
from telemetry.plugin_bgp import BgpComponent
from tests.conftest import have, needs_netns

pytestmark = [needs_netns, pytest.mark.lab,
              pytest.mark.skipif(not have("gobgpd"), reason="needs gobgpd")]

VIDEO = "198.51.100.10/32"


async def _until(pred: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _mec(lab: Lab, ctl: Ns, n: int, tmp: Path) -> tuple[Ns, object]:
    mec = lab.ns(f"mec{n}")
    lab.link(ctl, mec, f"m{n}", "eth0", [f"10.0.{n}.1/24"], [f"10.0.{n}.2/24"])
    conf = tmp / f"gobgp-mec{n}.toml"
    conf.write_text(gobgp_toml(65000 + n, f"10.0.{n}.2",
                               [GobgpNeighbor(f"10.0.{n}.1", 65000, passive=True)],
                               local_address=f"10.0.{n}.2"))
    proc = mec.popen(["gobgpd", "-f", str(conf)], log=tmp / f"gobgpd-mec{n}.log")
    return mec, proc


def test_gobgp_mecs_to_managed_exabgp(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp: Path) -> None:
    with Lab("bgp") as lab:
        ctl = lab.ns("ctl")
        mec1, gobgpd1 = _mec(lab, ctl, 1, tmp)
        mec2, _ = _mec(lab, ctl, 2, tmp)
        cfg = BgpConfig.model_validate({
            "local_as": 65000, "router_id": "10.0.1.1", "flush_ms": 10,
            "peers": [{"address": "10.0.1.2", "peer_as": 65001, "site": "MEC-1",
                       "local_address": "10.0.1.1"},
                      {"address": "10.0.2.2", "peer_as": 65002, "site": "MEC-2",
                       "local_address": "10.0.2.1"}]})
        rt = Runtime(None, Settings(state=tmp / "state"))
        rt.bus.bind(asyncio.get_running_loop())
        with rt.store.transaction("test", "seed") as txn:
            for s in ("MEC-1", "MEC-2"):
                txn.put(Site(name=s, kind=SiteKind.MEC, region="lab"))
            txn.put(Service(name="video", anycast=[ip_address("198.51.100.10")]))
        seen: list[object] = []
        changes: list[ComputeMetrics] = []
        rt.bus.on(PeerUp, seen.append)
        rt.bus.on(PeerDown, seen.append)
        rt.bus.on(Rejected, seen.append)
        rt.bus.on(StateChanged, lambda ev: changes.extend(
            c.value for c in ev.changes if isinstance(c.value, ComputeMetrics)))
        comp = BgpComponent(cfg, wrap=["ip", "netns", "exec", ctl.name])
        await comp.start(rt)
        try:
            await _until(lambda: sum(isinstance(e, PeerUp) for e in seen) == 2,
                         "both BGP sessions up")

            def get(key: str) -> ComputeMetrics | None:
                return rt.store.get(ComputeMetrics, key)

            # both MECs advertise the video anycast with metadata
            mec1.run(announce_argv(VIDEO, ComputeMetadata(l2=8.5, l0={"cpu_pct": 20}),
                                   65001))
            mec2.run(announce_argv(VIDEO, ComputeMetadata(l2=6.0), 65002))
            await _until(lambda: (m := get("MEC-1/video")) and m.l2 == 8.5, "MEC-1 metrics")
            await _until(lambda: (m := get("MEC-2/video")) and m.l2 == 6.0, "MEC-2 metrics")

            # MEC-1's load rises: it now advertises raw L0 only; the controller scores it
            busy = {"cpu_pct": 92.0, "util_pct": 88.0}
            want = cats.l2_score(cats.l1_scores(busy, cfg.cats), cfg.cats)
            mec1.run(announce_argv(VIDEO, ComputeMetadata(l0=busy), 65001))
            await _until(lambda: any(c.key == "MEC-1/video" and c.l2 == want and c.overloaded
                                     for c in changes), "StateChanged with MEC-1's new L2")
            m1 = get("MEC-1/video")
            assert m1 is not None and m1.l2 == want < 2.0 and m1.overloaded
            assert m1.source == "bgp" and m1.usable

            # bad input from the real daemon: an unknown metric id ⇒ Rejected, state kept
            mec1.run(["gobgp", "global", "rib", "add", VIDEO, "large-community",
                      "65001:1:100,65001:77:1"])
            await _until(lambda: any(isinstance(e, Rejected) and "unknown metric id 77"
                                     in e.reason for e in seen), "Rejected event")
            m1 = get("MEC-1/video")
            assert m1 is not None and m1.l2 == want and m1.available

            # withdraw ⇒ unavailable; MEC-2 untouched
            mec1.run(withdraw_argv(VIDEO))
            await _until(lambda: (m := get("MEC-1/video")) and not m.available,
                         "MEC-1 withdraw")
            m2 = get("MEC-2/video")
            assert m2 is not None and m2.usable and m2.l2 == 6.0

            # MEC-2's gobgpd is not touched; MEC-1's is killed ⇒ only MEC-1 stale
            mec1.run(announce_argv(VIDEO, ComputeMetadata(l2=7.0), 65001))
            await _until(lambda: (m := get("MEC-1/video")) and m.usable and m.l2 == 7.0,
                         "MEC-1 re-announce")
            lab.stop(gobgpd1)  # type: ignore[arg-type]
            await _until(lambda: (m := get("MEC-1/video")) and m.stale, "MEC-1 stale")
            assert any(isinstance(e, PeerDown) and e.peer == "10.0.1.2" for e in seen)
            m2 = get("MEC-2/video")
            assert m2 is not None and not m2.stale

            # ExaBGP crash ⇒ everything stale, restarted, MEC-2 fresh again
            assert comp.speaker is not None
            comp.speaker.kill()
            await _until(lambda: (m := get("MEC-2/video")) and m.stale, "MEC-2 stale on crash")
            await _until(lambda: (m := get("MEC-2/video")) and not m.stale,
                         "MEC-2 fresh after ExaBGP restart", timeout=40)
            assert comp.speaker.restarts == 1
        finally:
            await comp.stop()
            rt.store.close()
