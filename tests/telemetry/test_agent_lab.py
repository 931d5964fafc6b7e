"""Namespace lab (issue #3 'Show'): the real controller (``cpn run``) in a controller
namespace, ``cpn agent`` in a MEC namespace, reports over HTTPS with mutual TLS.

Proves: admitted reports land in state with compute identifiers (WP-3.1.2); a
threshold crossing is reported at once, not at the 30 s interval (GBA-6.3); a
hanging acquisition command is killed; a forged cert (other CA) fails the handshake;
a MEC-2 cert reporting as MEC-1 is refused; a revoked cert is refused without a
controller restart. Every refusal leaves a logged reason.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import TypeVar

import pytest

from controller.models import ComputeMetrics, ComputeResource
from controller.models.base import Entity
from labs.netns import Lab, wait_for
from telemetry.models import ComputeLifecycle
from telemetry.pki import CertificateAuthority
from tests.conftest import needs_netns

E = TypeVar("E", bound=Entity)
ROOT = Path(__file__).resolve().parents[2]
CPN = str(ROOT / ".venv/bin/cpn")
CTL = "10.77.1.1"

CLIENT = r"""
import json, ssl, sys, datetime, httpx
ca, cert, key, site, url = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
rep = {"site": site, "seq": 1, "sent_at": datetime.datetime.now(datetime.UTC).isoformat(),
       "cpu_pct": 99.0, "services": [{"service": "video", "util_pct": 99, "queue_depth": 1}]}
try:
    r = httpx.post(url, json=rep, verify=ctx, timeout=5)
    print(r.status_code, r.text)
except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
    print("TLSERROR", type(exc).__name__, exc)
"""


def _controller_cfg(tmp: Path, ca: Path) -> Path:
    p = tmp / "controller.yaml"
    p.write_text(f"""zone: cpn.example
sites:
  - {{name: MEC-1, kind: mec, region: r1}}
  - {{name: MEC-2, kind: mec, region: r2}}
telemetry:
  listen: {CTL}:8443
  ca_bundle: {ca}/ca.pem
  server_cert: {ca}/server.pem
  server_key: {ca}/server.key
  crl: [{ca}/crl.pem]
  check_s: 0.5
""")
    return p


def _agent_cfg(tmp: Path, ca: Path) -> Path:
    p = tmp / "agent.yaml"
    p.write_text(f"""site: MEC-1
controller: https://{CTL}:8443
cert: {ca}/sites/MEC-1.pem
key: {ca}/sites/MEC-1.key
ca: {ca}/ca.pem
interval_s: 30
thresholds: {{on_pct: 85, off_pct: 70}}
service_load_udp: 9870
price_per_hour: 1.2
energy_w: 450
services: [{{name: video}}]
resources:
  - {{name: mec1-gpu, description: "T4 GPUs", value: 2, extended: {{model: T4}}}}
  - name: mec1-hang
    description: "a probe that hangs"
    dynamic: true
    acquisition_command: "sleep 30 # hangmarker"
    interval_s: 0.3
""")
    return p


class StateReader:
    """Reads objects straight from the controller's SQLite file (another process owns
    the store; ``SqliteStore`` caches in memory, so it cannot observe foreign writes)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def get(self, cls: type[E], key: str) -> E | None:
        row = self.db.execute("SELECT value FROM objects WHERE kind=? AND key=?",
                              (cls.KIND, key)).fetchone()
        return cls.model_validate_json(row[0]) if row else None

    def close(self) -> None:
        self.db.close()


def _udp(ns: object, line: str) -> None:
    ns.run([sys.executable, "-c", "import socket,sys; socket.socket(socket.AF_INET, "  # type: ignore[attr-defined]
            "socket.SOCK_DGRAM).sendto(sys.argv[1].encode(), ('127.0.0.1', 9870))", line])


def _hang_procs(ns_name: str) -> int:
    import subprocess

    pids = subprocess.run(["ip", "netns", "pids", ns_name], capture_output=True,
                          text=True).stdout.split()
    n = 0
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        n += b"hangmarker" in cmd and cmd.startswith(b"/bin/sh")
    return n


@needs_netns
@pytest.mark.lab
def test_agent_to_controller_over_mtls_in_namespaces(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca = CertificateAuthority(ca_dir)
    ca.init(server_names=(CTL,))
    ca.issue("MEC-1")
    ca.issue("MEC-2")
    other = CertificateAuthority(tmp_path / "forged")
    other.init(server_names=(CTL,))
    other.issue("MEC-1")
    state = tmp_path / "state"
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    url = f"https://{CTL}:8443/v1/report"

    with Lab("tlm", workdir=tmp_path) as lab:
        ctl, mec1, mec2 = lab.ns("ctl"), lab.ns("mec1"), lab.ns("mec2")
        lab.link(ctl, mec1, "m1", "uplink", [f"{CTL}/24"], ["10.77.1.2/24"])
        lab.link(ctl, mec2, "m2", "uplink", ["10.77.2.1/24"], ["10.77.2.2/24"])
        mec2.run(["ip", "route", "add", "10.77.1.0/24", "via", "10.77.2.1"])
        ctl.sysctl("net.ipv4.ip_forward", 1)
        ctl.popen([CPN, "run", "--config", str(_controller_cfg(tmp_path, ca_dir)),
                   "--state", str(state), "--api", "127.0.0.1:18080", "--dns",
                   "127.0.0.1:15353"], log=tmp_path / "controller.log")
        log_file = state / "logs/cpn.jsonl"
        wait_for(lambda: log_file.exists() and "telemetry ingest listening"
                 in log_file.read_text(), 30, "controller ingest listening")
        mec1.popen([CPN, "agent", "--config", str(_agent_cfg(tmp_path, ca_dir))],
                   log=tmp_path / "agent.log")
        store = StateReader(state / "state.db")
        try:
            # start report admitted: site metrics, resource with compute id, lifecycle
            wait_for(lambda: store.get(ComputeMetrics, "MEC-1/*"), 20, "first report")
            res = store.get(ComputeResource, "MEC-1/mec1-gpu")
            assert res is not None and res.value == 2 and len(res.compute_id) == 36
            lc = store.get(ComputeLifecycle, res.compute_id)
            assert lc is not None and lc.site == "MEC-1"

            # threshold crossing → immediate report (the interval is 30 s)
            _udp(mec1, "video 40 1")
            _udp(mec1, "video 95 12")
            m = wait_for(lambda: (x := store.get(ComputeMetrics, "MEC-1/video")) and
                         x.overloaded and x, 10, "immediate threshold report")
            assert m.l0["util_pct"] == 95 and m.l0["queue_depth"] == 12
            _udp(mec1, "video 50 0")
            wait_for(lambda: (x := store.get(ComputeMetrics, "MEC-1/video")) and
                     not x.overloaded, 10, "cleared below off threshold")

            # the hanging acquisition command is killed at its interval, never piles up
            agent_log = tmp_path / "agent.log"
            wait_for(lambda: "killed" in agent_log.read_text(), 10, "hung command killed")
            assert _hang_procs(mec1.name) <= 1

            def post(ns: object, ca_pem: Path, cert: Path, site: str) -> str:
                return ns.run([sys.executable, str(client), str(ca_pem), str(cert),  # type: ignore[attr-defined, no-any-return]
                               str(cert.with_suffix(".key")), site, url]).stdout

            # forged: a cert for MEC-1 from another CA fails the TLS handshake
            out = post(mec2, ca_dir / "ca.pem", other.dir / "sites/MEC-1.pem", "MEC-1")
            assert out.startswith("TLSERROR"), out
            # a MEC-2 certificate cannot speak for MEC-1
            out = post(mec2, ca_dir / "ca.pem", ca_dir / "sites/MEC-2.pem", "MEC-1")
            assert out.startswith("403") and "MEC-2" in out, out
            # revoke MEC-2: refused without restarting the controller
            mec2_cert = ca_dir / "sites/MEC-2.pem"
            keep = tmp_path / "mec2.pem"
            keep.write_bytes(mec2_cert.read_bytes())
            keep.with_suffix(".key").write_bytes(mec2_cert.with_suffix(".key").read_bytes())
            ca.revoke("MEC-2")
            out = post(mec2, ca_dir / "ca.pem", keep, "MEC-2")
            assert out.startswith("403") and "revoked" in out, out
            assert store.get(ComputeMetrics, "MEC-2/*") is None

            records = [json.loads(x) for x in log_file.read_text().splitlines()]
            reasons = [r for r in records if r["level"] == "warning"]
            assert any("handshake" in r["content"] for r in reasons)
            assert any("revoked" in r.get("fields", {}).get("reason", "") for r in reasons)
            assert all({"time", "module", "pid", "process"} <= r.keys() for r in reasons)
        finally:
            store.close()
