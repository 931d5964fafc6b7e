"""``cpn bench dns``: embedded responder vs Knot DNS, same zone, same queries, one run.

Rules:
- Both servers hold the same compute zone (Knot is fed by CPN's RFC 2136 publisher)
  and run pinned to the same single core (``server_cpu``); dnsperf runs on another
  core (``client_cpu``) when the machine has one. Knot runs with 1 UDP worker.
- Queries: a fixed mix of steered A, SVCB, SRV, TXT, per-instance A and one NXDOMAIN
  name. Each server gets ``duration_s`` of dnsperf (``clients``, ``outstanding``).
  ``ecs_qps`` is an extra embedded run with an ECS option on every query.
- Besides measured qps (which on a shared machine mostly reflects how much CPU the
  server got), each server's CPU seconds during its run give ``cpu_us_per_query`` and
  ``capacity_qps`` = answers per CPU-second: what one dedicated core would sustain.
- Latency: a ComputeMetrics write flipping MEC-1 between overloaded and healthy, timed
  until the embedded responder (ECS 10.0.0.0/24) / Knot return the other instance;
  ``trials`` flips, p50 and max reported in ms, measured from before the store write
  (``store_commit_latency`` is the part spent committing to SQLite).
- Everything on 127.0.0.1 on free ports; every process started here is stopped by pid.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

QUERIES = [
    "video.svc.cpn.example A",
    "video.svc.cpn.example SVCB",
    "_video._udp.svc.cpn.example SRV",
    "mec-1.video.svc.cpn.example TXT",
    "mec-2.video.svc.cpn.example A",
    "_compute.mec-1.cpn.example TXT",
    "nothing.cpn.example A",
]
ECS_HEX = "00011800" + "0a0000"  # family 1, source /24, scope 0, 10.0.0.0


def _dnsperf(port: int, qfile: Path, duration_s: float, clients: int, outstanding: int,
             cpu: int | None, extra: list[str] | None = None) -> dict[str, float]:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile), "-l",
           str(duration_s), "-c", str(clients), "-T", "1", "-q", str(outstanding), "-t", "2",
           *(extra or [])]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30)
    text = out.stdout
    qps = re.search(r"Queries per second:\s+([\d.]+)", text)
    lost = re.search(r"Queries lost:\s+(\d+)", text)
    lat = re.search(r"Average Latency \(s\):\s+([\d.]+)", text)
    if qps is None:
        raise RuntimeError(f"dnsperf failed: {out.stderr.strip() or text[-500:]}")
    return {"qps": round(float(qps.group(1))), "lost": int(lost.group(1)) if lost else -1,
            "avg_latency_ms": round(float(lat.group(1)) * 1000, 3) if lat else -1.0}


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by ``pid`` (default: this process)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(fn: Any, pid: int | None, *args: Any) -> dict[str, float]:
    """Run dnsperf; add the server's CPU cost per query and its CPU-bound capacity
    (answers per CPU-second), which does not depend on how busy the machine is."""
    c0 = _cpu_s(pid)
    res: dict[str, float] = fn(*args)
    cpu = _cpu_s(pid) - c0
    answered = res["qps"] * args[2]
    res["server_cpu_s"] = round(cpu, 2)
    res["cpu_us_per_query"] = round(cpu / answered * 1e6, 2) if answered else -1.0
    res["capacity_qps"] = round(answered / cpu) if cpu > 0 else -1
    return res


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": -1.0, "max_ms": -1.0, "n": 0}
    return {"p50_ms": round(statistics.median(values), 2), "max_ms": round(max(values), 2),
            "n": len(values)}


async def _bench(duration_s: float, clients: int, outstanding: int, trials: int,
                 server_cpu: int, client_cpu: int | None, work: Path) -> dict[str, Any]:
    import dns.edns
    import dns.message
    import dns.query

    from controller.models import ComputeMetrics
    from controller.runtime import Runtime, Settings
    from dns_compute.component import DnsComponent
    from labs.dns_sample import dns_section, entities, overloaded
    from labs.knot import KnotServer, free_port

    qfile = work / "queries.txt"
    qfile.write_text("\n".join(QUERIES) + "\n")
    knot = KnotServer(work / "knot", free_port(), udp_workers=1)
    knot.start()
    rt = Runtime(None, Settings(dns=("127.0.0.1", free_port()), state=work / "ctl"))
    try:
        subprocess.run(["taskset", "-pc", str(server_cpu), str(knot.proc.pid)],  # type: ignore[union-attr]
                       capture_output=True, check=False)
        with rt.store.transaction("bench", "sample topology") as txn:
            for obj in entities():
                txn.put(obj)
        comp = DnsComponent(dns_section(knot={"server": f"127.0.0.1:{knot.port}",
                                              "tsig_name": knot.key_name,
                                              "tsig_secret": knot.secret}))
        await rt.start([comp])
        assert comp.server is not None and comp.publisher is not None
        port = comp.server.port
        for _ in range(200):  # wait for the first publish
            if comp.publisher.last is not None:
                break
            await asyncio.sleep(0.02)
        if comp.publisher.last is None:
            raise RuntimeError(f"publishing to Knot failed: {comp.publisher.last_error}")

        emb = await asyncio.to_thread(_measured, _dnsperf, None, port, qfile, duration_s,
                                      clients, outstanding, client_cpu)
        ecs = await asyncio.to_thread(_measured, _dnsperf, None, port, qfile, duration_s,
                                      clients, outstanding, client_cpu,
                                      ["-E", f"8:{ECS_HEX}"])
        kn = await asyncio.to_thread(_measured, _dnsperf, knot.proc.pid,  # type: ignore[union-attr]
                                     knot.port, qfile, duration_s, clients, outstanding,
                                     client_cpu)

        q_ecs = dns.message.make_query("video.svc.cpn.example", "A", use_edns=0, options=[
            dns.edns.ECSOption.from_text("10.0.0.0/24")])
        q_plain = dns.message.make_query("video.svc.cpn.example", "A")

        def watch(p: int, q: dns.message.Message, want: str, t0: float) -> float | None:
            """Poll from a thread: the controller's loop (busy publishing to Knot) must
            not sit between the responder's answer and our clock."""
            while time.perf_counter() < t0 + 5.0:
                r = dns.query.udp(q, "127.0.0.1", port=p, timeout=1)
                if r.answer and str(r.answer[0][0]) == want:
                    return (time.perf_counter() - t0) * 1000
                time.sleep(0.0005)
            return None

        healthy = next(e for e in entities()
                       if isinstance(e, ComputeMetrics) and e.site == "MEC-1")
        emb_ms: list[float] = []
        knot_ms: list[float] = []
        commit_ms: list[float] = []
        for i in range(trials):
            metric = overloaded("MEC-1") if i % 2 == 0 else healthy
            want = "10.0.2.10" if i % 2 == 0 else "10.0.1.10"
            t0 = time.perf_counter()
            with rt.store.transaction("bench", "flip MEC-1 load") as txn:
                txn.put(metric.model_copy(update={"updated_at": metric.updated_at}))
            commit_ms.append((time.perf_counter() - t0) * 1000)
            # Each server is watched by its own task, so a slow answer from one does
            # not delay noticing the other.
            e_ms, k_ms = await asyncio.gather(
                asyncio.to_thread(watch, port, q_ecs, want, t0),
                asyncio.to_thread(watch, knot.port, q_plain, want, t0))
            if e_ms is not None:
                emb_ms.append(e_ms)
            if k_ms is not None:
                knot_ms.append(k_ms)
    finally:
        await rt.stop()
        rt.store.close()
        knot.stop()
    ratio = round(emb["qps"] / kn["qps"], 3) if kn["qps"] else 0.0
    return {
        "bench": "dns",
        "embedded_qps": emb["qps"], "knot_qps": kn["qps"], "ratio": ratio,
        "embedded_ecs_qps": ecs["qps"],
        "embedded_lost": emb["lost"], "knot_lost": kn["lost"],
        "embedded_capacity_qps": emb["capacity_qps"], "knot_capacity_qps": kn["capacity_qps"],
        "capacity_ratio": round(emb["capacity_qps"] / kn["capacity_qps"], 3)
        if kn["capacity_qps"] > 0 else 0.0,
        "embedded_cpu_us_per_query": emb["cpu_us_per_query"],
        "knot_cpu_us_per_query": kn["cpu_us_per_query"],
        "embedded_ecs_capacity_qps": ecs["capacity_qps"],
        "embedded_avg_latency_ms": emb["avg_latency_ms"],
        "knot_avg_latency_ms": kn["avg_latency_ms"],
        "change_latency_embedded": _pct(emb_ms), "change_latency_knot": _pct(knot_ms),
        "store_commit_latency": _pct(commit_ms),
        "goal": {"qps": 50_000, "ratio": 0.25, "embedded_ms": 50, "knot_ms": 500},
        "met": {"qps": emb["qps"] >= 50_000, "ratio": ratio >= 0.25,
                "embedded_ms": bool(emb_ms) and max(emb_ms) <= 50,
                "knot_ms": bool(knot_ms) and max(knot_ms) <= 500},
        "setup": {"duration_s": duration_s, "clients": clients, "outstanding": outstanding,
                  "server_cpu": server_cpu, "client_cpu": client_cpu, "trials": trials,
                  "knot_udp_workers": 1, "cpus": os.cpu_count(),
                  "loadavg_1m": round(os.getloadavg()[0], 2)},
    }


def run(duration_s: float = 5.0, clients: int = 1, outstanding: int = 200, trials: int = 10,
        server_cpu: int = 0, client_cpu: int | None = None, **_: Any) -> dict[str, Any]:
    """Run the bench (see module rules) and return its figures."""
    ncpu = os.cpu_count() or 1
    if client_cpu is None and ncpu > 1:
        client_cpu = 1 if server_cpu != 1 else 0
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {server_cpu})  # this thread and every thread it starts
    try:
        with tempfile.TemporaryDirectory(prefix="cpn-bench-dns-") as tmp:
            return asyncio.run(_bench(duration_s, clients, outstanding, trials, server_cpu,
                                      client_cpu, Path(tmp)))
    finally:
        os.sched_setaffinity(0, before)
