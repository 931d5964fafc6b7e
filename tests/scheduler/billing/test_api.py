"""Billing REST (GBA-6.7): catalogue, orders, usage, bills; bad input; tenant isolation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.models import Job, JobRun, JobSpec, JobState, Tenant
from controller.runtime import Runtime
from tests.conftest import example_runtime

OP, ACME, GLOBEX = "op-token-0123456789", "acme-token-0123456789", "globex-token-0123456789"


def h(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with example_runtime(tmp_path, "gba.yaml", (OP, "ops", "operator", None),
                         (ACME, "acme-u", "tenant", "acme"),
                         (GLOBEX, "globex-u", "tenant", "globex")) as runtime:
        for t in ("acme", "globex"):
            runtime.writer.put(Tenant(name=t), "test", "seed")
        yield runtime


def test_bad_prices_and_bad_bills_are_clear_errors(rt: Runtime) -> None:
    c = TestClient(create_app(rt))
    neg = c.post("/api/v1/price-plans", headers=h(OP), json={"name": "p", "rates": {"cpu": -1}})
    assert neg.status_code == 422
    assert neg.json()["error"]["issues"][0]["path"] == "body.rates.cpu"
    inf = c.post("/api/v1/price-plans", headers=h(OP),
                 content=b'{"name": "p", "rates": {"gpu": Infinity}}')
    assert inf.status_code == 422
    assert c.get("/api/v1/price-plans", headers=h(OP)).json()["total"] == 0  # nothing stored
    assert c.post("/api/v1/price-plans", headers=h(ACME),
                  json={"name": "p", "rates": {"cpu": 1}}).status_code == 403
    unknown = c.get("/api/v1/bills/nosuch", headers=h(OP), params={"month": "2026-11"})
    assert unknown.status_code == 404 and "GET /api/v1/tenants" in unknown.text
    bad = c.get("/api/v1/bills/acme", headers=h(OP), params={"month": "2026-13"})
    assert bad.status_code == 422 and bad.json()["error"]["issues"][0]["path"] == "query.month"
    future = (datetime.now(UTC) + timedelta(days=70)).strftime("%Y-%m")
    assert c.get("/api/v1/bills/acme", headers=h(OP),
                 params={"month": future}).status_code == 422
    no_order = c.get("/api/v1/bills/acme", headers=h(OP),
                     params={"month": datetime.now(UTC).strftime("%Y-%m")})
    assert no_order.status_code == 409 and "POST /api/v1/orders" in no_order.text
    nope = c.post("/api/v1/orders", headers=h(ACME), json={"plan": "nosuch"})
    assert nope.status_code == 422 and "body.plan" in nope.text


def test_tenant_sees_only_its_own_usage_and_bill(rt: Runtime) -> None:
    c = TestClient(create_app(rt))
    assert c.post("/api/v1/price-plans", headers=h(OP),
                  json={"name": "payg", "rates": {"cpu": "0.35"}}).status_code == 201
    for tok in (ACME, GLOBEX):
        assert c.post("/api/v1/orders", headers=h(tok),
                      json={"plan": "payg", "start": "2026-01-01T00:00:00Z"}).status_code == 201
    assert c.post("/api/v1/orders", headers=h(ACME),
                  json={"plan": "payg", "tenant": "globex"}).status_code == 404
    now = datetime.now(UTC).replace(microsecond=0)
    start = max(now - timedelta(hours=2), now.replace(day=1, hour=0, minute=0, second=0))
    for jid, tenant, cores in (("j-acme", "acme", 2), ("j-globex", "globex", 8)):
        rt.writer.put(Job(id=jid, tenant=tenant, owner="u", spec=JobSpec(name=jid),
                          state=JobState.FINISHED,
                          run=JobRun(site="GZ-DC", started_at=start,
                                     ended_at=start + timedelta(seconds=3600),
                                     resources={"cpu": cores})), "centre", "ran")
    month = start.strftime("%Y-%m")
    mine = c.get("/api/v1/usage", headers=h(ACME), params={"month": month}).json()["items"]
    assert [u["ref"] for u in mine] == ["j-acme"]
    assert c.get("/api/v1/usage", headers=h(ACME),
                 params={"month": month, "tenant": "globex"}).status_code == 404
    assert c.get("/api/v1/bills/globex", headers=h(ACME),
                 params={"month": month}).status_code == 404
    b = c.get("/api/v1/bills/acme", headers=h(ACME), params={"month": month}).json()
    assert b["total"] == "0.70" and b["lines"][0]["records"] == ["job:j-acme.1:cpu"]
    everyone = c.get("/api/v1/usage", headers=h(OP), params={"month": month}).json()
    assert {u["tenant"] for u in everyone["items"]} == {"acme", "globex"}
