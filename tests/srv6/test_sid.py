"""Persisted SID allocator: no collisions, idempotent owners, restart-safe, reuse rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.errors import ConflictError, NotFoundError, ValidationError
from controller.store import SqliteStore
from srv6.models import Locator
from srv6.sid import DYNAMIC_BASE, SidAllocator, node_sid

LOC = Locator(name="r1", node="R1", prefix="fc00:0:1::/48")
SMALL = Locator(name="tiny", node="R2", prefix="fc00:0:2::/48", function_len=2)


def test_dynamic_allocations_are_distinct_and_idempotent(store: SqliteStore) -> None:
    alloc = SidAllocator(store, LOC)
    a = alloc.allocate("adj:R1:R1~R2")
    b = alloc.allocate("adj:R1:R1~R3")
    assert a != b
    assert LOC.function_of(a) == DYNAMIC_BASE
    assert alloc.allocate("adj:R1:R1~R2") == a
    assert alloc.owner_of(b) == "adj:R1:R1~R3"
    assert alloc.sid_of("adj:R1:R1~R3") == b


def test_state_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    s1 = SqliteStore(db)
    first = SidAllocator(s1, LOC).allocate("dx4:R1:eth1")
    s1.close()
    s2 = SqliteStore(db)
    try:
        again = SidAllocator(s2, LOC)
        assert again.owner_of(first) == "dx4:R1:eth1"
        assert again.allocate("other") != first
    finally:
        s2.close()


def test_explicit_collision_is_refused_and_state_kept(store: SqliteStore) -> None:
    alloc = SidAllocator(store, LOC)
    sid = alloc.allocate("node:R1", function=1)
    assert sid == node_sid(LOC)
    with pytest.raises(ConflictError, match="SID collision: fc00:0:1:1:: .* held by 'node:R1'"):
        alloc.allocate("intruder", function=1)
    assert alloc.state().functions == {1: "node:R1"}
    with pytest.raises(ValidationError, match="function 0x0 outside"):
        alloc.allocate("zero", function=0)
    with pytest.raises(ConflictError, match="already holds"):
        alloc.allocate("node:R1", function=2)


def test_released_functions_are_reused_last(store: SqliteStore) -> None:
    alloc = SidAllocator(store, SMALL, dynamic_base=1)
    sids = [alloc.allocate(f"o{i}") for i in range(3)]
    with pytest.raises(ConflictError, match="is full"):
        alloc.allocate("o3")
    freed = alloc.release("o1")
    assert freed == sids[1]
    assert alloc.allocate("o4") == freed  # only now, when nothing never-used remains
    with pytest.raises(NotFoundError):
        alloc.release("nobody")


def test_release_does_not_reuse_while_fresh_functions_remain(store: SqliteStore) -> None:
    alloc = SidAllocator(store, LOC)
    a = alloc.allocate("a")
    alloc.release("a")
    assert alloc.allocate("b") != a


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alloc", "release", "explicit"]),
                          st.integers(0, 5), st.integers(1, 3)), max_size=30))
def test_no_two_owners_ever_share_a_sid(tmp_path_factory: pytest.TempPathFactory,
                                        ops: list[tuple[str, int, int]]) -> None:
    s = SqliteStore(tmp_path_factory.mktemp("sid") / "s.db")
    try:
        alloc = SidAllocator(s, SMALL, dynamic_base=1)
        for op, who, fn in ops:
            owner = f"o{who}"
            try:
                if op == "alloc":
                    alloc.allocate(owner)
                elif op == "explicit":
                    alloc.allocate(owner, function=fn)
                else:
                    alloc.release(owner)
            except (ConflictError, NotFoundError):
                pass
            funcs = alloc.state().functions
            assert len(set(funcs.values())) == len(funcs)  # one SID per owner
            assert all(1 <= f <= SMALL.max_function for f in funcs)
    finally:
        s.close()


def test_topology_sids_are_allocated_once_and_used_by_cspf(store: SqliteStore) -> None:
    from controller.models import Link
    from srv6.models import Constraints
    from srv6.paths import Topology, compute_path
    from srv6.sid import allocate_topology_sids
    from tests.srv6.topos import routers

    links = [Link(a="R1", b="R2"), Link(a="R2", b="R3"), Link(a="R1", b="R3", igp_metric=50)]
    locs = [Locator(name=f"r{i}", node=f"R{i}", prefix=f"fc00:0:{i}::/48") for i in (1, 2, 3)]
    topo = Topology.build(links, routers(3))
    assert allocate_topology_sids(store, topo, locs) == 3 + 6
    again = Topology.build(links, routers(3))
    allocate_topology_sids(store, again, locs)
    assert again.adj_sids == topo.adj_sids and again.node_sids == topo.node_sids
    res = compute_path(topo, "R1", "R3", Constraints(exclude_nodes=["R2"]))
    assert res.segment_list is not None
    adj = SidAllocator(store, locs[0]).sid_of("adj:R1:R1~R3")
    end = SidAllocator(store, locs[2]).sid_of("node:R3")
    # End.X of R1 over the expensive direct link, then R3's own End SID to finish on.
    assert res.segment_list.sids == [adj, end]
