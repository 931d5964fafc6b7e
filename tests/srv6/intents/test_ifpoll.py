"""IP interface state over NETCONF drives re-planning: a router NE (yuma123 netconfd with
ietf-interfaces in a namespace, real kernel) reports oper-status down for the interface
of a link; the reconciler writes the link down and moves the intent off it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from controller.config import load_config
from controller.models import Link, LinkState
from controller.runtime import Runtime, Settings
from labs.netns import Lab
from labs.optical.ne import IF_ARGS, IF_ENV, IF_MODULES, LabNe, make_keys
from srv6.intents.models import SrPolicyIntentStatus
from srv6.intents.reconciler import IntentReconciler
from srv6.models import SrPolicyIntent
from tests.conftest import have, needs_netns

CONFIG = """
zone: cpn.example
routers:
  - {{name: R1, locator: "fc00:0:1::/48", links: [{{to: R2}}, {{to: R4}}]}}
  - {{name: R2, locator: "fc00:0:2::/48", links: [{{to: R3}}]}}
  - {{name: R3, locator: "fc00:0:3::/48", links: [{{to: R4}}]}}
  - {{name: R4, locator: "fc00:0:4::/48"}}
intents:
  readback_s: 5
  watch_links: false
  ifstate_s: 0.2
  ifstate: [{{node: R1, host: 127.0.0.1, port: {port}, user: root, key: "{key}"}}]
  nodes:
    R1: {{programmer: memory, devs: {{R1~R2: eth0, R1~R4: eth9}}}}
    R2: {{programmer: memory, devs: {{R1~R2: r1, R2~R3: r3}}}}
    R3: {{programmer: memory, devs: {{R2~R3: r2, R3~R4: r4}}}}
    R4: {{programmer: memory, devs: {{R1~R4: r1, R3~R4: r3}}}}
  endpoints:
    R3: {{dev: ehost, nh4: 10.3.0.2, prefixes: {{10.3.0.0/24: 100}}}}
"""


@needs_netns
@pytest.mark.lab
@pytest.mark.skipif(not have("netconfd"), reason="needs netconfd")
def test_oper_status_down_over_netconf_repaths_the_intent(tmp_path: Path) -> None:
    with Lab("ifp") as lab:
        r1, r2 = lab.ns("r1"), lab.ns("r2")
        lab.link(r1, r2, "eth0", "eth0", ["10.9.0.1/24"], ["10.9.0.2/24"])
        key, host = make_keys(tmp_path / "keys")
        ne = LabNe("r1", tmp_path / "ne", key, host, modules=IF_MODULES, args=IF_ARGS,
                   netns=r1.name, env=IF_ENV)
        ne.start()
        try:
            ne.wait_ready()
            cfg = tmp_path / "cpn.yaml"
            cfg.write_text(CONFIG.format(port=ne.port, key=key))
            rt = Runtime(load_config(cfg), Settings(state=tmp_path / "state"))
            rt.apply_config()
            sec = rt.cfg.sections["intents"] if rt.cfg else None
            rec = IntentReconciler(sec)  # type: ignore[arg-type]

            def hops() -> list[str]:
                st = rt.store.get(SrPolicyIntentStatus, "R1~100~R3")
                return st.active.hops if st is not None and st.active else []

            async def run() -> None:
                await rt.start([rec])
                try:
                    rt.writer.put(SrPolicyIntent(headend="R1", endpoint="R3", color=100),
                                  "test", "intent", create_only=True)
                    await until(lambda: hops() == ["R1", "R2", "R3"])
                    r2.run("ip link set eth0 down")  # the far end: R1's eth0 loses carrier
                    await until(lambda: hops() == ["R1", "R4", "R3"])
                    link = rt.store.get(Link, "R1~R2")
                    assert link is not None and link.state is LinkState.DOWN
                    r2.run("ip link set eth0 up")
                    await until(lambda: hops() == ["R1", "R2", "R3"])
                finally:
                    await rt.stop()
            try:
                asyncio.run(run())
            finally:
                rt.store.close()
        finally:
            ne.stop()


async def until(pred: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")
