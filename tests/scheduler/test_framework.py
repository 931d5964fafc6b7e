"""Framework: statuses, score range checks, registry, all-or-nothing replicas."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.framework import Code, CycleState, Framework, Profile, Registry, Status
from scheduler.models import NodeInfo, Task
from scheduler.plugins import default_registry
from scheduler.profiles import ProfileConfig, Profiles, SchedulerConfig, build_profile
from tests.scheduler.helpers import node, snap


def default_fw() -> Framework:
    return Profiles().for_task("t", "default")


def test_places_on_least_loaded() -> None:
    a, b = node("a"), node("b")
    a.used = {"cpu": 12.0}
    s = snap([a, b])
    d = default_fw().schedule(Task("j1", requests={"cpu": 2}), s)
    assert d.ok and d.nodes == ("b/n0",)
    assert b.used["cpu"] == 2.0 and "j1" in b.tasks


def test_never_fits_is_unresolvable_with_reason() -> None:
    s = snap([node("a"), node("b")])
    d = default_fw().schedule(Task("big", requests={"cpu": 64}), s)
    assert d.code == Code.UNRESOLVABLE.value
    assert any("capacity cpu" in r for r in d.reasons)
    assert d.reasons[0] == "0/2 nodes available"


def test_full_now_is_unschedulable() -> None:
    a = node("a")
    a.used = {"cpu": 15.0}
    d = default_fw().schedule(Task("j", requests={"cpu": 4}), snap([a]))
    assert d.code == Code.UNSCHEDULABLE.value
    assert any("insufficient cpu" in r for r in d.reasons)


def test_replicas_all_or_nothing() -> None:
    a, b = node("a"), node("b")
    s = snap([a, b])
    d = default_fw().schedule(Task("g", requests={"cpu": 10}, replicas=3), s)
    assert not d.ok
    assert a.used.get("cpu", 0) == 0 and b.used.get("cpu", 0) == 0
    assert not a.tasks and not b.tasks
    # the large gang got a node reserved (WP-3.3.3 reservation); a fresh cluster fits 2
    assert [t for t, _ in s.reservations.values()] == ["g"]
    d2 = default_fw().schedule(Task("g2", requests={"cpu": 10}, replicas=2), snap([a, b]))
    assert d2.ok and sorted(d2.nodes) == ["a/n0", "b/n0"]


class BadScore:
    name = "bad-score"

    def __init__(self, args: dict[str, Any]) -> None:
        pass

    def score(self, state: CycleState, task: Task, node: NodeInfo) -> float:
        return 250.0


def test_out_of_range_score_rejected() -> None:
    reg = default_registry()
    reg.register("bad-score", BadScore)
    prof = build_profile("p", ProfileConfig(
        plugins=["node-resources-fit", "bad-score", "resources", "default-binder"],
        weights={"bad-score": 1}), reg)
    n = node("a")
    d = Framework(prof).schedule(Task("j", requests={"cpu": 1}), snap([n]))
    assert d.code == Code.ERROR.value and "bad-score" in d.reasons[0]
    assert not n.tasks  # nothing reserved


def test_registry_refuses_duplicates() -> None:
    reg = Registry()
    reg.register("x", BadScore)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("x", BadScore)


def test_invalid_config_names_plugin_and_field() -> None:
    with pytest.raises(ValueError, match=r"network-aware.*delay_ref_ms"):
        Profiles(SchedulerConfig(profiles={"p": ProfileConfig(
            plugins=[{"name": "network-aware", "args": {"delay_ref_ms": -1}}])}))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown scheduler plug-in 'nope'"):
        Profiles(SchedulerConfig(profiles={"p": ProfileConfig(plugins=["nope"])}))
    with pytest.raises(ValueError, match="duplicate|twice"):
        Profile("p", [BadScore({}), BadScore({})])


class Boom:
    name = "boom"

    def __init__(self, args: dict[str, Any]) -> None:
        pass

    def permit(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        raise RuntimeError("kaput")


def test_plugin_exception_becomes_error_and_unreserves() -> None:
    reg = default_registry()
    reg.register("boom", Boom)
    prof = build_profile("p", ProfileConfig(
        plugins=["node-resources-fit", "resources", "boom", "default-binder"], weights={}), reg)
    n = node("a")
    d = Framework(prof).schedule(Task("j", requests={"cpu": 1}), snap([n]))
    assert d.code == Code.ERROR.value and "kaput" in d.reasons[0]
    assert n.used.get("cpu", 0) == 0


def test_feasible_sampling_visits_whole_cluster() -> None:
    nodes = [node(f"s{i}", capacity={"cpu": 1.0}) for i in range(300)]
    s = snap(nodes)
    fw = default_fw()
    for i in range(300):
        assert fw.schedule(Task(f"t{i}", requests={"cpu": 1}), s).ok
    assert all(n.used["cpu"] == 1.0 for n in nodes)


def test_config_section_rejects_bad_policy_at_load(tmp_path: object) -> None:
    from pathlib import Path

    from controller.config import load_config
    from controller.errors import ValidationError

    assert isinstance(tmp_path, Path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "zone: cpn.example\nsites:\n  - {name: A, kind: mec, region: r}\nscheduler:\n"
        "  queues: {video: {weight: 2, profile: p}}\n"
        "  profiles:\n    p:\n      plugins: [node-resources-fit,\n"
        "        {name: network-aware, args: {delay_ref_ms: -3}}]\n")
    with pytest.raises(ValidationError, match=r"network-aware.*delay_ref_ms"):
        load_config(cfg)
    cfg.write_text(cfg.read_text().replace("-3", "3"))
    sec = load_config(cfg).sections["scheduler"]
    assert isinstance(sec, SchedulerConfig)
    assert Profiles(sec).for_task("t", "video").profile.name == "p"
