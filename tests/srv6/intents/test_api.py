"""Intent status over REST and the reconciler as a controller component: an intent
created over REST is programmed by the running component and its status shows on
``GET /api/v1/srv6/intents/{key}``; never a 500 for an infeasible intent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.auth import digest
from controller.config import load_config
from controller.models import Link, LinkState
from controller.runtime import Runtime, Settings
from srv6.intents.models import SrPolicyIntentStatus
from srv6.intents.reconciler import IntentReconciler
from srv6.models import SrPolicyIntent

OP = {"Authorization": "Bearer op-token-0123456789"}

CONFIG = """
zone: cpn.example
routers:
  - {name: R1, locator: "fc00:0:1::/48", links: [{to: R2}, {to: R4}]}
  - {name: R2, locator: "fc00:0:2::/48", links: [{to: R3}]}
  - {name: R3, locator: "fc00:0:3::/48", links: [{to: R4}]}
  - {name: R4, locator: "fc00:0:4::/48"}
intents:
  readback_s: 0.2
  nodes:
    R1: {programmer: memory, devs: {R1~R2: r2, R1~R4: r4}}
    R2: {programmer: memory, devs: {R1~R2: r1, R2~R3: r3}}
    R3: {programmer: memory, devs: {R2~R3: r2, R3~R4: r4}}
    R4: {programmer: memory, devs: {R1~R4: r1, R3~R4: r3}}
  endpoints:
    R3: {dev: ehost, nh4: 10.3.0.2, prefixes: {10.3.0.0/24: 100}}
"""


def runtime(tmp: Path) -> Runtime:
    cfg = tmp / "cpn.yaml"
    cfg.write_text(CONFIG)
    rt = Runtime(load_config(cfg), Settings(state=tmp))
    rt.apply_config()
    rt.store.add_token(digest("op-token-0123456789"), "ops", "operator", None)
    return rt


def test_intent_created_over_rest_is_programmed_and_its_status_shown(tmp_path: Path) -> None:
    from controller import plugins

    rt = runtime(tmp_path)
    comps = [c for m in plugins.modules() if hasattr(m, "components")
             for c in m.components(rt) if isinstance(c, IntentReconciler)]
    assert len(comps) == 1
    rec = comps[0]
    client = TestClient(create_app(rt))
    try:
        async def run() -> None:
            await rt.start([rec])
            body = {"headend": "R1", "endpoint": "R3", "color": 100}
            r = await asyncio.to_thread(client.post, "/api/v1/srv6/intents", headers=OP,
                                        json=body)
            assert r.status_code == 201, r.text
            bad = {"headend": "R1", "endpoint": "R3", "color": 7}  # R3 has no colour 7
            r = await asyncio.to_thread(client.post, "/api/v1/srv6/intents", headers=OP,
                                        json=bad)
            assert r.status_code == 201, r.text
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if rt.store.get(SrPolicyIntentStatus, "R1~7~R3") is not None and \
                        rt.store.get(SrPolicyIntentStatus, "R1~100~R3") is not None:
                    break
                await asyncio.sleep(0.05)
            # R1 sees carrier loss toward R2: the link goes down in the store, re-path
            rec.link_event("R1", "r2", False)
            link = rt.store.get(Link, "R1~R2")
            assert link is not None and link.state is LinkState.DOWN
            while time.monotonic() < deadline:
                st = rt.store.get(SrPolicyIntentStatus, "R1~100~R3")
                if st is not None and st.active is not None and st.active.hops[1] == "R4":
                    break
                await asyncio.sleep(0.05)
            rec.link_event("R1", "r2", True)
            while time.monotonic() < deadline:
                st = rt.store.get(SrPolicyIntentStatus, "R1~100~R3")
                if st is not None and st.active is not None and st.active.hops[1] == "R2":
                    break
                await asyncio.sleep(0.05)
            await rt.stop()
        asyncio.run(run())
        got = client.get("/api/v1/srv6/intents/R1~100~R3", headers=OP).json()
        st = got["status"]
        assert st["state"] == "programmed", st
        assert st["active"]["hops"] == ["R1", "R2", "R3"]  # back after the link came up
        moves = [e for e in client.get("/api/v1/events?kind=sr-policy-intent-status&limit=50",
                                       headers=OP).json()["items"]
                 if (e.get("value") or {}).get("active", {}) and
                 e["value"]["active"]["hops"][1] == "R4"]
        assert moves, "the intent never moved to R1 R4 R3 while R1~R2 was down"
        assert st["backup"]["hops"] == ["R1", "R4", "R3"]
        assert rec.programmers["R1"].read_actual().routes  # really in the (memory) device
        failed = client.get("/api/v1/srv6/intent-status/R1~7~R3", headers=OP).json()
        assert failed["state"] == "failed" and failed["constraint"] == "color"
        # the GET body can be PUT back: status is read-only and dropped
        r = client.put("/api/v1/srv6/intents/R1~100~R3", headers=OP, json=got)
        assert r.status_code == 200, r.text
        listed = client.get("/api/v1/srv6/intents", headers=OP).json()["items"]
        assert {i["status"]["state"] for i in listed} == {"programmed", "failed"}
        metrics = client.get("/metrics").text
        assert "cpn_srv6_intent_repairs_total" in metrics
    finally:
        rt.store.close()


def test_reconcile_now_without_a_reconciler_is_503_naming_the_fix(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    try:
        client = TestClient(create_app(rt))
        r = client.post("/api/v1/srv6/intents-reconcile", headers=OP)
        assert r.status_code == 503 and "intents:" in r.json()["error"]["message"]
        r = client.get("/api/v1/srv6/intents", headers=OP)
        assert r.status_code == 200
    finally:
        rt.store.close()


def test_router_that_cannot_be_opened_degrades_its_intents_but_the_controller_runs(
        tmp_path: Path) -> None:
    cfg = tmp_path / "cpn.yaml"
    cfg.write_text(CONFIG.replace("R2: {programmer: memory,",
                                  "R2: {programmer: netlink, netns: cpn-no-such-ns,")
                   .replace("readback_s: 0.2", "readback_s: 0.2\n  protect: false"))
    rt = Runtime(load_config(cfg), Settings(state=tmp_path / "state"))
    rt.apply_config()
    sec = rt.cfg.sections["intents"] if rt.cfg else None
    rec = IntentReconciler(sec)  # type: ignore[arg-type]

    async def run() -> None:
        await rt.start([rec])  # does not fail: R2 is retried every pass
        try:
            rt.writer.put(SrPolicyIntent(headend="R1", endpoint="R3", color=100), "t", "i",
                          create_only=True)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                st = rt.store.get(SrPolicyIntentStatus, "R1~100~R3")
                if st is not None and st.state.value == "degraded":
                    break
                await asyncio.sleep(0.05)
        finally:
            await rt.stop()
    try:
        asyncio.run(run())
        st = rt.store.get(SrPolicyIntentStatus, "R1~100~R3")
        assert st is not None and st.state.value == "degraded" and st.device == "R2"
        assert "cpn-no-such-ns" in st.reason and "check R2" in st.fix
    finally:
        rt.store.close()
