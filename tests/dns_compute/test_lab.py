"""Lab: two client namespaces in different subnets ask the controller's DNS (no ECS:
the source address steers) and get different MECs; overloading MEC-1 through the REST
API moves the first client (issue 5 "Show", GBA-App.B)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from labs.netns import Lab, Ns, wait_for
from tests.conftest import ROOT, have, needs_netns

CPN = str(ROOT / ".venv" / "bin" / "cpn")


def _config(tmp: Path) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "security-video.yaml").read_text())
    doc["controller"] = {"api": "127.0.0.1:8080", "dns": "0.0.0.0:53",
                         "state": str(tmp / "state")}
    doc["dns"] = {"ttl_s": 1, "client_subnets": [
        {"prefix": "10.0.0.0/24", "node": "R2"}, {"prefix": "10.0.1.0/24", "node": "R3"}]}
    path = tmp / "sv.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@needs_netns
@pytest.mark.lab
@pytest.mark.skipif(not (have("kdig") and have("curl")), reason="needs kdig and curl")
def test_clients_in_two_subnets_get_two_mecs_and_overload_moves_one(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    with Lab("dns", workdir=tmp_path) as lab:
        ctl, c1, c2 = lab.ns("ctl"), lab.ns("c1"), lab.ns("c2")
        lab.link(ctl, c1, "eth1", "eth0", ["10.0.0.1/24"], ["10.0.0.2/24"])
        lab.link(ctl, c2, "eth2", "eth0", ["10.0.1.1/24"], ["10.0.1.2/24"])
        ctl.popen([CPN, "run", "-c", str(cfg)], name="cpn run", log=tmp_path / "cpn.log")

        def ask(ns_: Ns, server: str) -> str:
            res = ns_.run(["kdig", f"@{server}", "+short", "+timeout=1", "+retry=0",
                           "video.svc.cpn.example", "A"], check=False)
            return res.stdout.strip()

        wait_for(lambda: ask(c1, "10.0.0.1"), 20, "controller DNS answering in the lab")
        assert ask(c1, "10.0.0.1") == "10.0.1.10"  # behind R2 → MEC-1
        assert ask(c2, "10.0.1.1") == "10.0.2.10"  # behind R3 → MEC-2

        token = (tmp_path / "state" / "admin.token").read_text().strip()
        metric = {"site": "MEC-1", "service": "video", "l2": 1, "overloaded": True,
                  "l0": {"cpu_pct": 95}}
        put = ctl.run(["curl", "-sf", "-X", "PUT", "-H", f"Authorization: Bearer {token}",
                       "-H", "Content-Type: application/json", "-d", json.dumps(metric),
                       "http://127.0.0.1:8080/api/v1/metrics/MEC-1/video"], check=False)
        assert put.returncode == 0, put.stdout + put.stderr
        wait_for(lambda: ask(c1, "10.0.0.1") == "10.0.2.10", 5, "c1 moved to MEC-2")
        assert ask(c2, "10.0.1.1") == "10.0.2.10"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert lab.prefix not in listed
