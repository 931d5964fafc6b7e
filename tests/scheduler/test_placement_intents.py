"""A placement's network part becomes an SR policy intent, released after (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.models import Job, JobSpec, JobState, Link, Requirements
from controller.runtime import Runtime
from scheduler.component import SchedulerComponent
from scheduler.decisions import SchedulingDecision
from scheduler.placement_intents import PlacementIntents, desired, serving
from srv6.intents.models import EndpointBinding, IntentsSection, NodeBinding
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
    dec2 = dec.model_copy(update={"site": "SITE-X", "inputs": {"origin": "R1"}})
    want, problems = desired([dec2], set(), ["R1"], ["R1"], links, 300)
    assert not want and "no intent endpoint serves site SITE-X" in problems["flow:cam"]
    # no network requirement: no intent
    assert desired([dec.model_copy(update={"bounds": {}})], set(), ["CAMPUS"],
                   ["HUB-SZ"], [], 300) == ({}, {})
