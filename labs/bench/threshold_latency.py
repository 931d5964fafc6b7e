"""Bench: agent threshold crossing → controller store commit, p50/p99 (goal ≤ 100 ms p99).

Setup (network namespaces, real processes): ``cpn run`` with a ``telemetry:``
section in a controller namespace; ``cpn agent`` (report interval 60 s, so only the
threshold path can deliver in time) in a MEC namespace, connected by a veth. A helper
in the MEC namespace plays the local video service: it writes ``video 95 N`` then
``video 50 N`` to the agent's service-load UDP port, ``gap_ms`` apart, recording the
wall-clock send time of each.

What is measured: send time of the datagram that crosses the threshold → the time of
the controller's ``overload state changed`` key event, which is logged right after
the store transaction committing the new ``ComputeMetrics`` (GBT-8.4 JSON log, ms
resolution; all namespaces share one clock). Includes: UDP to the agent, threshold
check, report build + JSON, HTTPS over the agent's kept-alive mTLS connection, h11,
decode + validate + CATS + SQLite commit. Excludes the first TLS handshake.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CTL = "10.79.0.1"

SERVICE = r"""
import json, socket, sys, time
n, gap = int(sys.argv[1]), float(sys.argv[2]) / 1000
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"video 40 0", ("127.0.0.1", 9871)); time.sleep(1.0)
out = []
for i in range(n):
    for util, high in ((95, True), (50, False)):
        t = time.time()
        s.sendto(f"video {util} {i}".encode(), ("127.0.0.1", 9871))
        out.append([t, high])
        time.sleep(gap)
print(json.dumps(out))
"""


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def run(crossings: int = 100, gap_ms: float = 150, **_opts: Any) -> dict[str, Any]:
    from labs.netns import Lab, wait_for
    from telemetry.pki import CertificateAuthority

    cpn = str(ROOT / ".venv/bin/cpn")
    with tempfile.TemporaryDirectory(prefix="cpn-bench-thr-") as tmp_s:
        tmp = Path(tmp_s)
        ca = CertificateAuthority(tmp / "ca")
        ca.init(server_names=(CTL,))
        ca.issue("MEC-1")
        (tmp / "ctl.yaml").write_text(f"""zone: cpn.example
sites: [{{name: MEC-1, kind: mec, region: r1}}]
telemetry:
  listen: {CTL}:8443
  ca_bundle: {ca.dir}/ca.pem
  server_cert: {ca.dir}/server.pem
  server_key: {ca.dir}/server.key
  crl: [{ca.dir}/crl.pem]
""")
        (tmp / "agent.yaml").write_text(f"""site: MEC-1
controller: https://{CTL}:8443
cert: {ca.dir}/sites/MEC-1.pem
key: {ca.dir}/sites/MEC-1.key
ca: {ca.dir}/ca.pem
interval_s: 60
service_load_udp: 9871
services: [{{name: video}}]
collectors: [mem]
""")
        (tmp / "svc.py").write_text(SERVICE)
        state = tmp / "state"
        with Lab("thr", workdir=tmp) as lab:
            ctl, mec = lab.ns("ctl"), lab.ns("mec")
            lab.link(ctl, mec, "m1", "uplink", [f"{CTL}/24"], ["10.79.0.2/24"])
            ctl.popen([cpn, "run", "--config", str(tmp / "ctl.yaml"), "--state", str(state),
                       "--api", "127.0.0.1:18081", "--dns", "127.0.0.1:15354",
                       "--log-level", "key"], log=tmp / "ctl.log")
            log = state / "logs/cpn.jsonl"
            wait_for(lambda: log.exists() and "telemetry ingest listening" in log.read_text(),
                     60, "controller ingest")
            mec.popen([cpn, "agent", "--config", str(tmp / "agent.yaml")],
                      log=tmp / "agent.log")
            wait_for(lambda: "compute onboarded" in log.read_text() or
                     "overload state changed" in log.read_text(), 60, "agent first report")
            sends = json.loads(mec.run([sys.executable, str(tmp / "svc.py"), str(crossings),
                                        str(gap_ms)], timeout=600).stdout)
            time.sleep(0.5)
            events = []
            for line in log.read_text().splitlines():
                rec = json.loads(line)
                f = rec.get("fields", {})
                if rec["content"] == "overload state changed" and f.get("service") == "video":
                    ts = datetime.fromisoformat(rec["time"].replace("Z", "+00:00")).timestamp()
                    events.append((ts, bool(f["overloaded"])))
    lat: list[float] = []
    missed = 0
    j = 0
    for t_send, high in sends:
        while j < len(events) and (events[j][0] < t_send - 0.002 or events[j][1] != high):
            j += 1
        if j >= len(events) or events[j][0] - t_send > gap_ms / 1000:
            missed += 1
            continue
        lat.append(max(events[j][0] - t_send, 0.0) * 1000)
        j += 1
    return {"bench": "threshold-latency", "crossings": len(sends), "measured": len(lat),
            "missed": missed,
            "p50_ms": round(_pct(lat, 50), 2) if lat else None,
            "p99_ms": round(_pct(lat, 99), 2) if lat else None,
            "max_ms": round(max(lat), 2) if lat else None,
            "goal_p99_ms": 100, "log_resolution_ms": 1, "report_interval_s": 60}
