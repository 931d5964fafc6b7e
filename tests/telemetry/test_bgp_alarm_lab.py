"""Alarm test with real daemons (issue #18 "Show", GBA-6.7): GoBGP at a MEC peers with
the controller's ExaBGP; the GoBGP daemon is killed ⇒ a critical ``bgp-session-down``
alarm within the hold time; GoBGP back ⇒ the alarm clears; the operator's
acknowledgement is journaled."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.models import Site, SiteKind
from controller.ops.engine import AlarmEngine
from controller.ops.models import Alarm, Severity, alarm_id
from controller.runtime import Runtime, Settings
from controller.store.base import JournalQuery
from labs.gobgp_site import GobgpNeighbor, gobgp_toml
from labs.netns import Lab
from telemetry.bgp.models import BgpConfig
from telemetry.plugin_bgp import BgpComponent
from tests.conftest import have, needs_netns

pytestmark = [needs_netns, pytest.mark.lab,
              pytest.mark.skipif(not have("gobgpd"), reason="needs gobgpd")]

HOLD_S = 6


async def _until(pred: Callable[[], object], what: str, timeout: float = 30) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def test_killed_bgp_session_raises_and_clears_an_alarm(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp: Path) -> None:
    with Lab("bgpalarm") as lab:
        ctl, mec = lab.ns("ctl"), lab.ns("mec1")
        lab.link(ctl, mec, "m1", "eth0", ["10.0.1.1/24"], ["10.0.1.2/24"])
        conf = tmp / "gobgp.toml"
        conf.write_text(gobgp_toml(65001, "10.0.1.2",
                                   [GobgpNeighbor("10.0.1.1", 65000, passive=True)],
                                   local_address="10.0.1.2"))

        def gobgpd() -> object:
            return mec.popen(["gobgpd", "-f", str(conf)], log=tmp / "gobgpd.log")

        proc = gobgpd()
        cfg = BgpConfig.model_validate({
            "local_as": 65000, "router_id": "10.0.1.1", "flush_ms": 10, "hold_time": HOLD_S,
            "peers": [{"address": "10.0.1.2", "peer_as": 65001, "site": "MEC-1",
                       "local_address": "10.0.1.1"}]})
        rt = Runtime(None, Settings(state=tmp / "state"))
        rt.bus.bind(asyncio.get_running_loop())
        rt.writer.put(Site(name="MEC-1", kind=SiteKind.MEC, region="lab"), "test", "seed")
        bgp = BgpComponent(cfg, wrap=["ip", "netns", "exec", ctl.name])
        eng = AlarmEngine(poll_s=0.2)
        await bgp.start(rt)
        await eng.start(rt)
        aid = alarm_id("bgp-session-down", "10.0.1.2")

        def alarm() -> Alarm | None:
            return rt.store.get(Alarm, aid)

        try:
            await _until(lambda: any(s.state == "up" for s in rt.sessions.snapshot()),
                         "BGP session up")
            assert alarm() is None
            # SIGKILL: no NOTIFICATION, no FIN from a clean shutdown — the hold timer or
            # the kernel's reset must find it
            proc.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
            took = await _until(lambda: (a := alarm()) is not None and a.active,
                                "bgp-session-down alarm", timeout=HOLD_S + 5)
            assert took <= HOLD_S, f"alarm after {took:.1f} s, hold time {HOLD_S} s"
            a = alarm()
            assert a is not None and a.severity is Severity.CRITICAL and "MEC-1" in a.text
            rt.alarms.acknowledge(aid, "noc-alice", "MEC-1 router rebooting")
            proc = gobgpd()
            await _until(lambda: (a := alarm()) is not None and not a.active,
                         "alarm cleared after the session returns", timeout=60)
            a = alarm()
            assert a is not None and a.raised_severity is Severity.CRITICAL and a.count == 1
            journal = rt.store.journal(JournalQuery(kind="alarm", key=aid))
            assert [e.actor for e in journal] == ["alarm:sessions", "api:noc-alice",
                                                  "alarm:sessions"]
            assert journal[1].value is not None
            assert journal[1].value["ack_note"] == "MEC-1 router rebooting"
        finally:
            await eng.stop()
            await bgp.stop()
            rt.store.close()
