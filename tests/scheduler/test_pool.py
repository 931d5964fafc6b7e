"""GB/T 45401 instance pool: virtualisation, GBT-6.2.8 transitions, atomic multi-instance
allocation/release (hypothesis: all-or-nothing), topology, splitting, model switching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.models import InstanceState
from scheduler.pool import AcceleratorCard, Pool, PoolError, PoolNotFound


def card(i: int, server: str, switch: str, tf: float = 100.0) -> AcceleratorCard:
    return AcceleratorCard(id=f"c{i}", chip="A100", server=server, switch=switch,
                           cluster="k", compute_tflops=tf, memory_gib=80)


def pool(per_card: str = "7g") -> Pool:
    p = Pool()
    layout = [("s0", "w0"), ("s0", "w0"), ("s1", "w0"), ("s1", "w0"), ("s2", "w1"),
              ("s2", "w1")]
    for i, (srv, sw) in enumerate(layout):
        p.add_card(card(i, srv, sw))
        p.carve(f"c{i}", profile=per_card)
    return p


def test_carve_fractions_and_profiles() -> None:
    p = Pool()
    p.add_card(card(0, "s0", "w0"))
    a = p.carve("c0", profile="3g")
    b = p.carve("c0", fraction=0.5)
    assert a.spec.compute_tflops == pytest.approx(300 / 7)
    assert b.spec.memory_gib == 40
    with pytest.raises(PoolError, match="only 0.071 left"):
        p.carve("c0", profile="1g")
    with pytest.raises(PoolNotFound):
        p.carve("nope", fraction=0.1)
    with pytest.raises(PoolError, match="exactly one"):
        p.carve("c0")


def test_transitions_gbt_6_2_8() -> None:
    p = pool()
    p.occupy("c0-i0", "t1")
    with pytest.raises(PoolError, match="cannot occupy when in-use"):
        p.occupy("c0-i0", "t2")
    assert p.damage("c0-i0") == "t1"  # the running task is reported
    assert p.instances["c0-i0"].state is InstanceState.UNAVAILABLE
    with pytest.raises(PoolError, match="cannot release"):
        p.release("c0-i0")
    p.repair("c0-i0")
    p.soft_delete("c0-i0")
    with pytest.raises(PoolNotFound, match="soft-deleted"):
        p.occupy("c0-i0", "t3")
    with pytest.raises(PoolError, match="only 0.000 left"):
        p.carve("c0", profile="1g")  # soft-deleted capacity stays reserved
    p.recover("c0-i0")
    assert p.instances["c0-i0"].state.value == "available"
    p.enqueue("t9", 4)
    assert p.queue == [("t9", 4)]
    events = [e for e, _, _ in p.log]
    for ev in ("add", "occupy", "damage", "repair", "delete", "recover", "enqueue"):
        assert ev in events


def test_topology_same_server_then_switch() -> None:
    p = pool()
    a = p.allocate("t1", 2)
    assert a is not None and a.scope == "server"
    assert len({p.instances[i].topology.server for i in a.instances}) == 1
    b = p.allocate("t2", 3)  # no server has 3 free: same switch w0 has s1 (2) + ... no
    assert b is not None and b.scope in ("switch", "cluster")
    if b.scope == "switch":
        assert len({p.instances[i].topology.position for i in b.instances}) == 1


def test_atomic_release() -> None:
    p = pool()
    a = p.allocate("t1", 2)
    assert a is not None
    p.occupy("c5-i0", "other")
    with pytest.raises(PoolError, match="nothing released"):
        p.release_many("t1", [*a.instances, "c5-i0"])
    assert all(p.instances[i].state is InstanceState.IN_USE for i in a.instances)
    p.release_many("t1", a.instances)
    assert all(p.instances[i].state is InstanceState.AVAILABLE for i in a.instances)


def test_split_and_model_switch() -> None:
    p = pool("2g")  # 3 instances of 2/7 per card
    a = p.allocate_split("big", 150.0)
    assert a is not None and a.scope == "split"
    assert sum(p.instances[i].spec.compute_tflops for i in a.instances) >= 150.0
    assert len(a.instances) == 6  # 28.6 TFLOPS each: the fewest that reach 150
    p.switch_model(a.instances[0], "resnet50", task="big")
    with pytest.raises(PoolError, match="busy"):
        p.switch_model(a.instances[0], "bert", task="someone-else")
    assert p.models[a.instances[0]] == "resnet50"
    assert p.allocate_split("huge", 10_000.0) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 8), st.booleans()), min_size=1, max_size=20))
def test_property_allocation_all_or_nothing(ops: list[tuple[int, bool]]) -> None:
    p = pool()
    held: dict[str, tuple[str, ...]] = {}
    for n, (count, release_first) in enumerate(ops):
        if release_first and held:
            task, ids = held.popitem()
            p.release_many(task, ids)
        before = {i: x.state for i, x in p.instances.items()}
        free = sum(1 for s in before.values() if s is InstanceState.AVAILABLE)
        a = p.allocate(f"t{n}", count)
        if a is None:
            assert free < count
            assert {i: x.state for i, x in p.instances.items()} == before
        else:
            assert len(a.instances) == count == len(set(a.instances))
            assert all(p.instances[i].task == f"t{n}" for i in a.instances)
            held[f"t{n}"] = a.instances
    in_use = {i for ids in held.values() for i in ids}
    assert in_use == {i for i, x in p.instances.items() if x.state is InstanceState.IN_USE}
