"""Console data and routes without a browser: the overview document (plugin views
included), static files (no traversal), the page without a token, data only with one."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.console.view import overview
from tests.conftest import example_runtime

OP = "op-token-0123456789"


def test_page_is_public_data_needs_a_token_static_is_contained(tmp_path: Path) -> None:
    with example_runtime(tmp_path, "gba.yaml", (OP, "ops", "operator", None)) as rt:
        c = TestClient(create_app(rt))
        page = c.get("/console")
        assert page.status_code == 200 and "CPN console" in page.text
        assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN
        assert c.get("/console/static/vendor/cytoscape.min.js").status_code == 200
        assert c.get("/console/static/../routes.py").status_code == 404
        assert c.get("/console/static/%2e%2e/routes.py").status_code == 404
        r = c.get("/api/v1/console/overview")
        assert r.status_code == 401 and "missing bearer token" in r.json()["error"]["message"]
        ov = c.get("/api/v1/console/overview", headers={"Authorization": f"Bearer {OP}"}).json()
        assert len(ov["sites"]) == 8 and ov["whoami"]["role"] == "operator"
        assert all({"a", "b", "kind", "state", "load_pct"} <= set(lk) for lk in ov["links"])


def test_a_failing_view_provider_is_reported_not_fatal(tmp_path: Path) -> None:
    def broken() -> list[object]:
        raise RuntimeError("boom")

    with example_runtime(tmp_path, "gba.yaml") as rt:
        ov = overview(rt.store, (), {"flows": broken})
        assert ov["flows"] == [] and ov["errors"] == {"flows": "RuntimeError: boom"}
        assert len(ov["sites"]) == 8
