"""Scheduling plug-in interfaces (``scheduler.interface``): every built-in plug-in is
what it claims to be, a half-implemented interface is refused when the profile is
built, and a raising plug-in at ANY extension point becomes ``Status.error`` naming
it — reservations given back, victims restored, nothing escapes (WP-3.3.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from scheduler.framework import Code, CycleState, Framework, Profile, Status
from scheduler.interface import (
    BatchFilterPlugin,
    BindPlugin,
    FilterPlugin,
    PostFilterPlugin,
    PreFilterPlugin,
    ReservePlugin,
    ScorePlugin,
    WaitingPermitPlugin,
    points_of,
)
from scheduler.models import NodeInfo, Snapshot, Task
from scheduler.plugins import BUILTIN, default_registry
from scheduler.plugins.core import DefaultBinder, NodeResourcesFit, Resources
from scheduler.plugins.preemption import Preemption
from tests.scheduler.helpers import node, snap


def test_every_builtin_implements_at_least_one_extension_point() -> None:
    for cls in BUILTIN:
        plugin = default_registry().build(cls.name, {})  # type: ignore[attr-defined]
        assert points_of(plugin) or getattr(plugin, "inactive", ()), cls


def test_builtins_satisfy_the_protocols_they_use() -> None:
    fit, res, bind = NodeResourcesFit({}), Resources({}), DefaultBinder({})
    assert isinstance(fit, PreFilterPlugin) and isinstance(fit, BatchFilterPlugin)
    assert isinstance(res, ReservePlugin) and isinstance(bind, BindPlugin)
    assert isinstance(Preemption({}), PostFilterPlugin)
    assert isinstance(default_registry().build("gang", {}), WaitingPermitPlugin)
    assert points_of(fit) == ["pre_filter", "filter"]


class HalfReserve:
    name = "half"

    def reserve(self, state: CycleState, task: Task, node: NodeInfo) -> Status:
        return Status.success()


class Nothing:
    name = "nothing"


def test_half_an_interface_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'half' implements reserve but not unreserve"):
        Profile("p", [HalfReserve()])
    with pytest.raises(ValueError, match="implements no extension point"):
        Profile("p", [Nothing()])


# ------------------------------------------------------------------ guarded calls
def _boom(*_: Any) -> Any:
    raise RuntimeError("kaput")


def _ok_status(*_: Any) -> Status:
    return Status.success()


class Raiser:
    """One plug-in; ``methods`` names the extension-point methods it has."""

    def __init__(self, methods: dict[str, Callable[..., Any]]) -> None:
        self.name = "raiser"
        for k, fn in methods.items():
            setattr(self, k, fn)


def _profile(raiser: Raiser, *, preempt: bool = False) -> Profile:
    plugins: list[Any] = [NodeResourcesFit({}), raiser, Resources({})]
    if preempt:
        plugins.insert(1, Preemption({}))
    return Profile("p", [*plugins, DefaultBinder({})], weights={"raiser": 1.0})


CASES: dict[str, tuple[dict[str, Callable[..., Any]], dict[str, Any]]] = {
    "pre_filter": ({"pre_filter": _boom}, {}),
    "filter": ({"filter": _boom}, {}),
    "filter_batch": ({"filter": _ok_status, "filter_batch": _boom}, {}),
    "post_filter": ({"post_filter": _boom}, {"cpu": 64}),
    "score": ({"score": _boom}, {}),
    "score_batch": ({"score": lambda *_: 1.0, "score_batch": _boom}, {}),
    "normalize": ({"score": lambda *_: 1.0, "normalize": _boom}, {}),
    "reserve": ({"reserve": _boom, "unreserve": lambda *_: None}, {}),
    "permit": ({"permit": _boom}, {}),
    "bind": ({"bind": _boom}, {}),
}


@pytest.mark.parametrize(("point", "vectorise"), [
    (p, v) for p in CASES for v in (True, False) if v or not p.endswith("_batch")])
def test_an_exception_at_any_point_becomes_an_error_status(point: str, vectorise: bool
                                                           ) -> None:
    methods, requests = CASES[point]
    if point == "bind":  # the raiser binds before the default binder
        prof = Profile("p", [NodeResourcesFit({}), Resources({}), Raiser(methods),
                             DefaultBinder({})])
    else:
        prof = _profile(Raiser(methods))
    a, b = node("a"), node("b")
    d = Framework(prof, vectorise=vectorise).schedule(
        Task("j", requests=requests or {"cpu": 1}), snap([a, b]))
    assert d.code == Code.ERROR.value, (point, d)
    assert d.reasons[0].startswith("raiser: "), d.reasons
    assert "RuntimeError: kaput" in d.reasons[0]
    assert not a.tasks and not b.tasks  # every reservation given back
    assert a.used.get("cpu", 0) == 0 and b.used.get("cpu", 0) == 0


def test_unreserve_raising_still_gives_back_the_others_and_is_reported() -> None:
    """Replica 2 does not fit, so replica 1 is unreserved: the raiser's Unreserve
    raises, ``resources`` still releases the node, and the decision names the bug."""
    prof = _profile(Raiser({"reserve": _ok_status, "unreserve": _boom}))
    a = node("a")
    d = Framework(prof).schedule(Task("j", requests={"cpu": 10}, replicas=2), snap([a]))
    assert d.code == Code.ERROR.value
    assert d.reasons[0].startswith("raiser: unreserve raised RuntimeError: kaput")
    assert a.used.get("cpu", 0) == 0 and not a.tasks


def test_post_filter_raising_after_preemption_restores_the_victims() -> None:
    """Preemption evicts a lower-priority task for ours; the next PostFilter raises:
    the victim is back on its node and our task holds nothing."""

    def evict_then_raise(state: CycleState, task: Task, s: Snapshot,
                         failed: dict[str, Status]) -> tuple[Status, NodeInfo | None]:
        st, nominated = Preemption({}).post_filter(state, task, s, failed)
        assert st.ok and nominated is not None and state.get("preempted")
        raise RuntimeError("kaput")

    a = node("a")
    a.add("low", 10, {"cpu": 12.0}, None)
    prof = Profile("p", [NodeResourcesFit({}), Raiser({"post_filter": evict_then_raise}),
                         Resources({}), DefaultBinder({})])
    d = Framework(prof).schedule(Task("hi", requests={"cpu": 8}, priority=500), snap([a]))
    assert d.code == Code.ERROR.value and "post_filter raised" in d.reasons[0]
    assert "low" in a.tasks and "hi" not in a.tasks
    assert a.used["cpu"] == 12.0


def test_wait_over_raising_ends_the_wait_with_an_error() -> None:
    raiser = Raiser({"permit": lambda *_: Status.wait("for the others"),
                     "wait_over": _boom})
    prof = Profile("p", [NodeResourcesFit({}), Resources({}), raiser, DefaultBinder({})])
    fw = Framework(prof)
    a = node("a")
    assert fw.schedule(Task("j", requests={"cpu": 1}), snap([a])).code == Code.WAIT.value
    (d,) = fw.end_pass(now=1.0)
    assert d.code == Code.ERROR.value and "wait_over raised" in d.reasons[0]
    assert a.used.get("cpu", 0) == 0


def test_filter_batch_result_is_still_used_when_nothing_raises() -> None:
    """The guard does not change results: a batch filter rejecting every node gives
    the usual unschedulable summary."""
    raiser = Raiser({"filter": lambda *_: Status.unschedulable("no"),
                     "filter_batch": lambda _s, _t, tab, idx: np.zeros(len(idx), bool)})
    d = Framework(_profile(raiser)).schedule(Task("j", requests={"cpu": 1}),
                                             snap([node("a")]))
    assert d.code == Code.UNSCHEDULABLE.value and d.reasons[0] == "0/1 nodes available"


def test_protocols_are_runtime_checkable() -> None:
    assert isinstance(Raiser({"filter": _ok_status}), FilterPlugin)
    assert not isinstance(Raiser({"filter": _ok_status}), ScorePlugin)
