"""Compute grading and recommendation (WP-3.1.5, GBA App. ResNet-50 tiers) and the
resource index with usage statistics (WP-3.1.4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.models import ComputeMetrics, Site, SiteKind
from controller.store import SqliteStore
from telemetry.grading import (
    Benchmark,
    ComputeGrade,
    RecommendRequest,
    grade,
    recommend,
    run_benchmark,
    tier_of,
)
from telemetry.ingest import IngestCore
from telemetry.models import ComputeLifecycle, LifecycleEvent, LifecycleState
from tests.conftest import example_runtime

OP = "op-token-0123456789"


def bench(node: str, img_s: float) -> Benchmark:
    return Benchmark(node=node, logic_gops=1.0, fp32_gflops=img_s * 8.2, mlp_samples_s=1e4,
                     seconds=1.0)


def cg(site: str, node: str, img_s: float) -> ComputeGrade:
    b = bench(node, img_s)
    return ComputeGrade(site=site, node=node, benchmark=b, grade=grade(b))


def test_tiers_follow_the_gba_resnet50_figures() -> None:
    assert tier_of(100) == "sub-B1.small"
    assert tier_of(145 * 0.9) == "B1.small"   # within the 10 % tolerance
    assert tier_of(390) == "B1.medium" and tier_of(801) == "B1.large"
    g = grade(bench("n", 390))
    assert g.tier == "B1.medium" and g.units == pytest.approx(390 / 145, abs=1e-3)
    assert g.classes == {"logic": 1.0, "parallel": pytest.approx(390 * 8.2),
                         "neural": pytest.approx(390)}


def test_the_benchmark_really_measures_this_machine() -> None:
    b = run_benchmark("here", budget_s=0.3, size=128)
    assert b.fp32_gflops > 0 and b.logic_gops > 0 and b.mlp_samples_s > 0
    assert 0.2 < b.seconds < 5
    assert grade(b).resnet50_img_s == pytest.approx(b.fp32_gflops / 8.2, abs=1e-3)


def test_recommend_ranks_by_load_and_says_why_others_are_out() -> None:
    grades = [cg("GZ", "g1", 400), cg("GZ", "g2", 420), cg("SZ", "s1", 820),
              cg("HK", "h1", 150), cg("MEC", "m1", 900)]
    metrics = {"GZ": ComputeMetrics(site="GZ", l2=8), "SZ": ComputeMetrics(site="SZ", l2=3),
               "MEC": ComputeMetrics(site="MEC", l2=9, overloaded=True)}
    recs, out = recommend(RecommendRequest(tier="B1.medium"), grades, metrics)
    assert [r.site for r in recs] == ["GZ", "SZ"]  # GZ less loaded (higher L2) first
    assert recs[0].nodes == ("g2",) and recs[0].tier == "B1.medium"
    assert "HK: 0 of 1 nodes reach 351" in " ".join(out) and "MEC: overloaded" in out
    two, _ = recommend(RecommendRequest(tier="B1.medium", count=2), grades, metrics)
    assert [r.site for r in two] == ["GZ"] and two[0].nodes == ("g2", "g1")


def test_a_report_with_a_benchmark_grades_the_node(store: SqliteStore) -> None:
    with store.transaction("test", "seed") as txn:
        txn.put(Site(name="MEC-1", kind=SiteKind.MEC, region="r"))
    core = IngestCore(store)
    b = bench("mec1-srv", 150).model_dump(mode="json")
    for seq in (1, 2):
        core.admit(json.dumps({"site": "MEC-1", "seq": seq, "interval_s": 1.0,
                               "sent_at": datetime.now(UTC).isoformat(),
                               "benchmark": b}).encode(), "MEC-1", "ab" * 32)
        core.flush()
    g = store.get(ComputeGrade, "MEC-1/mec1-srv")
    assert g is not None and g.grade.tier == "B1.small" and g.history == [150.0, 150.0]
    core.close()


def test_rest_grades_recommend_and_compute_id_statistics(tmp_path: Path) -> None:
    with example_runtime(tmp_path, "gba.yaml", (OP, "ops", "operator", None)) as rt:
        with rt.store.transaction("test", "seed") as txn:
            txn.put(cg("GZ-DC", "gz1", 800))
            t0 = datetime.now(UTC) - timedelta(hours=2)
            txn.put(ComputeLifecycle(
                compute_id="0" * 36, site="GZ-DC", resource="gz-gpu", ca_fingerprint="ab",
                onboarded_at=t0, history=[
                    LifecycleEvent(at=t0 + timedelta(hours=1), state=LifecycleState.STALE),
                    LifecycleEvent(at=t0 + timedelta(minutes=90),
                                   state=LifecycleState.ONLINE)]))
        c = TestClient(create_app(rt))
        auth = {"Authorization": f"Bearer {OP}"}
        assert c.get("/api/v1/grades", headers=auth).json()["items"][0]["grade"]["tier"] \
            == "B1.large"
        r = c.post("/api/v1/recommend", headers=auth, json={"tier": "B1.large"}).json()
        assert [x["site"] for x in r["items"]] == ["GZ-DC"]
        bad = c.post("/api/v1/recommend", headers=auth, json={"tier": "B9.huge"})
        assert bad.status_code == 422 and "B1.small" in bad.text
        ids = c.get("/api/v1/compute-ids", headers=auth).json()["items"]
        usage = ids[0]["usage"]
        assert usage["online_share"] == pytest.approx(0.75, abs=0.01)  # 1.5 h of 2 h
