"""``cpn bench dispatch`` runs end to end on a small batch against real Slurm clusters,
both paths (slurmrestd and sbatch) alternated (its speed is measured by the bench, not
asserted here)."""

from __future__ import annotations

import os

import pytest

from labs.bench import dispatch as bench_dispatch
from labs.slurm import available

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0 or available() is not None,
                                 reason=f"needs real Slurm clusters: {available()}")]


def test_dispatch_bench_small_run_reports_both_paths() -> None:
    out = bench_dispatch.run(jobs=20, cpus=8, rounds=1, api="both", timeout_s=90)
    assert [r["api"] for r in out["rounds"]] == ["rest", "cli"]
    for r in out["rounds"]:
        assert r["dispatched"] == r["started"] == 20 and r["duplicates"] == 0, r
        assert sum(r["per_centre"].values()) == 20 and r["failed"] == 0
        assert r["dispatched_per_s"] > 0
    assert out["dispatched_per_s"] == out["rounds"][0]["dispatched_per_s"]
    assert out["cli_dispatched_per_s"]["median"] == out["rounds"][1]["dispatched_per_s"]
    assert out["goal_per_s"] == 50 and isinstance(out["met"], bool)
    assert len(out["loadavg"]) == 2
