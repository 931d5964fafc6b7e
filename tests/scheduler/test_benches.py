"""The bench modules run end to end on small inputs and their plans are valid
(speeds are measured by ``cpn bench``, not asserted here)."""

from __future__ import annotations

from labs.bench import placement, schedule


def test_schedule_bench_small() -> None:
    out = schedule.run(sizes="300,600", sites=10, tasks=200, rounds=1)
    for size in out["sizes"]:
        assert size["all_placed_within_capacity"]
        assert size["identical"]  # cached and recomputed columns: the same nodes
    assert out["per_node_identical"]  # per-node loop and vectorised path agree
    assert out["figure"] == out["sizes"][-1]["cached_per_s"]["median"] > 0


def test_placement_bench_small() -> None:
    out = placement.run(sizes="40,60", sites=8, links=16, time_limit_s=3)
    for row in out["sizes"]:
        assert row["constraint_violations"] == 0 and row["unplaced"] == 0
        assert row["bound_full_model"] <= row["objective"] + 1e-6
        assert row["objective"] <= row["greedy_objective"] + 1e-6
        assert row["status"].startswith(("optimal", "feasible, gap"))
    assert out["figure"] == max(r["gap"] for r in out["sizes"])
