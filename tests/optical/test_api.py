"""REST ``/api/v1/optical/*`` and the ``optical:`` config section."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.auth import digest
from controller.config import load_config
from controller.runtime import Runtime, Settings
from optical.component import OpticalComponent
from optical.config import OpticalSection
from optical.rwa import Request
from optical.service import OpticalController
from tests.conftest import ROOT, example_runtime
from tests.optical.test_service import fakes

TOKEN = "viewer-token-0123456789"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with example_runtime(tmp_path, "gba.yaml", (TOKEN, "dash", "viewer", None)) as runtime:
        yield runtime


def test_optical_routes_409_without_component_then_rfc8345(rt: Runtime) -> None:
    client = TestClient(create_app(rt))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/v1/optical/paths", headers=auth).status_code == 409
    comp = OpticalComponent(OpticalSection())
    comp.ctl = OpticalController(fakes())

    async def go() -> None:
        assert comp.ctl is not None
        await comp.ctl.start()
        await comp.ctl.create_path(Request("p1", "ne1", "ne3"))
        await comp.ctl.stop()
    asyncio.run(go())
    rt.settings.extra["optical"] = comp
    topo = client.get("/api/v1/optical/topology", headers=auth).json()
    net = topo["ietf-network:networks"]["network"][0]
    assert len(net["node"]) == 6 and net["ietf-network-topology:link"]
    paths = client.get("/api/v1/optical/paths", headers=auth).json()["items"]
    assert paths[0]["id"] == "p1" and paths[0]["route"] == ["ne1", "ne2", "ne3"]
    assert client.get("/api/v1/optical/alarms", headers=auth).json() == {"items": []}


def test_config_section_rejects_bad_port() -> None:
    with pytest.raises(ValueError, match="port"):
        OpticalSection.model_validate({"ne": [{"name": "ne0", "port": 70000}]})


def test_config_with_optical_section_gives_component(tmp_path: Path) -> None:
    from optical import plugin
    text = (ROOT / "examples" / "gba.yaml").read_text()
    text += ("\noptical:\n  margin_db: 3\n  ne:\n"
             "    - {name: ne0, host: 127.0.0.1, port: 18830, key: /tmp/k}\n")
    (tmp_path / "c.yaml").write_text(text)
    cfg = load_config(tmp_path / "c.yaml")
    rt = Runtime(cfg, Settings(state=tmp_path))
    try:
        comps = plugin.components(rt)
        assert [type(c).__name__ for c in comps] == ["OpticalComponent"]
        assert comps[0].section.ne[0].port == 18830 and comps[0].section.margin_db == 3
    finally:
        rt.store.close()


def test_operator_creates_and_deletes_paths_bad_input_names_the_field(rt: Runtime) -> None:
    """POST/DELETE /api/v1/optical/paths (operators only); the IP link riding on the path
    inherits its SRLGs (GBA-6.4.2e); bad input is 422 naming the field, nothing changes."""
    rt.store.add_token(digest("operator-token-0123456789"), "ops", "operator", None)
    comp = OpticalComponent(OpticalSection())
    comp.rt = rt
    comp.ctl = OpticalController(fakes(), on_ip_link=comp._ip_link)
    rt.settings.extra["optical"] = comp
    with TestClient(create_app(rt)) as client:
        assert client.portal is not None
        client.portal.call(comp.ctl.start)  # on the app's own event loop
        try:
            _paths_round_trip(rt, client, comp)
        finally:
            client.portal.call(comp.ctl.stop)


def _paths_round_trip(rt: Runtime, client: TestClient, comp: OpticalComponent) -> None:
    from controller.models import Link

    assert comp.ctl is not None
    op = {"Authorization": "Bearer operator-token-0123456789"}
    viewer = {"Authorization": f"Bearer {TOKEN}"}
    link = next(lk for lk in rt.store.list(Link) if lk.kind.value == "otn")
    body = {"name": "otn-a", "a": "ne0", "z": "ne2", "ip_links": [link.key]}
    assert client.post("/api/v1/optical/paths", json=body, headers=viewer).status_code == 403
    for bad, field in (({"a": "ne9"}, "a"), ({"z": "ne0"}, "z"),
                       ({"ip_links": ["nope~x"]}, "ip_links[0]"), ({"rate": "1T"}, "rate")):
        r = client.post("/api/v1/optical/paths", json={**body, **bad}, headers=op)
        assert r.status_code == 422, r.text
        assert field in r.text
    assert comp.ctl.paths == {}
    r = client.post("/api/v1/optical/paths", json=body, headers=op)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["state"] == "active" and got["route"][0] == "ne0" and got["route"][-1] == "ne2"
    assert all(comp.ctl.devices[ne].running.xcs for ne in got["route"])  # type: ignore[attr-defined]
    riding = rt.store.get(Link, link.key)
    assert riding is not None and set(comp.ctl.srlgs_of(comp.ctl.paths["otn-a"])) <= set(
        riding.srlgs)
    assert client.post("/api/v1/optical/paths", json=body, headers=op).status_code == 409
    assert client.delete("/api/v1/optical/paths/otn-a", headers=op).status_code == 204
    assert client.delete("/api/v1/optical/paths/otn-a", headers=op).status_code == 404
    assert not any(d.running.xcs for d in comp.ctl.devices.values())  # type: ignore[attr-defined]
    # an NE refuses: 502 naming the NE and its rpc-error, rolled back everywhere
    comp.ctl.devices["ne1"].reject = "invalid-value: laser off"  # type: ignore[attr-defined]
    r = client.post("/api/v1/optical/paths", json={**body, "name": "otn-b"}, headers=op)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "device_rejected" and "NE ne1" in r.text
    assert not any(d.running.xcs for d in comp.ctl.devices.values())  # type: ignore[attr-defined]
    # the failed path is listed until deleted; deleting it touches no NE
    assert comp.ctl.paths["otn-b"].state.value == "failed"
    assert client.delete("/api/v1/optical/paths/otn-b", headers=op).status_code == 204


def test_a_follower_serves_stored_paths_and_names_the_leader_for_the_rest(
        rt: Runtime) -> None:
    """#16: in a cluster only the leader drives the NEs; a follower lists the paths the
    leader stored and answers 409 naming the leader for what needs the NEs."""
    from controller.cluster import Role
    from optical.persist import to_record

    comp = OpticalComponent(OpticalSection())
    comp.ctl = OpticalController(fakes())

    async def go() -> None:
        assert comp.ctl is not None
        await comp.ctl.start()
        await comp.ctl.create_path(Request("p1", "ne1", "ne3"))
        await comp.ctl.stop()
    asyncio.run(go())
    assert comp.ctl is not None
    with rt.store.transaction("optical", "as the leader stored it") as txn:
        txn.put(to_record(comp.ctl.paths["p1"]))

    class Follower:
        elected = True
        role = Role(leader=False, epoch=3)

        def local(self) -> dict[str, object]:
            return {"leader": "ctl-2"}
    rt.leadership = Follower()  # type: ignore[assignment]
    client = TestClient(create_app(rt))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    paths = client.get("/api/v1/optical/paths", headers=auth).json()["items"]
    assert [(p["id"], p["route"]) for p in paths] == [("p1", ["ne1", "ne2", "ne3"])]
    r = client.get("/api/v1/optical/topology", headers=auth)
    assert r.status_code == 409 and "ctl-2" in r.text
