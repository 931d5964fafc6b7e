"""Bench: threshold crossing → steer committed (the handover, issue #19 goal p99 ≤ 10 ms),
and agent threshold crossing → controller store commit (issue #3 goal ≤ 100 ms p99).

Part 1, handover (``handover_runs`` runs of the security-video lab, GBA-App.B: Mininet
routers with kernel SRv6, the OpenFlow access switch, GoBGP at both MECs, site agents,
the controller in its namespace — ``labs.security_video.scenario``, short phases): per
run, MEC-1's own utilisation sampler crossing the threshold (its ``crossing`` event,
monotonic ns) → the controller committing the headend's move to MEC-2 (``flows.jsonl``
``t_committed``, same clock). Stages per run: ``crossing → flows observes`` (UDP to the
agent, report over the kept-alive mTLS connection, ingest decode + CATS + store commit,
event bus, the flows pass starting) and ``observes → committed``, split by hand-off
(``split_ms``: decision + intent commit; → the reconciler's pass starting on its
dataplane thread, which flows hands it to at once, holding the event loop up to
``flows.program_wait_ms``; → the pass's status commit; → flows reading it back), plus
the reconciler's own ``plan/program/readback/pass/cpu_ms`` and the make-before-break
phases (make = the new egress SID, verify, switch = the headend's atomic replace,
break); ``stage_p50_ms`` holds their medians. MEC-1's agent shares the core MEC-1's load
generator saturates (a site agent runs on its site's node) at raised priority (``nice:
-5``, the agent option monitoring agents use; MEC-2's at the default); the controller,
another machine in a deployment, is pinned to the other core at nice +5 (beside MEC-2,
idle until the flow moves there, and yielding to it after; the lab's own default, for
its frame-latency comparison, keeps it on MEC-1's core): ``--opt controller_cpu=1`` puts
it on the saturated core at nice 0 (``none``: not pinned).
``figure`` is the p99 of
crossing → steer committed over the runs (with few runs the p99 is the maximum; ~35 s
a run: ``--opt handover_runs=10`` for the issue's ten runs). Runs
alternate the controller's store durability (``controller.store_sync`` full, the
default, and normal) so what durability costs the path shows (none of its commits is an
acknowledgement, so ``full`` should cost nothing).

Part 2, agent → commit (the original figure):

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

import itertools
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CTL = "10.79.0.1"
GOAL_P99_MS = 10.0

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


def _handover(runs: int, tmp: Path, controller_cpu: int | None) -> dict[str, Any]:
    from labs.security_video import report as rep
    from labs.security_video.scenario import Params, run_scenario

    total: list[float] = []
    observe: list[float] = []
    program: list[float] = []
    by_sync: dict[str, list[float]] = {"full": [], "normal": []}
    per_run: list[dict[str, Any]] = []
    for i in range(runs):
        sync = "full" if i % 2 == 0 else "normal"  # A/B: the store's durability modes
        data = run_scenario(tmp / f"handover-{i}", Params(steer=True, before_s=2.0,
                                                          after_s=2.0, store_sync=sync,
                                                          controller_cpu=controller_cpu))
        res = rep.analyse(data)
        t_load = next((e["t"] for e in data["events"].get("loadgen", [])
                       if e.get("ev") == "load_start"), 0)
        t_cross = next((e["t"] for e in data["events"].get("MEC-1", [])
                        if e.get("ev") == "crossing" and e.get("direction") == "up"
                        and e["t"] >= t_load), None)
        move = next((d for d in data["decisions"] if d.get("move") and d.get("committed")),
                    None)
        ms = res["times_ms"]["crossing_to_steer_committed"]
        row: dict[str, Any] = {"store_sync": sync, "crossing_to_steer_committed_ms": ms,
                               "frames_lost": res["frames"]["lost"]}
        if ms is not None and ms < 0:
            # the flow moved before MEC-1's own sampler crossed (e.g. a busy machine
            # pushed its utilisation over the threshold before the load started): not a
            # measurement of this path
            row["moved_before_crossing"] = True
            ms = None
        if ms is not None:
            total.append(ms)
            by_sync[sync].append(ms)
        if move is not None and t_cross is not None and ms is not None:
            obs = (move["t_observed"] - t_cross) / 1e6
            row["crossing_to_observed_ms"] = round(obs, 2)
            row["observed_to_committed_ms"] = round(
                (move["t_committed"] - move["t_observed"]) / 1e6, 2)
            row["program_ms"] = move.get("program_ms")
            if move.get("t_decided"):
                row["decide_ms"] = round((move["t_decided"] - move["t_observed"]) / 1e6, 2)
            row["reconciler_pass"] = stages = _pass_stages(tmp / f"handover-{i}", move)
            row["split_ms"] = _split(move, stages)
            observe.append(obs)
            program.append((move["t_committed"] - move["t_observed"]) / 1e6)
        per_run.append(row)
    return {"runs": per_run, "measured": len(total),
            "p50_ms": round(_pct(total, 50), 2) if total else None,
            "p99_ms": round(_pct(total, 99), 2) if total else None,
            "p50_ms_by_store_sync": {k: round(_pct(v, 50), 2) if v else None
                                     for k, v in by_sync.items()},
            "stage_p50_ms": {
                "crossing_to_observed": round(_pct(observe, 50), 2) if observe else None,
                "observed_to_committed": round(_pct(program, 50), 2) if program else None,
                **_stage_medians(per_run)}}


def _stage_medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median over the runs of each hand-off, of the reconciler's pass (wall, CPU) and
    of each make-before-break phase."""
    got: dict[str, list[float]] = {}
    for row in rows:
        for k, v in (row.get("split_ms") or {}).items():
            got.setdefault(k, []).append(v)
        rp = row.get("reconciler_pass") or {}
        for k in ("pass_ms", "cpu_ms", "plan_ms"):
            if rp.get(k) is not None:
                got.setdefault(f"reconciler_{k}", []).append(rp[k])
        for step in rp.get("steps") or []:
            phase, ms = step.split(":", 1)[0], float(step.rsplit(" ", 1)[1])
            got.setdefault(f"mbb_{phase}_ms", []).append(ms)
    return {k: round(_pct(v, 50), 2) for k, v in got.items()}


def _split(move: dict[str, Any], stages: dict[str, Any] | None) -> dict[str, float]:
    """observed → committed by hand-off (one clock, the controller's monotonic ns):
    the flows pass up to its intent commit, the commit → the reconciler's pass starting
    (flows hands the pass to the reconciler's thread), the pass up to its status commit,
    flows reading that status back, flows finishing."""
    marks = [("observed", move.get("t_observed")),
             ("intent_committed", move.get("t_intent_committed")),
             ("pass_started", (stages or {}).get("started_ns")),
             ("status_committed", (stages or {}).get("status_ns")),
             ("status_read", move.get("t_status_read")),
             ("committed", move.get("t_committed"))]
    out: dict[str, float] = {}
    for (a, ta), (b, tb) in itertools.pairwise(marks):
        if ta and tb:
            out[f"{a}_to_{b}"] = round((tb - ta) / 1e6, 2)
    return out


def _pass_stages(workdir: Path, move: dict[str, Any]) -> dict[str, Any] | None:
    """The intent reconciler's own split of the pass that programmed the move: its
    ``intent programmed`` key event whose pass started between the flows pass observing
    the metrics and committing the move (plan, program, read back, pass, CPU, steps)."""
    log = workdir / "state" / "logs" / "cpn.jsonl"
    if not log.exists():
        return None
    lo, hi = move.get("t_observed") or 0, move.get("t_committed") or 0
    for line in log.read_text().splitlines():
        e = json.loads(line) if line.strip() else {}
        f = e.get("fields", {})
        if e.get("content") == "intent programmed" and lo <= f.get("started_ns", -1) <= hi:
            return {k: f.get(k) for k in ("plan_ms", "program_ms", "readback_ms", "pass_ms",
                                          "cpu_ms", "steps", "started_ns", "status_ns")}
    return None


def run(crossings: int = 40, gap_ms: float = 150, handover_runs: int = 4,
        controller_cpu: int | str | None = 0, **_opts: Any) -> dict[str, Any]:
    load_before = os.getloadavg()
    cpu = None if controller_cpu in (None, "none", "") else int(controller_cpu)
    with tempfile.TemporaryDirectory(prefix="cpn-bench-handover-") as tmp_h:
        handover = _handover(int(handover_runs), Path(tmp_h), cpu) if int(handover_runs) \
            else {}
        handover["controller_cpu"] = cpu
    agent = _agent_to_commit(int(crossings), float(gap_ms))
    p99 = handover.get("p99_ms")
    return {"bench": "threshold-latency", "handover": handover, "agent_to_commit": agent,
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "figure": p99, "unit": "ms, p99 threshold crossing → steer committed",
            "goal": GOAL_P99_MS, "met": p99 is not None and p99 <= GOAL_P99_MS}


def _agent_to_commit(crossings: int, gap_ms: float) -> dict[str, Any]:
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
    return {"crossings": len(sends), "measured": len(lat),
            "missed": missed,
            "p50_ms": round(_pct(lat, 50), 2) if lat else None,
            "p99_ms": round(_pct(lat, 99), 2) if lat else None,
            "max_ms": round(max(lat), 2) if lat else None,
            "goal_p99_ms": 100, "log_resolution_ms": 1, "report_interval_s": 60}
