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
from tests.conftest import ROOT
from tests.optical.test_service import fakes

TOKEN = "viewer-token-0123456789"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(load_config(ROOT / "examples" / "gba.yaml"), Settings(state=tmp_path))
    runtime.apply_config()
    runtime.store.add_token(digest(TOKEN), "dash", "viewer", None)
    try:
        yield runtime
    finally:
        runtime.store.close()


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
