"""BGP conformance with GoBGP as a real peer (issue #15; RFC 4271, RFC 8092): per-prefix
route independence, implicit withdraw, global-administrator filtering, duplicate metric
ids, L1 → L2, and the per-peer series on ``/metrics``. One MEC namespace runs gobgpd; the
controller's managed ExaBGP runs in another."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from controller.models import ComputeMetrics, Service, ServiceContactInstance, Site, SiteKind
from controller.runtime import Runtime, Settings
from labs.gobgp_site import GobgpNeighbor, announce_argv, gobgp_toml, withdraw_argv
from labs.netns import Lab
from telemetry.bgp.codec import ComputeMetadata
from telemetry.bgp.decoder import PeerUp, Rejected
from telemetry.bgp.models import BgpConfig
from telemetry.plugin_bgp import BgpComponent
from tests.conftest import have, needs_netns

pytestmark = [needs_netns, pytest.mark.lab,
              pytest.mark.skipif(not have("gobgpd"), reason="needs gobgpd")]

VIDEO = "198.51.100.10/32"
PEER = 'peer="10.0.1.2",site="MEC-1"'


async def _until(pred: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _series(rt: Runtime, name: str) -> float | None:
    text = generate_latest(rt.metrics).decode()
    m = re.search(rf"^{name}{{{re.escape(PEER)}}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_gobgp_peer_conformance(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp: Path) -> None:
    with Lab("bgpc") as lab:
        ctl, mec = lab.ns("ctl"), lab.ns("mec1")
        lab.link(ctl, mec, "m1", "eth0", ["10.0.1.1/24"], ["10.0.1.2/24"])
        conf = tmp / "gobgp.toml"
        conf.write_text(gobgp_toml(65001, "10.0.1.2",
                                   [GobgpNeighbor("10.0.1.1", 65000, passive=True)],
                                   local_address="10.0.1.2"))
        mec.popen(["gobgpd", "-f", str(conf)], log=tmp / "gobgpd.log")
        cfg = BgpConfig.model_validate({
            "local_as": 65000, "router_id": "10.0.1.1", "flush_ms": 10,
            "peers": [{"address": "10.0.1.2", "peer_as": 65001, "site": "MEC-1",
                       "local_address": "10.0.1.1"}]})
        rt = Runtime(None, Settings(state=tmp / "state"))
        rt.bus.bind(asyncio.get_running_loop())
        with rt.store.transaction("test", "seed") as txn:
            txn.put(Site(name="MEC-1", kind=SiteKind.MEC, region="lab"))
            # MEC-1 hosts video (an instance there) but not ai
            txn.put(Service(name="video", anycast=[ip_address("198.51.100.10")],
                            instances=[ServiceContactInstance(
                                site="MEC-1", address=ip_address("10.0.1.2"))]))
            txn.put(Service(name="ai", anycast=[ip_address("198.51.100.20")]))
        seen: list[object] = []
        rt.bus.on(PeerUp, seen.append)
        rt.bus.on(Rejected, seen.append)
        comp = BgpComponent(cfg, wrap=["ip", "netns", "exec", ctl.name])
        await comp.start(rt)

        def get(key: str) -> ComputeMetrics | None:
            return rt.store.get(ComputeMetrics, key)

        try:
            await _until(lambda: any(isinstance(e, PeerUp) for e in seen), "session up")
            assert _series(rt, "cpn_bgp_session_up") == 1.0

            # a default route with metadata speaks only for what the site hosts
            mec.run(announce_argv("0.0.0.0/0", ComputeMetadata(l2=3.0), 65001))
            await _until(lambda: (m := get("MEC-1/video")) and m.l2 == 3.0, "0/0 → video")
            assert get("MEC-1/ai") is None

            # the host route is more specific: it speaks for video from now on
            mec.run(announce_argv(VIDEO, ComputeMetadata(
                l2=8.0, l0={"cpu_pct": 20, "gpu_free": 4}), 65001))
            await _until(lambda: (m := get("MEC-1/video")) and m.l2 == 8.0, "/32 → video")
            m = get("MEC-1/video")
            assert m is not None and m.l0["gpu_free"] == 4.0

            # implicit withdraw: the replacing route has no gpu_free and only L1 scores
            l1 = {"compute_norm": 1.0, "communication_norm": 1.0, "service_norm": 1.0}
            mec.run(announce_argv(VIDEO, ComputeMetadata(l1=l1, l0={"cpu_pct": 30}), 65001))
            await _until(lambda: (m := get("MEC-1/video")) and m.l0.get("cpu_pct") == 30.0,
                         "replacing route")
            m = get("MEC-1/video")
            assert m is not None and "gpu_free" not in m.l0 and m.l2 == 10.0

            # someone else's large communities (65099:…) are not metadata; a metric id
            # carried twice is a warning, the route is used
            mec.run(["gobgp", "global", "rib", "add", VIDEO, "large-community",
                     "65099:1:100,65099:77:1,65001:1:600,65001:1:650"])
            await _until(lambda: (m := get("MEC-1/video")) and m.l2 == 6.0,
                         "route with foreign communities")
            assert comp.core is not None and comp.core.stats["warnings"] == 1
            assert not any(isinstance(e, Rejected) for e in seen)

            # the covering route goes: the still-advertised /32 keeps video available
            mec.run(withdraw_argv("0.0.0.0/0"))
            await _until(lambda: comp.core is not None and comp.core.routes("10.0.1.2") == 1,
                         "0/0 withdrawn")
            await asyncio.sleep(0.2)
            m = get("MEC-1/video")
            assert m is not None and m.usable and m.l2 == 6.0

            # a bad route is refused and counted against the peer
            mec.run(["gobgp", "global", "rib", "add", VIDEO, "large-community",
                     "65001:77:1"])
            await _until(lambda: any(isinstance(e, Rejected) for e in seen), "Rejected")
            assert _series(rt, "cpn_bgp_rejects_total") == 1.0
            assert _series(rt, "cpn_bgp_routes") == 1.0
            updates = _series(rt, "cpn_bgp_updates_total")
            assert updates is not None and updates >= 4

            mec.run(withdraw_argv(VIDEO))
            await _until(lambda: (m := get("MEC-1/video")) and not m.available, "withdraw")
            assert _series(rt, "cpn_bgp_routes") == 0.0
        finally:
            await comp.stop()
            rt.store.close()
