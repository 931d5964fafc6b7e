from __future__ import annotations

import pydantic
import pytest

from controller.models import (
    ComputeInstance,
    ComputeResource,
    InterconnectKind,
    Job,
    JobSpec,
    JobState,
    Link,
    Service,
    SiteKind,
    interconnect_preference,
)


def res(**kw: object) -> ComputeResource:
    base: dict[str, object] = {"site": "S", "name": "cpu", "description": "cores",
                               "scope": ["n1"]}
    base.update(kw)
    return ComputeResource.model_validate(base)


def test_static_resource_needs_value() -> None:
    with pytest.raises(pydantic.ValidationError, match="static resource .* needs a value"):
        res()
    assert res(value=8).value == 8


def test_dynamic_resource_needs_command_and_interval() -> None:
    with pytest.raises(pydantic.ValidationError, match="needs acquisition_command"):
        res(dynamic=True, interval_s=5)
    with pytest.raises(pydantic.ValidationError, match="needs interval_s"):
        res(dynamic=True, acquisition_command="cat /x")
    ok = res(dynamic=True, acquisition_command="cat /x", interval_s=5)
    assert ok.value is None


def test_exclusive_resource_cannot_be_scoped_site_wide() -> None:
    with pytest.raises(pydantic.ValidationError, match="exclusive resource"):
        res(value=1, scope=["*"])
    assert res(value=1, scope=["*"], shareable=True).shareable


def test_resource_needs_description_and_scope_and_rejects_unknown_keys() -> None:
    with pytest.raises(pydantic.ValidationError):
        res(value=1, description="")
    with pytest.raises(pydantic.ValidationError):
        res(value=1, scope=[])
    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        res(value=1, colour="red")


def test_extended_attributes_are_free_form() -> None:
    r = res(value=1, extended={"topology": {"numa": [0, 1]}, "alarms": ["hot"]})
    assert r.extended["alarms"] == ["hot"]


def test_link_rules() -> None:
    with pytest.raises(pydantic.ValidationError, match="itself"):
        Link(a="A", b="A")
    with pytest.raises(pydantic.ValidationError, match="exceeds capacity"):
        Link(a="A", b="B", capacity_mbps=100, available_mbps=200)
    with pytest.raises(pydantic.ValidationError):
        Link(a="A", b="B", loss_pct=101)
    assert Link(a="A", b="B").key == "A~B"
    assert Link(a="A", b="B", id="x").key == "x"


def test_interconnect_preference_gba_5_2() -> None:
    assert interconnect_preference(SiteKind.HUB)[0] is InterconnectKind.OTN
    assert interconnect_preference(SiteKind.MEC)[0] is InterconnectKind.IP_PRIVATE
    assert interconnect_preference(SiteKind.COMPUTE_CENTRE)[-1] is InterconnectKind.INTERNET


def test_instance_states_gbt_6_2_7() -> None:
    spec = {"compute_tflops": 100, "memory_gib": 16}
    topo = {"card": "gpu0", "server": "s1", "cluster": "c1"}
    with pytest.raises(pydantic.ValidationError, match="in-use instance must name the task"):
        ComputeInstance.model_validate({"id": "i1", "spec": spec, "topology": topo,
                                        "state": "in-use"})
    inst = ComputeInstance.model_validate({"id": "i1", "spec": spec, "topology": topo})
    assert inst.state.value == "available"


def test_service_needs_anycast_and_unique_instances() -> None:
    with pytest.raises(pydantic.ValidationError):
        Service(name="v", anycast=[])
    with pytest.raises(pydantic.ValidationError, match="listed twice"):
        Service.model_validate({"name": "v", "anycast": ["198.51.100.1"], "instances": [
            {"site": "A", "address": "10.0.0.1"}, {"site": "A", "address": "10.0.0.1"}]})


def test_job_state_machine() -> None:
    job = Job(id="j1", tenant="t", owner="u", spec=JobSpec(name="x"))
    assert job.can_move_to(JobState.QUEUED)
    assert not job.can_move_to(JobState.FINISHED)
    done = job.model_copy(update={"state": JobState.FINISHED})
    assert done.terminal and not done.can_move_to(JobState.RUNNING)
