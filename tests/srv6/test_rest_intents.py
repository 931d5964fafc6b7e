"""REST CRUD for SR policy intents, slices and SD-WAN policies (GBA-6.4.3e/f): the same
SRv6 rules NETCONF applies (``srv6.rules``), errors naming the field, nothing written on
a refusal, writes journaled with the caller."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.runtime import Runtime
from controller.store import JournalQuery
from srv6.models import Slice, SrPolicyIntent
from tests.conftest import example_runtime

OP = {"Authorization": "Bearer op-token-0123456789"}
VIEW = {"Authorization": "Bearer viewer-token-0123456789"}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    # examples/gba.yaml gives every site gateway an SRv6 locator: slices can be admitted
    with example_runtime(tmp_path, "gba.yaml",
                         ("op-token-0123456789", "ops", "operator", None),
                         ("viewer-token-0123456789", "dash", "viewer", None)) as runtime:
        yield runtime


@pytest.fixture
def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt))


def slice_body(name: str = "gold", color: int = 20, mbps: float = 1000) -> dict[str, Any]:
    return {"name": name, "color": color, "guaranteed_mbps": mbps, "max_delay_ms": 10,
            "flows": [{"headend": "MEC-GZ1", "endpoint": "MEC-SZ1"}]}


def intent_body(**kw: Any) -> dict[str, Any]:
    return {"headend": "HUB-GZ", "endpoint": "HUB-HK", "color": 20, **kw}


def issue(resp: Any) -> tuple[str, str]:
    body = resp.json()["error"]
    first = body["issues"][0] if body["issues"] else {"path": "", "message": body["message"]}
    return first["path"], first["message"]


def test_slice_and_intent_round_trip_journaled(client: TestClient, rt: Runtime) -> None:
    r = client.post("/api/v1/srv6/slices", headers=OP, json=slice_body())
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/srv6/intents", headers=OP, json=intent_body(slice="gold"))
    assert r.status_code == 201, r.text
    key = "HUB-GZ~20~HUB-HK"
    got = client.get(f"/api/v1/srv6/intents/{key}", headers=VIEW).json()
    assert got["slice"] == "gold" and got["color"] == 20
    assert [s["name"] for s in client.get("/api/v1/srv6/slices", headers=VIEW)
            .json()["items"]] == ["gold"]
    entries = rt.store.journal(JournalQuery(key="gold"))
    assert entries and entries[-1].actor == "api:ops"
    # the slice is referred to by the intent: deleting it first is refused, nothing lost
    r = client.delete("/api/v1/srv6/slices/gold", headers=OP)
    assert r.status_code == 409 and "would break sr-policy-intent" in r.text, r.text
    assert rt.store.get(Slice, "gold") is not None
    assert client.delete(f"/api/v1/srv6/intents/{key}", headers=OP).status_code == 204
    assert client.delete("/api/v1/srv6/slices/gold", headers=OP).status_code == 204
    assert rt.store.get(Slice, "gold") is None


def test_rules_name_the_field_and_write_nothing(client: TestClient, rt: Runtime) -> None:
    seq = rt.store.last_seq()
    r = client.post("/api/v1/srv6/intents", headers=OP, json=intent_body(headend="NOPE"))
    assert r.status_code == 422
    path, msg = issue(r)
    assert path == "body.headend" and "unknown node 'NOPE'" in msg
    r = client.post("/api/v1/srv6/intents", headers=OP, json=intent_body(
        constraints={"exclude_links": ["no-such-link"]}))
    assert r.status_code == 422 and issue(r)[0] == "body.constraints.exclude_links[0]"
    r = client.post("/api/v1/srv6/intents", headers=OP, json=intent_body(slice="gold"))
    assert r.status_code == 422 and issue(r) == ("body.slice", "unknown slice 'gold'")
    assert rt.store.last_seq() == seq  # nothing written
    assert client.post("/api/v1/srv6/slices", headers=OP, json=slice_body()).status_code == 201
    # an intent for the slice must carry the slice's colour
    r = client.post("/api/v1/srv6/intents", headers=OP, json=intent_body(color=21,
                                                                          slice="gold"))
    assert r.status_code == 422 and issue(r)[0] == "body.color"
    # a second slice may not reuse the colour (PUT names the key in the URL)
    r = client.put("/api/v1/srv6/slices/dup", headers=OP, json=slice_body("dup", 20, 10))
    assert r.status_code == 422 and issue(r)[0] == "body.color" and "gold" in issue(r)[1]
    # a slice the network cannot carry is refused (409: well-formed, no room)
    r = client.post("/api/v1/srv6/slices", headers=OP, json=slice_body("huge", 30, 1e9))
    assert r.status_code == 409 and "slice huge refused" in r.text, r.text
    # an SD-WAN policy may not take a slice's colour
    sd = {"name": "video", "match": {"app": "rtp-video"}, "sla": {"name": "rt",
          "max_delay_ms": 30}, "transports": ["otn", "internet"], "headends": ["MEC-GZ1"],
          "endpoint": "HUB-HK", "color": 20}
    r = client.post("/api/v1/srv6/sdwan-policies", headers=OP, json=sd)
    assert r.status_code == 422 and issue(r)[0] == "body.color"
    assert client.post("/api/v1/srv6/sdwan-policies", headers=OP,
                       json={**sd, "color": 300}).status_code == 201
    assert rt.store.get(Slice, "huge") is None and rt.store.get(Slice, "dup") is None
    assert rt.store.get(SrPolicyIntent, "HUB-GZ~21~HUB-HK") is None


def test_viewer_cannot_write(client: TestClient) -> None:
    r = client.post("/api/v1/srv6/slices", headers=VIEW, json=slice_body())
    assert r.status_code == 403
    assert client.get("/api/v1/srv6/slices", headers=VIEW).status_code == 200
