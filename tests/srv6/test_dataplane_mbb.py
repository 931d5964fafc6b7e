"""Make-before-break planning and execution against in-memory nodes (GBA-6.4.3c)."""

from __future__ import annotations

from labs.srv6lab import PATH_A, PATH_B, desired
from srv6.dataplane import MemoryProgrammer, NodeState, Seg6LocalRoute, Seg6Route, mbb
from srv6.dataplane.programmer import PolicyProgrammer


def nodes(path: tuple[str, ...]) -> dict[str, MemoryProgrammer]:
    progs = {n: MemoryProgrammer(n) for n in ("r1", "r2", "r3", "r4", "r5")}
    for n, state in desired(path).items():
        progs[n].load(state)
        progs[n].commit()
    return progs


def test_plan_orders_make_verify_switch_break() -> None:
    progs = nodes(PATH_A)
    actual = {n: p.read_actual() for n, p in progs.items()}
    plan = mbb.plan_switch(actual, desired(PATH_B), "r1")
    assert plan.describe() == ["make:r4 (1 routes)", "verify:r4 (1 routes)",
                               "switch:r1 (1 routes)", "break:r2 (0 routes)",
                               "break:r3 (0 routes)"]
    # the headend's switch step only replaces the steering route's segment list
    sw = next(s for s in plan.steps if s.phase == "switch")
    (route,) = list(sw.desired)
    assert isinstance(route, Seg6Route) and route.segments == ("fc00:4::1", "fc00:5::d4")


def test_every_intermediate_state_keeps_a_route_and_its_sids() -> None:
    progs = nodes(PATH_A)
    snapshots: list[dict[str, NodeState]] = []

    class Spy(MemoryProgrammer):
        def _apply(self, op):  # type: ignore[no-untyped-def]
            super()._apply(op)
            snapshots.append({n: p.read_actual() for n, p in progs.items()})

    spied: dict[str, PolicyProgrammer] = {}
    for n, p in progs.items():
        s = Spy(n)
        s.kernel = p.kernel
        spied[n] = s
    report = mbb.switch(spied, desired(PATH_B), "r1")
    assert report.ok
    for snap in snapshots:
        (steer,) = list(snap["r1"].only(Seg6Route))
        for sid in steer.segments:  # every SID steered to exists somewhere
            assert any(isinstance(r, Seg6LocalRoute) and r.sid == sid
                       for st in snap.values() for r in st)


def test_failure_before_switch_undoes_new_sids() -> None:
    progs = nodes(PATH_A)
    before = {n: p.read_actual() for n, p in progs.items()}
    target = desired(PATH_B)
    progs["r1"].fail_on.add(next(iter(target["r1"])).key)  # headend refuses the replace
    report = mbb.switch(progs, target, "r1")
    assert not report.ok and report.failed_step == "switch:r1"
    assert {n: p.read_actual() for n, p in progs.items()} == before  # r4's new SID gone
