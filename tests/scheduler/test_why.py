"""``SchedulingDecision`` entities and the "why not here" answer (issue 14, WP-3.3.4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.models import Job, JobSpec, Requirements
from controller.runtime import Runtime
from scheduler.component import SchedulerComponent
from scheduler.decisions import SchedulingDecision, classify, why_not
from scheduler.why import render
from srv6.models import Constraints, SrPolicyIntent
from tests.conftest import example_runtime

OP = {"Authorization": "Bearer op-token-0123456789"}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with example_runtime(tmp_path, "gba.yaml",
                         ("op-token-0123456789", "ops", "operator", None)) as runtime:
        yield runtime


def test_job_decision_is_stored_with_per_site_verdicts(rt: Runtime) -> None:
    big = Job(id="big", tenant="ai-lab", owner="bob",
              spec=JobSpec(name="big", requirements=Requirements(gpu=12, cpu_cores=8)))
    rt.writer.put_many([big], "test", "submit")
    SchedulerComponent().run_pass(rt.store)
    dec = rt.store.get(SchedulingDecision, "job:big")
    assert dec is not None and dec.site == "HUB-SZ"  # the only site with 12 free GPUs
    by_site = {c.site: c for c in dec.candidates}
    assert by_site["HUB-SZ"].constraint == "chosen"
    # every other site was refused for capacity, with the filter's words and the figures
    for site in ("HUB-GZ", "DC-DG", "MEC-GZ1"):
        assert by_site[site].constraint == "capacity", by_site[site]
        assert "gpu" in by_site[site].reason
        assert by_site[site].figures["free_gpu"] < 12
    assert dec.policy and dec.requests["gpu"] == 12
    c = TestClient(create_app(rt))
    r = c.get("/api/v1/why/job/big", headers=OP)
    assert r.status_code == 200, r.text
    ans = r.json()
    assert ans["site"] == "HUB-SZ" and {n["site"] for n in ans["not_chosen"]} >= {
        "HUB-GZ", "DC-DG"}
    assert all(n["constraint"] == "capacity" for n in ans["not_chosen"]
               if n["site"] in ("HUB-GZ", "DC-DG"))
    assert any("not HUB-GZ" in line and "capacity" in line for line in render(ans))
    assert c.get("/api/v1/why/job/nope", headers=OP).status_code == 404
    assert c.get("/api/v1/scheduler/decisions/job:big", headers=OP).json()["site"] == "HUB-SZ"
    # the job is deleted: its decision goes with it at the next pass
    with rt.store.transaction("test", "delete") as txn:
        txn.delete(Job, "big")
    SchedulerComponent().run_pass(rt.store)
    assert rt.store.get(SchedulingDecision, "job:big") is None


def test_flow_decision_names_delay_bound_and_capacity(rt: Runtime) -> None:
    c = TestClient(create_app(rt))
    flows = [{"id": "cam", "origin": "MEC-GZ1", "cpu": 40, "bandwidth_mbps": 50,
              "max_delay_ms": 2.0}]
    r = c.post("/api/v1/scheduler/placement", headers=OP, json={"flows": flows})
    assert r.status_code == 200, r.text
    site = r.json()["assign"]["cam"]["site"]
    ans = c.get("/api/v1/why/flow/cam", headers=OP).json()
    assert ans["site"] == site and ans["bounds"] == {"bandwidth_mbps": 50, "max_delay_ms": 2}
    why = {n["site"]: n for n in ans["not_chosen"]}
    assert why["MEC-GZ1"]["constraint"] == "capacity"  # 32 edge cores < 40
    assert "cpu: needs 40" in why["MEC-GZ1"]["why"]
    assert why["HUB-HK"]["constraint"] == "delay-bound"  # 0.6 + 1.8 ms > 2 ms
    assert why["HUB-HK"]["figures"]["delay_ms"] > 2
    # re-planning the same input leaves the stored decision alone (no journal churn)
    seq = rt.store.last_seq()
    c.post("/api/v1/scheduler/placement", headers=OP, json={"flows": flows})
    assert rt.store.last_seq() == seq
    # a flow left out of the next request: its decision goes (and its intent with it)
    other = [{**flows[0], "id": "cam2"}]
    assert c.post("/api/v1/scheduler/placement", headers=OP,
                  json={"flows": other}).status_code == 200
    assert rt.store.get(SchedulingDecision, "flow:cam") is None
    assert rt.store.get(SchedulingDecision, "flow:cam2") is not None


def test_intent_why_not_names_srlg_and_delay(rt: Runtime) -> None:
    it = SrPolicyIntent(headend="HUB-GZ", endpoint="HUB-HK", color=100,
                        constraints=Constraints(max_delay_ms=3.0,
                                                exclude_srlgs=["pearl-river-east"]))
    rt.writer.put(it, actor="test", reason="intent")
    ans = TestClient(create_app(rt)).get(f"/api/v1/why/intent/{it.key}", headers=OP).json()
    verdicts = {tuple(p["links"]): p for p in ans["paths"]}
    assert any(p["verdict"] == "srlg" and "pearl-river-east" in p["why"]
               for p in verdicts.values())
    assert any(p["verdict"] == "delay-bound" and "> max_delay_ms 3" in p["why"]
               for p in verdicts.values())
    assert any(p["verdict"] == "cost" for p in verdicts.values())


def test_classify_constraint_families() -> None:
    assert classify("network-aware", "path delay 9 ms > max_latency_ms 5") == "delay-bound"
    assert classify("node-resources-fit", "Insufficient gpu") == "capacity"
    assert classify("network-aware", "no path from X") == "connectivity"
    assert classify("manual", "pinned elsewhere") == "compute-filter"
    assert classify("x", "shares SRLG s1") == "srlg"
    dec = SchedulingDecision(subject_kind="job", subject="j", code="unschedulable",
                             reasons=["0/3 nodes available"])
    assert "not placed" in why_not(dec)["summary"]


def test_render_shows_the_failed_network_part_with_its_fix() -> None:
    from scheduler.decisions import NetworkPart, SchedulingDecision, why_not

    dec = SchedulingDecision(subject_kind="flow", subject="cam", code="success",
                             site="HUB-SZ", network=NetworkPart(
                                 state="failed", constraint="max_delay_ms",
                                 reason="no path within 0.5 ms", fix="raise max_delay_ms"))
    lines = render(why_not(dec))
    assert "  network part failed (max_delay_ms): no path within 0.5 ms; fix: raise " \
        "max_delay_ms" in lines
