"""A placement's network part becomes an SR policy intent, released after (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.models import Job, JobSpec, JobState, Link, Requirements
from controller.runtime import Runtime
from dns_compute.ranking import placement_of
from scheduler.component import SchedulerComponent
from scheduler.decisions import NetworkPart, SchedulingDecision, why_not
from scheduler.placement_intents import PREFIX, PlacementIntents, desired, serving
from srv6.intents.models import (
    EndpointBinding,
    IntentsSection,
    IntentState,
    NodeBinding,
    SrPolicyIntentStatus,
)
from srv6.models import SrPolicyIntent
from tests.conftest import example_runtime


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with example_runtime(tmp_path, "gba.yaml") as runtime:
        yield runtime


def section() -> IntentsSection:
    ep = EndpointBinding(dev="x", nh4="10.0.0.2", prefixes={"10.9.0.0/24": 300})
    return IntentsSection(nodes={n: NodeBinding(programmer="memory") for n in (
        "MEC-GZ1", "HUB-GZ", "HUB-SZ", "HUB-HK", "DC-FS", "DC-DG")},
        endpoints={n: ep for n in ("HUB-GZ", "HUB-SZ", "HUB-HK", "DC-FS", "DC-DG")})


def test_job_with_network_bound_gets_intent_and_releases_it(rt: Runtime) -> None:
    job = Job(id="vid", tenant="ai-lab", owner="bob",
              spec=JobSpec(name="vid", params={"origin": "MEC-GZ1"},
                           requirements=Requirements(gpu=2, cpu_cores=40,
                                                     max_latency_ms=5, bandwidth_mbps=200)))
    plain = Job(id="batch", tenant="ai-lab", owner="bob",
                spec=JobSpec(name="batch", requirements=Requirements(cpu_cores=2)))
    rt.writer.put_many([job, plain], "test", "submit")
    SchedulerComponent().run_pass(rt.store)
    placed = rt.store.get(Job, "vid")
    assert placed is not None and placed.state is JobState.RUNNING and placed.site
    comp = PlacementIntents(section())
    assert comp.sync(rt.store)["put"] == 1
    [it] = [i for i in rt.store.list(SrPolicyIntent) if i.name.startswith("place:")]
    assert it.name == "place:job:vid" and it.headend == "MEC-GZ1"
    assert it.endpoint == placed.site and it.color == 300
    assert it.constraints.max_delay_ms == 5 and it.constraints.min_bandwidth_mbps == 200
    dec = rt.store.get(SchedulingDecision, "job:vid")
    assert dec is not None and dec.intent == it.key
    assert comp.sync(rt.store) == {"put": 0, "released": 0, "problems": 0}  # idempotent
    # the job ends: the intent is released, the decision no longer points at it
    rt.writer.put(placed.model_copy(update={"state": JobState.FINISHED}), actor="test",
                  reason="done")
    assert comp.sync(rt.store)["released"] == 1
    assert not [i for i in rt.store.list(SrPolicyIntent) if i.name.startswith("place:")]
    dec = rt.store.get(SchedulingDecision, "job:vid")
    assert dec is not None and dec.intent is None


def test_unprogrammable_origin_is_named_not_half_made() -> None:
    dec = SchedulingDecision(subject_kind="flow", subject="cam", code="success",
                             site="HUB-SZ", bounds={"max_delay_ms": 4.0},
                             inputs={"origin": "CAMPUS"})
    want, problems = desired([dec], set(), ["HUB-GZ"], ["HUB-SZ"], [], 300)
    assert want == {} and "origin CAMPUS" in problems["flow:cam"]
    assert "intents.nodes" in problems["flow:cam"]
    # a site behind a router: the linked endpoint serves it
    links = [Link(a="R9", b="SITE-X"), Link(a="R1", b="R9")]
    assert serving("SITE-X", ["R9", "R1"], links) == "R9"
    assert serving("SITE-X", ["R1"], links) is None
    # a site whose own router is an endpoint (Router.site): that router
    from controller.models import Router
    assert serving("SITE-X", ["R1", "GW"], links, [Router(name="GW", site="SITE-X")]) == "GW"
    dec2 = dec.model_copy(update={"site": "SITE-X", "inputs": {"origin": "R1"}})
    want, problems = desired([dec2], set(), ["R1"], ["R1"], links, 300)
    assert not want and "no intent endpoint serves site SITE-X" in problems["flow:cam"]
    # no network requirement: no intent
    assert desired([dec.model_copy(update={"bounds": {}})], set(), ["CAMPUS"],
                   ["HUB-SZ"], [], 300) == ({}, {})


def test_flow_with_service_then_released_over_rest(tmp_path: Path) -> None:
    """A flow placed through REST carries its service; DELETE ends it: decision gone,
    intent released at the next pass; an unknown flow is a 404 naming it."""
    from fastapi.testclient import TestClient

    from controller.api.app import create_app

    op = {"Authorization": "Bearer op-token-0123456789"}
    with example_runtime(tmp_path, "gba.yaml",
                         ("op-token-0123456789", "ops", "operator", None)) as rt:
        c = TestClient(create_app(rt))
        flows = [{"id": "cam-1", "origin": "MEC-GZ1", "service": "video", "cpu": 4,
                  "bandwidth_mbps": 50, "max_delay_ms": 5},
                 {"id": "cam-2", "origin": "MEC-GZ1", "cpu": 2}]
        r = c.post("/api/v1/scheduler/placement", headers=op, json={"flows": flows})
        assert r.status_code == 200, r.text
        dec = rt.store.get(SchedulingDecision, "flow:cam-1")
        assert dec is not None and dec.service == "video" and dec.site
        comp = PlacementIntents(section())
        assert comp.sync(rt.store)["put"] == 1
        dec = rt.store.get(SchedulingDecision, "flow:cam-1")
        assert dec is not None and dec.intent and dec.network is not None
        assert dec.network.state == "pending"  # the reconciler has not written a status
        # re-posting the same flows keeps the decision's intent and network part
        c.post("/api/v1/scheduler/placement", headers=op, json={"flows": flows})
        again = rt.store.get(SchedulingDecision, "flow:cam-1")
        assert again is not None and again.intent == dec.intent
        assert again.network == dec.network
        r = c.delete("/api/v1/scheduler/placement/cam-1", headers=op)
        assert r.status_code == 200, r.text
        assert r.json()["released"] == "cam-1" and r.json()["flows"] == 1
        assert rt.store.get(SchedulingDecision, "flow:cam-1") is None
        assert rt.store.get(SchedulingDecision, "flow:cam-2") is not None
        assert comp.sync(rt.store)["released"] == 1
        assert not [i for i in rt.store.list(SrPolicyIntent) if i.name.startswith(PREFIX)]
        gone = c.delete("/api/v1/scheduler/placement/cam-1", headers=op)
        assert gone.status_code == 404 and "cam-1" in gone.text
        assert c.delete("/api/v1/scheduler/placement/cam-2", headers=op).json()["flows"] == 0
        assert rt.store.get(SchedulingDecision, "flow:cam-2") is None


def test_network_part_mirrors_intent_status_and_names_failure(rt: Runtime) -> None:
    """Bad input: a placement whose network part is infeasible → the decision's network
    part is failed naming the constraint; without an endpoint, failed naming the fix."""
    dec = SchedulingDecision(subject_kind="flow", subject="cam", code="success",
                             site="HUB-SZ", service="video",
                             bounds={"max_delay_ms": 0.01, "bandwidth_mbps": 10},
                             inputs={"origin": "MEC-GZ1"})
    rt.writer.put(dec, actor="test", reason="placed")
    comp = PlacementIntents(section())
    comp.sync(rt.store)
    [it] = [i for i in rt.store.list(SrPolicyIntent) if i.name == "place:flow:cam"]
    st = SrPolicyIntentStatus(intent=it.key, state=IntentState.FAILED,
                              constraint="max_delay_ms", reason="no path within 0.01 ms",
                              fix="raise max_delay_ms")
    rt.writer.put(st, actor="srv6-intents", reason="status")
    comp.sync(rt.store)
    got = rt.store.get(SchedulingDecision, "flow:cam")
    assert got is not None and got.network == NetworkPart(
        state="failed", constraint="max_delay_ms", reason="no path within 0.01 ms",
        fix="raise max_delay_ms")
    assert placement_of(got) is None  # DNS does not follow a failed network part
    assert why_not(got)["network_part"]["constraint"] == "max_delay_ms"
    # no endpoint serves the site: failed naming the fix, and no intent at all
    moved = got.model_copy(update={"site": "SITE-X"})
    rt.writer.put(moved, actor="test", reason="moved")
    comp.sync(rt.store)
    got = rt.store.get(SchedulingDecision, "flow:cam")
    assert got is not None and got.intent is None and got.network is not None
    assert got.network.state == "failed" and got.network.constraint == "endpoint"
    assert "intents.endpoints" in got.network.fix
    assert not [i for i in rt.store.list(SrPolicyIntent) if i.name.startswith(PREFIX)]


def test_infeasible_network_part_fails_through_the_real_reconciler(store: Any) -> None:
    """Bad input end to end over the real reconciler (memory programmers): a placement
    whose delay bound no path meets → the reconciler fails its intent naming
    ``max_delay_ms`` and programs nothing; the decision's network part says so and DNS
    does not follow it. A feasible bound → programmed, mirrored, followed."""
    from tests.srv6.intents.test_reconciler import Net
    from tests.srv6.intents.test_reconciler import section as ring_section

    net = Net(store)
    sec = ring_section().model_copy(update={"placement_color": 100})
    dec = SchedulingDecision(subject_kind="flow", subject="cam", code="success",
                             site="R3", service="video",
                             bounds={"max_delay_ms": 0.5, "bandwidth_mbps": 10},
                             inputs={"origin": "R1"})
    net.put(dec)
    comp = PlacementIntents(sec)
    assert comp.sync(store)["put"] == 1
    net.rec.reconcile_once(store)
    comp.sync(store)
    got = store.get(SchedulingDecision, "flow:cam")
    assert got is not None and got.intent == "R1~100~R3" and got.network is not None
    assert got.network.state == "failed" and got.network.constraint == "max_delay_ms"
    assert got.network.fix
    assert all(len(net.kernel(n)) == 0 for n in net.progs)  # nothing half-applied
    assert placement_of(got) is None
    net.put(got.model_copy(update={"bounds": {"max_delay_ms": 5.0, "bandwidth_mbps": 10}}))
    comp.sync(store)
    net.rec.reconcile_once(store)
    comp.sync(store)
    got = store.get(SchedulingDecision, "flow:cam")
    assert got is not None and got.network is not None
    assert got.network.state == "programmed", got.network
    assert [r.dst for r in net.kernel("R1")
            if getattr(r, "dst", None) and not getattr(r, "backup", False)] == ["10.3.0.0/24"]
    assert placement_of(got) is not None
