"""The bench modules run end to end on small inputs and their plans are valid
(speeds are measured by ``cpn bench``, not asserted here)."""

from __future__ import annotations

from labs.bench import placement, schedule


def test_schedule_bench_small() -> None:
    out = schedule.run(nodes=300, sites=10, tasks=200)
    for mode in ("per_node", "vectorised", "floor_100_nodes"):
        assert out[mode]["placed"] == 200 and out[mode]["over_capacity_nodes"] == 0
    assert out["identical"]  # both paths placed every task on the same nodes


def test_placement_bench_small() -> None:
    out = placement.run(flows=60, sites=8, links=16, time_limit_s=3)
    assert out["constraint_violations"] == 0 and out["unplaced"] == 0
    assert out["bound"] <= out["objective"] + 1e-6
    assert out["objective"] <= out["greedy_objective"] + 1e-6
