"""GBT-9.2.4 metrics and the workload simulator (GBT-9.2 test method)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.errors import ValidationError
from scheduler.gbt import UtilisationRecorder, deviation, fluctuation, loss, performance
from scheduler.sim import PolicySet, WorkloadFile, WorkloadSpec, arrivals, run_file, simulate
from tests.conftest import ROOT


def test_formulas() -> None:
    assert deviation(700, [1 / 7, 2 / 7], [100, 190]) == pytest.approx(5.0)
    assert loss(700, 100, 95, 100 / 7) == pytest.approx(1 - 95 / 100)
    assert fluctuation([90, 100, 120]) == pytest.approx(120 / 90)
    perf = performance(700, 98, {"a": (1 / 7, 14, 100), "b": (1 / 7, 14, 80),
                                 "c": (4 / 7, 56, 400)})
    assert perf["fluctuation"] == pytest.approx(100 / 80)  # only equal instances compared


def test_recorder_time_weighted() -> None:
    r = UtilisationRecorder(start=0)
    r.add_card("c0")
    r.add_card("c1")
    r.set_share("c0", 1.0, 0)
    r.set_share("c0", 0.0, 50)
    r.set_share("c1", 0.5, 0)
    q = r.card_utilisation(100)
    assert q == {"c0": pytest.approx(0.5), "c1": pytest.approx(0.5)}
    r.attempt(True)
    r.attempt(False)
    r.task_done(allocated=1.0, used=0.25, seconds=10)
    rep = r.report(100)
    assert rep["cluster_utilisation_q"] == pytest.approx(0.5)
    assert rep["success_rate"] == 0.5 and rep["task_resource_utilisation"] == 0.25


def test_arrival_patterns() -> None:
    off = arrivals(WorkloadSpec(arrival="offline", tasks=5))
    assert {t for t, _, _ in off} == {0.0}
    uni = arrivals(WorkloadSpec(arrival="uniform", tasks=4, rate_per_s=2))
    assert [t for t, _, _ in uni] == [0.0, 0.5, 1.0, 1.5]
    poi = arrivals(WorkloadSpec(arrival="poisson", tasks=2000, rate_per_s=4, seed=3))
    mean_gap = poi[-1][0] / len(poi)
    assert 0.2 < mean_gap < 0.3  # mean 1/rate = 0.25 s
    assert {c for _, _, c in poi} == {1, 2, 4, 8, 16}


def test_fractional_beats_whole_card_for_small_vision_tasks() -> None:
    wf = WorkloadFile(workload=WorkloadSpec(arrival="offline", tasks=60, counts=[1, 2],
                                            mix="vision", vision_share=0.25,
                                            max_wait_s=10**6))
    whole = simulate(wf, "whole", PolicySet(profile="7g"))
    frac = simulate(wf, "2g", PolicySet(profile="2g"))
    assert whole["success_rate"] == frac["success_rate"] == 1.0
    assert frac["task_resource_utilisation"] > whole["task_resource_utilisation"]
    assert frac["makespan_s"] < whole["makespan_s"]


def test_example_workloads_and_cli(tmp_path: Path) -> None:
    for f in sorted((ROOT / "examples" / "workloads").glob("*.yaml")):
        rows = run_file(f)
        assert rows and all(0 <= r["success_rate"] <= 1 for r in rows)
    bad = tmp_path / "bad.yaml"
    bad.write_text("workload: {arrival: sometimes}\n")
    with pytest.raises(ValidationError, match="workload.arrival"):
        run_file(bad)
    from controller.cli.main import app

    res = CliRunner().invoke(app, ["sim", "--workload",
                                   str(ROOT / "examples/workloads/offline-vision.yaml")])
    assert res.exit_code == 0, res.output
    assert "mig-2g" in res.output and "cluster_utilisation_q" in res.output
