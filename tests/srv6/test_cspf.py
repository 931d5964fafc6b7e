"""CSPF on a small hand-made topology: each constraint, its named failure, segments.

Topology (igp metric / delay ms), all links 1 Gbit/s unless noted:

    R1 --10/1-- R2 --10/2-- R3
    |            \\           |
   10/5        30/0.5       10/5
    |              \\         |
    R4 --10/5------ R5 -0.5- R3 (R5~R3: 10/0.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv6Address

import pytest

from controller.errors import ConflictError, ValidationError
from controller.models import Link, LinkState
from srv6.models import Constraints, LinkAffinity, LocalSid
from srv6.paths import Reservations, Topology, compute_path, disjoint_pair, k_shortest
from tests.srv6.topos import routers


def links(**over: Mapping[str, object]) -> list[Link]:
    base = [
        dict(a="R1", b="R2", delay_ms=1, srlgs=["duct-a"]),
        dict(a="R2", b="R3", delay_ms=2, available_mbps=200, capacity_mbps=1000),
        dict(a="R1", b="R4", delay_ms=5),
        dict(a="R4", b="R5", delay_ms=5),
        dict(a="R2", b="R5", igp_metric=30, delay_ms=0.5, srlgs=["duct-a"]),
        dict(a="R5", b="R3", delay_ms=0.5),
    ]
    out = []
    for spec in base:
        key = f"{spec['a']}~{spec['b']}"
        out.append(Link.model_validate({"capacity_mbps": 1000, **spec, **over.get(key, {})}))
    return out


def topo(**over: Mapping[str, object]) -> Topology:
    return Topology.build(links(**over), routers(5),
                          affinities=[LinkAffinity(link="R1~R4", colors=["gold"]),
                                      LinkAffinity(link="R4~R5", colors=["gold"])])


def sid(node: int, fn: int = 1) -> IPv6Address:
    return IPv6Address(f"fc00:0:{node}:{fn:x}::")


def test_unconstrained_path_is_igp_shortest_with_minimal_sids() -> None:
    res = compute_path(topo(), "R1", "R3")
    assert res.ok and res.hops == ["R1", "R2", "R3"] and res.igp_metric == 20
    # R1→R3 IGP shortest path is unique (R1-R2-R3), so only the endpoint's SID is needed.
    assert res.segment_list is not None and res.segment_list.sids == [sid(3)]


def test_delay_bound_moves_path_and_uses_adjacency_sid() -> None:
    res = compute_path(topo(), "R1", "R3", Constraints(max_delay_ms=2.1))
    assert res.ok and res.hops == ["R1", "R2", "R5", "R3"]
    assert res.delay_ms == pytest.approx(2.0)
    # R2→R5 has metric 30 (IGP goes R2-R3-R5), so R2's End.X over R2~R5 is needed.
    assert res.segment_list is not None
    assert res.segment_list.sids[0] == sid(2)
    assert res.segment_hops == ["R2", "R5 via R2~R5", "R3"]
    assert "exact constrained search" in res.reason


def test_infeasible_delay_is_named() -> None:
    res = compute_path(topo(), "R1", "R3", Constraints(max_delay_ms=1.5))
    assert not res.ok and res.failed_constraint == "max_delay_ms"
    assert "2.000 ms > max_delay_ms 1.5" in res.reason


def test_bandwidth_prunes_thin_link() -> None:
    res = compute_path(topo(), "R1", "R3", Constraints(min_bandwidth_mbps=500))
    assert res.ok and "R2~R3" not in res.links
    booked = {"R1~R2": 600.0}
    res = compute_path(topo(), "R1", "R3", Constraints(min_bandwidth_mbps=500),
                       reserved=booked)
    assert res.ok and res.hops == ["R1", "R4", "R5", "R3"]
    assert res.min_available_mbps == 1000


@pytest.mark.parametrize(("c", "named"), [
    (Constraints(exclude_nodes=["R2", "R4"]), "exclude_nodes"),
    (Constraints(exclude_links=["R1~R2", "R1~R4"]), "exclude_links"),
    (Constraints(exclude_nodes=["R4"], exclude_srlgs=["duct-a"]), "exclude_srlgs"),
    (Constraints(exclude_nodes=["R2"], exclude_any=["gold"]), "affinity"),
    (Constraints(exclude_nodes=["R4"], min_bandwidth_mbps=2000), "min_bandwidth_mbps"),
    (Constraints(exclude_nodes=["R3"]), "exclude_nodes"),
])
def test_infeasible_constraint_is_named(c: Constraints, named: str) -> None:
    res = compute_path(topo(), "R1", "R3", c)
    assert not res.ok and res.failed_constraint == named, res.reason
    assert res.reason


def test_include_all_affinity() -> None:
    res = compute_path(topo(), "R1", "R5", Constraints(include_all=["gold"]))
    assert res.ok and res.hops == ["R1", "R4", "R5"]


def test_down_link_is_not_used_and_unknown_names_are_errors() -> None:
    t = topo(**{"R1~R2": {"state": LinkState.DOWN}})
    assert compute_path(t, "R1", "R3").hops == ["R1", "R4", "R5", "R3"]
    assert compute_path(t, "R1", "R3", Constraints(exclude_links=["R1~R2"])).ok
    with pytest.raises(ValidationError, match="unknown endpoint 'R9'"):
        compute_path(t, "R1", "R9")
    with pytest.raises(ValidationError, match="unknown link 'R7~R8'"):
        compute_path(t, "R1", "R3", Constraints(exclude_links=["R7~R8"]))
    with pytest.raises(ValidationError, match="unknown node 'RX'"):
        Topology.build([Link(a="R1", b="RX")], routers(2))


def test_max_sid_depth_is_enforced_by_name() -> None:
    res = compute_path(topo(), "R1", "R3", Constraints(max_delay_ms=2.1, max_sid_depth=2))
    assert not res.ok and res.failed_constraint == "max_sid_depth"
    assert "max_sid_depth" in res.reason


def test_explicit_local_sids_override_defaults() -> None:
    t = Topology.build(links(), routers(5), local_sids=[
        LocalSid(sid="fc00:0:2:77::", behavior="End.X", node="R2", locator="r2",
                 nexthop="fe80::5", link="R2~R5"),
        LocalSid(sid="fc00:0:3:99::", behavior="End", node="R3", locator="r3")])
    res = compute_path(t, "R1", "R3", Constraints(max_delay_ms=2.1))
    assert res.segment_list is not None
    assert res.segment_list.sids == [sid(2), IPv6Address("fc00:0:2:77::"),
                                     IPv6Address("fc00:0:3:99::")]


def test_final_sid_replaces_endpoint_node_sid() -> None:
    dx4 = IPv6Address("fc00:0:3:100::")
    res = compute_path(topo(), "R1", "R3", final_sid=dx4)
    assert res.segment_list is not None and res.segment_list.sids == [dx4]


def test_disjoint_from_existing_policy() -> None:
    t = topo()
    first = compute_path(t, "R1", "R3")
    res = compute_path(t, "R1", "R3", Constraints(disjoint_from="R1~10~R3"),
                       existing={"R1~10~R3": first.links})
    assert res.ok and not set(res.links) & set(first.links)
    assert "R2~R5" not in res.links  # shares SRLG duct-a with R1~R2
    with pytest.raises(ValidationError, match="disjoint_from"):
        compute_path(t, "R1", "R3", Constraints(disjoint_from="nope"))


def test_k_shortest_and_pairs() -> None:
    t = topo()
    paths = k_shortest(t, "R1", "R3", 3)
    assert [p.igp_metric for p in paths] == [20, 30, 50]
    pair = disjoint_pair(t, "R1", "R3")
    assert isinstance(pair, tuple)
    assert {tuple(p.hops) for p in pair} == {("R1", "R2", "R3"), ("R1", "R4", "R5", "R3")}
    cut = disjoint_pair(t, "R1", "R3", Constraints(exclude_nodes=["R4"]))
    assert not isinstance(cut, tuple) and cut.failed_constraint == "disjoint"


def test_reservation_over_capacity_names_link() -> None:
    book = Reservations(topo())
    book.reserve("p1", ["R1~R2", "R2~R3"], 150)
    with pytest.raises(ConflictError, match="link R2~R3: p2 needs 100 Mbit/s but only 50"):
        book.reserve("p2", ["R1~R2", "R2~R3"], 100)
    assert book.snapshot() == {"R1~R2": 150, "R2~R3": 150}
    book.reserve("p1", ["R2~R3"], 200)  # replacing its own booking is allowed
    assert book.snapshot() == {"R2~R3": 200}
    book.release("p1")
    book.release("p1")
    assert book.snapshot() == {}


def test_bench_runs_small() -> None:
    from labs.bench.cspf import random_topology, run

    routers_, links_ = random_topology(50, 150, seed=1)
    t = Topology.build(links_, routers_)
    assert len(t.edges) == 150 and t.n == 50
    out = run(sizes="50,100", queries=10, legacy_queries=4, rounds=3, side_queries=2)
    assert sum(out["outcomes"].values()) == 10 and out["sizes"][0]["links"] == 200
    assert out["median_ms"] > 0 and out["disjoint_pairs_found"].endswith("/2")
    assert [len(r["round_medians_ms"]) for r in out["sizes"]] == [3, 3]
    assert isinstance(out["growth_exponent"], float) and out["met"] is False  # no goal
    assert isinstance(out["cpu_growth_exponent"], float)
    assert set(out["sizes"][1]["spf_engines_median_ms"]) == {
        "python_dijkstra", "python_bidirectional", "scipy_csgraph", "igraph", "rustworkx"}
    # the product and the previous engine alternate and give the same segment lists
    assert all(r["segments_agree"] == "10/10" for r in out["sizes"])
    assert [len(r["previous_round_medians_ms"]) for r in out["sizes"]] == [3, 3]
    assert all(0 < r["cpu_median_ms"] <= r["cpu_p99_ms"] for r in out["sizes"])
    assert all(0 < r["query_medians_p99_ms"] <= r["p99_ms"] for r in out["sizes"])
    # per topology version, timed apart from the queries
    assert all(r["prepare_ms"] > 0 and r["link_change_ms"] > 0 for r in out["sizes"])
    # the exact search is never worse than LARAC on the same queries
    assert all(r["larac_worse_pct_max"] >= 0 for r in out["sizes"])
