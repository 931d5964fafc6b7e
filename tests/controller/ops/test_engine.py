"""Alarm store and engine (GBA-6.7, GBT-8.2): raise / clear / acknowledge / shelve,
level-triggered sources, thresholds, journal, NETCONF notification, /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.models import ComputeMetrics
from controller.netconf.server import notifications_for
from controller.ops.engine import AlarmEngine, Condition
from controller.ops.models import Alarm, Severity, alarm_id
from controller.runtime import Runtime
from controller.store.base import JournalQuery
from tests.conftest import example_runtime

OP, TEN, VIEW = "op-token-0123456789", "ten-token-0123456789", "view-token-0123456789"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with example_runtime(tmp_path, "gba.yaml", (OP, "ops", "operator", None),
                         (TEN, "lab", "tenant", "ai-lab"),
                         (VIEW, "dash", "viewer", None)) as runtime:
        yield runtime


def h(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def engine(rt: Runtime) -> AlarmEngine:
    eng = AlarmEngine()
    eng.rt = rt
    rt.alarm_sources["derived"] = eng._derived
    rt.alarm_sources["sessions"] = rt.sessions.conditions
    return eng


def overload(rt: Runtime, site: str, on: bool) -> None:
    rt.writer.put(ComputeMetrics(site=site, service="*", l0={"cpu_pct": 95 if on else 20},
                                 l2=2 if on else 8, overloaded=on), "test", "load")


def test_overload_raises_once_clears_and_reraises_with_count(rt: Runtime) -> None:
    eng = engine(rt)
    overload(rt, "GZ-DC", True)
    assert eng.run_pass() == 1
    assert eng.run_pass() == 0  # level-triggered: nothing new, nothing written
    a = rt.alarms.get(alarm_id("site-overloaded", "GZ-DC/*"))
    assert a.severity is Severity.MAJOR and a.count == 1 and a.source == "derived"
    assert "cpu_pct=95" in a.text
    overload(rt, "GZ-DC", False)
    assert eng.run_pass() == 1
    a = rt.alarms.get(a.id)
    assert a.severity is Severity.CLEARED and a.raised_severity is Severity.MAJOR
    assert a.cleared_at is not None
    rt.alarms.acknowledge(a.id, "ops", "seen")
    overload(rt, "GZ-DC", True)
    eng.run_pass()
    b = rt.alarms.get(a.id)
    assert b.active and b.count == 2 and b.first_seen == a.first_seen
    assert not b.acknowledged  # a new occurrence needs a new acknowledgement


def test_acknowledgement_and_shelving_are_journaled(rt: Runtime) -> None:
    a = rt.alarms.raise_alarm("x", "r1", Severity.MINOR, "t", source="test")
    assert a is not None
    rt.alarms.acknowledge(a.id, "ops", "working on it")
    rt.alarms.shelve(a.id, "ops", 600)
    entries = rt.store.journal(JournalQuery(kind="alarm", key=a.id))
    assert [(e.actor, e.reason) for e in entries] == [
        ("alarm:test", "raise x r1"), ("api:ops", f"acknowledge alarm {a.id}"),
        ("api:ops", f"shelve alarm {a.id} for 600 s")]
    assert entries[1].value is not None and entries[1].value["ack_note"] == "working on it"


def test_sessions_down_and_idle_past_grace_are_alarms(rt: Runtime) -> None:
    eng = engine(rt)
    rt.sessions.grace_s = 0.0
    rt.sessions.expect("bgp", "10.0.0.9", "MEC-1")
    rt.sessions.up("bgp", "10.0.0.2", "MEC-2")
    eng.run_pass()
    idle = rt.alarms.get(alarm_id("bgp-session-down", "10.0.0.9"))
    assert idle.severity is Severity.CRITICAL and "not established" in idle.text
    rt.sessions.down("bgp", "10.0.0.2", "hold timer expired", "MEC-2")
    eng.run_pass()
    down = rt.alarms.get(alarm_id("bgp-session-down", "10.0.0.2"))
    assert down.active and "hold timer expired" in down.text and "MEC-2" in down.text
    rt.sessions.up("bgp", "10.0.0.2")
    eng.run_pass()
    assert not rt.alarms.get(down.id).active


def test_a_source_that_fails_keeps_its_alarms(rt: Runtime) -> None:
    eng = engine(rt)
    state = {"fail": False}

    def src() -> list[Condition]:
        if state["fail"]:
            raise RuntimeError("boom")
        return [Condition("knot-publish-failed", "127.0.0.1:53", Severity.MAJOR, "refused")]

    rt.alarm_sources["knot"] = src
    eng.run_pass()
    state["fail"] = True
    eng.run_pass()
    assert rt.alarms.get(alarm_id("knot-publish-failed", "127.0.0.1:53")).active


def test_user_threshold_on_instances_gbt8(rt: Runtime) -> None:
    c = TestClient(create_app(rt))
    bad = c.post("/api/v1/alarm-thresholds", headers=h(OP),
                 json={"name": "t", "kind": "nosuch", "field": "x", "value": 1})
    assert bad.status_code == 422 and bad.json()["error"]["issues"][0]["path"] == "body.kind"
    nan = c.post("/api/v1/alarm-thresholds", headers=h(OP),
                 content=b'{"name": "t", "kind": "metrics", "field": "x", "value": NaN}')
    assert nan.status_code == 422
    r = c.post("/api/v1/alarm-thresholds", headers=h(OP),
               json={"name": "hot", "kind": "metrics", "field": "l0.cpu_pct", "op": ">=",
                     "value": 90, "severity": "critical"})
    assert r.status_code == 201, r.text
    eng = engine(rt)
    overload(rt, "SZ-DC", True)
    eng.run_pass()
    a = rt.alarms.get(alarm_id("threshold:hot", "SZ-DC/*"))
    assert a.severity is Severity.CRITICAL and "l0.cpu_pct = 95 >= 90" in a.text


def test_rest_alarms_ack_shelve_errors_and_tenant_scope(rt: Runtime) -> None:
    c = TestClient(create_app(rt))
    mine = rt.alarms.raise_alarm("instance-anomaly", "gpu-1", Severity.WARNING, "slow",
                                 source="test", tenant="ai-lab")
    other = rt.alarms.raise_alarm("site-overloaded", "GZ-DC/*", Severity.MAJOR, "hot",
                                  source="test")
    assert mine is not None and other is not None
    assert c.get("/api/v1/alarms").status_code == 401
    listed = c.get("/api/v1/alarms", headers=h(OP)).json()
    assert [i["id"] for i in listed["items"]] == [other.id, mine.id]  # worst first
    assert listed["summary"]["active"]["major"] == 1
    tenant = c.get("/api/v1/alarms", headers=h(TEN)).json()
    assert [i["id"] for i in tenant["items"]] == [mine.id]
    assert c.post(f"/api/v1/alarms/{other.id}/ack", headers=h(TEN)).status_code == 404
    assert c.post(f"/api/v1/alarms/{mine.id}/ack", headers=h(VIEW)).status_code == 403
    unknown = c.post("/api/v1/alarms/A000000000000/ack", headers=h(OP))
    assert unknown.status_code == 404
    assert "GET /api/v1/alarms" in unknown.json()["error"]["message"]
    ok = c.post(f"/api/v1/alarms/{mine.id}/ack", headers=h(TEN), json={"note": "mine"})
    assert ok.json()["acknowledged"] and ok.json()["acked_by"] == "lab"
    bad = c.post(f"/api/v1/alarms/{other.id}/shelve", headers=h(OP), json={"seconds": -5})
    assert bad.status_code == 422 and "body.seconds" in bad.text
    c.post(f"/api/v1/alarms/{other.id}/shelve", headers=h(OP), json={"seconds": 60})
    listed = c.get("/api/v1/alarms", headers=h(OP)).json()
    assert [i["id"] for i in listed["items"]] == [mine.id]
    assert listed["summary"]["shelved"] == 1
    metrics = c.get("/metrics").text
    assert 'cpn_alarms_active{severity="warning"} 1.0' in metrics
    assert "cpn_alarms_shelved 1.0" in metrics


def test_alarm_change_is_a_netconf_notification(rt: Runtime) -> None:
    seen: list[Any] = []
    rt.store.subscribe(lambda ch, actor, reason: seen.extend(ch), with_context=True)
    rt.alarms.raise_alarm("bgp-session-down", "10.0.0.2", Severity.CRITICAL, "down",
                          source="sessions")
    from controller.events import StateChanged

    bodies = notifications_for(StateChanged(changes=tuple(seen)))
    assert bodies and bodies[0].tag.endswith("alarm-changed")
    fields = {el.tag.split("}")[1]: el.text for el in bodies[0]}
    assert fields["severity"] == "critical" and fields["type"] == "bgp-session-down"
    assert fields["id"] == alarm_id("bgp-session-down", "10.0.0.2")


def test_alarm_rows_survive_a_reopen(tmp_path: Path) -> None:
    with example_runtime(tmp_path, "gba.yaml") as rt:
        rt.alarms.raise_alarm("x", "y", Severity.WARNING, "t", source="s")
    with example_runtime(tmp_path, "gba.yaml") as rt2:
        assert [a.type for a in rt2.store.list(Alarm)] == ["x"]


def test_intent_status_degraded_or_failed_is_an_alarm(rt: Runtime) -> None:
    from srv6.intents.models import IntentState, SrPolicyIntentStatus

    eng = engine(rt)
    st = SrPolicyIntentStatus(intent="video-gold", state=IntentState.DEGRADED,
                              reason="backup path lost", fix="repair link R1~R3")
    with rt.store.transaction("test", "status") as txn:
        txn.put(st)
    eng.run_pass()
    a = rt.alarms.get(alarm_id("sr-policy-intent-status", "video-gold"))
    assert a.severity is Severity.MAJOR and "backup path lost" in a.text
    assert "repair link R1~R3" in a.text
    with rt.store.transaction("test", "status") as txn:
        txn.put(st.model_copy(update={"state": IntentState.FAILED, "reason": "no path"}))
    eng.run_pass()
    assert rt.alarms.get(a.id).severity is Severity.CRITICAL
    with rt.store.transaction("test", "status") as txn:
        txn.put(st.model_copy(update={"state": IntentState.VERIFIED, "reason": ""}))
    eng.run_pass()
    assert not rt.alarms.get(a.id).active
    metrics = TestClient(create_app(rt)).get("/metrics").text
    assert ('cpn_object_state{key="video-gold",kind="sr-policy-intent",state="verified"} 1.0'
            in metrics)


def test_grafana_dashboard_uses_only_exported_families(rt: Runtime) -> None:
    """docs/grafana-dashboard.json is the contract of controller.ops.metrics: every
    family a panel queries is on /metrics of a controller with data."""
    import json
    import re

    from tests.conftest import ROOT

    overload(rt, "GZ-DC", True)
    rt.sessions.up("bgp", "10.0.0.2", "MEC-1")
    engine(rt).run_pass()
    exported = TestClient(create_app(rt)).get("/metrics").text
    dash = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    used = {m for p in dash["panels"] for t in p["targets"]
            for m in re.findall(r"\bcpn_[a-z0-9_]+", t["expr"])}
    assert len(used) >= 15
    missing = sorted(m for m in used if f"\n{m}" not in exported and f"# TYPE {m} " not in
                     exported)
    assert not missing, f"dashboard queries families /metrics lacks: {missing}"


def test_accelerator_instance_anomaly_by_user_threshold_gbt8(rt: Runtime) -> None:
    """GBT-8: an instance whose measured throughput falls below the user's bound."""
    from controller.models import ComputeInstance, InstanceSpec, InstanceTopology
    from controller.ops.models import AlarmThreshold, ThresholdOp

    eng = engine(rt)
    with rt.store.transaction("test", "seed") as txn:
        txn.put(AlarmThreshold(name="slow-gpu", kind="instance", field="spec.throughput",
                               op=ThresholdOp.LT, value=100, severity=Severity.MAJOR))
        txn.put(ComputeInstance(id="gpu0-i1", spec=InstanceSpec(
            compute_tflops=10, memory_gib=8, throughput=62.5),
            topology=InstanceTopology(card="gpu0", server="s1", cluster="GZ-DC")))
        txn.put(ComputeInstance(id="gpu0-i2", spec=InstanceSpec(
            compute_tflops=10, memory_gib=8, throughput=140),
            topology=InstanceTopology(card="gpu0", server="s1", cluster="GZ-DC")))
    eng.run_pass()
    hot = [a for a in rt.alarms.list() if a.type == "threshold:slow-gpu"]
    assert [(a.resource, a.severity) for a in hot] == [("gpu0-i1", Severity.MAJOR)]
    assert "spec.throughput = 62.5 < 100" in hot[0].text


def test_change_feed_long_poll_reports_kinds_not_values(rt: Runtime) -> None:
    c = TestClient(create_app(rt))
    seq = c.get("/api/v1/changes", headers=h(VIEW), params={"wait_s": 0}).json()["seq"]
    quiet = c.get("/api/v1/changes", headers=h(VIEW), params={"since": seq, "wait_s": 0.2})
    assert quiet.json() == {"seq": seq, "kinds": []}
    overload(rt, "GZ-DC", True)
    got = c.get("/api/v1/changes", headers=h(TEN), params={"since": seq, "wait_s": 5}).json()
    assert got["seq"] > seq and got["kinds"] == ["metrics"]
    assert c.get("/api/v1/changes").status_code == 401
