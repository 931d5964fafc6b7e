"""REST ``/api/v1/srv6/paths``, ``/policies`` and ``cpn srv6 path`` on the security-video
example topology (R1 headend; R1-R2 1 ms, R1-R3 2 ms)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controller.api.app import create_app
from controller.cli import client as cli_client
from controller.cli.main import app as cli_app
from controller.runtime import Runtime
from srv6.models import CandidatePath, SegmentList, SrPolicy
from tests.conftest import example_runtime

TOKEN = "viewer-token-0123456789"
H = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with example_runtime(tmp_path, "security-video.yaml",
                         (TOKEN, "dash", "viewer", None)) as runtime:
        yield runtime


@pytest.fixture
def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt))


def test_path_with_delay_bound(client: TestClient) -> None:
    resp = client.post("/api/v1/srv6/paths", headers=H, json={
        "headend": "R1", "endpoint": "R3", "constraints": {"max_delay_ms": 5}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ok"] and body["hops"] == ["R1", "R3"]
    assert body["segment_list"]["sids"] == ["fc00:0:3:1::"]
    assert body["reason"]


def test_infeasible_is_an_answer_naming_the_constraint(client: TestClient) -> None:
    resp = client.post("/api/v1/srv6/paths", headers=H, json={
        "headend": "R1", "endpoint": "R3", "constraints": {"max_delay_ms": 1}})
    body = resp.json()
    assert resp.status_code == 200 and not body["ok"]
    assert body["failed_constraint"] == "max_delay_ms"


def test_unknown_endpoint_is_422(client: TestClient) -> None:
    resp = client.post("/api/v1/srv6/paths", headers=H,
                       json={"headend": "R1", "endpoint": "R9"})
    assert resp.status_code == 422
    assert "unknown endpoint 'R9'" in resp.json()["error"]["message"]
    assert client.post("/api/v1/srv6/paths", json={"headend": "R1",
                                                   "endpoint": "R3"}).status_code == 401


def test_policies_list_shows_active_path(client: TestClient, rt: Runtime) -> None:
    pol = SrPolicy(headend="R1", color=10, endpoint="R3", candidate_paths=[
        CandidatePath(preference=100, discriminator=1,
                      segment_lists=[SegmentList(sids=["fc00:0:3:1::"])]),
        CandidatePath(preference=200, discriminator=2,
                      segment_lists=[SegmentList(sids=["fc00:0:2:1::", "fc00:0:3:1::"])])])
    with rt.store.transaction("test", "policy") as txn:
        txn.put(pol)
    items = client.get("/api/v1/srv6/policies", headers=H).json()["items"]
    assert len(items) == 1 and items[0]["active"]["preference"] == 200
    one = client.get("/api/v1/srv6/policies/R1~10~R3", headers=H).json()
    assert one["active"]["discriminator"] == 2
    assert client.get("/api/v1/srv6/policies/R1~11~R3", headers=H).status_code == 404


def test_cli_path_renders_result(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_init(self: Any, api: str | None, token: str | None,
                  state: str | None = None) -> None:
        self.base = "testserver"
        client.headers.update(H)
        self.http = client

    monkeypatch.setattr(cli_client.Client, "__init__", fake_init)
    runner = CliRunner()
    out = runner.invoke(cli_app, ["srv6", "path", "--from", "R1", "--to", "R3",
                                  "--max-delay-ms", "5"])
    assert out.exit_code == 0, out.output
    assert "R1 -> R3" in out.output and "fc00:0:3:1::" in out.output
    bad = runner.invoke(cli_app, ["srv6", "path", "--from", "R1", "--to", "R3",
                                  "--max-delay-ms", "1"])
    assert bad.exit_code == 3 and "infeasible (max_delay_ms)" in bad.output
    assert "Example:" in runner.invoke(cli_app, ["srv6", "path", "--help"]).output


def test_slice_plan_and_sdwan_render_routes(client: TestClient) -> None:
    resp = client.post("/api/v1/srv6/slices/plan", headers=H, json={"slices": [
        {"name": "video", "color": 10, "guaranteed_mbps": 600,
         "flows": [{"headend": "R1", "endpoint": "R3"}]},
        {"name": "bulk", "color": 20, "guaranteed_mbps": 600,
         "flows": [{"headend": "R1", "endpoint": "R3"}]}]})
    assert resp.status_code == 200, resp.text
    adm = {a["slice"]: a for a in resp.json()["admissions"]}
    assert adm["video"]["admitted"] and not adm["bulk"]["admitted"]
    assert adm["bulk"]["failed_constraint"] == "min_bandwidth_mbps"
    assert adm["bulk"]["links"] == ["R1~R3"]
    resp = client.post("/api/v1/srv6/sdwan/render", headers=H, json={"policies": [
        {"name": "cam", "match": {"app": "video-analytics"},
         "sla": {"name": "rt", "max_delay_ms": 10}, "transports": ["ip-private"],
         "headends": ["R1"], "endpoint": "R3", "color": 50}]})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["decisions"][0]["chosen"] == "ip-private"
    assert out["rules"][0]["match"]["dst_ports"] == "5600"
