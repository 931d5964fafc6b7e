"""Site-level profile simulator: named plug-in profiles compared on one seeded job
stream; the figures differ the way the policies predict (GBA-6.5f, GBT-9.2.4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.errors import ValidationError
from scheduler.sim import WorkloadFile, run_file
from scheduler.sitesim import JobsSpec, SitesSpec, simulate_profile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "workloads" / "site-profiles.yaml"


def test_profiles_differ_as_the_policies_predict() -> None:
    rows = {r["policy"]: r for r in run_file(EXAMPLE)}
    energy, price, load = rows["energy-first"], rows["price-first"], rows["load-aware"]
    # same work placed by all: every job started, so the utilisation Q is the same
    assert {r["success_rate"] for r in rows.values()} == {1.0}
    assert energy["cluster_utilisation_q"] == pytest.approx(load["cluster_utilisation_q"])
    assert energy["energy_kwh"] < min(price["energy_kwh"], load["energy_kwh"])
    assert price["cost"] < min(energy["cost"], load["cost"])
    assert load["utilisation_std"] < min(energy["utilisation_std"], price["utilisation_std"])
    assert all(r["level"] == "site" for r in rows.values())  # no pool policies in the file


def test_seeded_and_repeatable() -> None:
    wf = WorkloadFile.model_validate({"profiles": {"p": {}}})
    a = simulate_profile(wf.sites, wf.jobs, "p", wf.profiles["p"])
    b = simulate_profile(wf.sites, wf.jobs, "p", wf.profiles["p"])
    assert a == b and a["tasks"] == 300.0


def test_overload_fails_jobs_after_max_wait() -> None:
    sites = SitesSpec(count=1, nodes_per_site=1, cpu=8)
    jobs = JobsSpec(arrival="offline", tasks=20, cpu=[4.0], runtime_s=(100.0, 100.0),
                    max_wait_s=250)
    wf = WorkloadFile.model_validate({"profiles": {"p": {}}})
    r = simulate_profile(sites, jobs, "p", wf.profiles["p"])
    # 2 at a time, 100 s each: starts at 0, 100, 200 → 6 placed; the rest gave up at 300 s
    assert r["success_rate"] == pytest.approx(6 / 20)
    assert r["mean_wait_s"] == pytest.approx(100.0)
    assert r["cluster_utilisation_q"] > 0.5


def test_bad_profile_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles:\n  fast:\n    plugins: [node-resources-fit, nope]\n")
    with pytest.raises(ValidationError, match=r"profiles\.fast.*unknown scheduler plug-in"):
        run_file(bad)


def test_cli_prints_profiles_side_by_side() -> None:
    from controller.cli.main import app

    res = CliRunner().invoke(app, ["sim", "--workload", str(EXAMPLE)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "# site-level policies, side by side"
    assert "energy_kwh" in lines[1] and "utilisation_std" in lines[1]
    assert [ln.split()[0] for ln in lines[2:6]] == ["energy-first", "price-first",
                                                    "load-aware", "default"]
