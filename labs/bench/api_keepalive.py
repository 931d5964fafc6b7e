"""Bench: REST on one reused keep-alive connection — ms a request and GET/s per CPU-second.

What is measured (issue #15: ≤ 2 ms a request; issue #19: ≥ 2,000 GET/s on one core):
the real app (``create_app`` on ``examples/gba.yaml``, every plug-in's routers, the
request-counting middleware, bearer-token auth) served by uvicorn on loopback with the
HTTP implementation uvicorn picks (``http_impl``; httptools when installed), two
listening sockets side by side — A made with proto 0 (how the API socket used to be
made: asyncio then leaves Nagle on, and a response written in two segments waits for
the client's delayed ACK) and B made by ``controller.api.server.listen_socket``
(``IPPROTO_TCP`` ⇒ ``TCP_NODELAY``), the product's. Rounds alternate A and B; each
round sends sequential authenticated ``GET /api/v1/whoami`` on one ``http.client``
connection (``requests`` on B, ``requests_old`` on A: each of A's costs ~44 ms), and
one request on a fresh connection for reference.

Server CPU per request = this process's CPU time minus the client thread's own, over
B's requests (uvicorn's loop thread, the worker thread that runs the handler, the
store): ``get_per_cpu_s`` = requests / that CPU time, what one core could serve.
Figures are medians over rounds with the spread (min–max of the round medians) and the
load average before and after.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from controller.api.app import create_app
from controller.api.server import listen_socket
from controller.auth import digest
from controller.config import load_config
from controller.runtime import Runtime, Settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-token-0123456789"
GOAL_MS = 2.0
GOAL_GET_PER_CPU_S = 2_000


def _serve(rt: Runtime, socks: list[socket.socket], ready: threading.Event,
           stop: threading.Event, info: dict[str, Any]) -> None:
    async def main() -> None:
        cfg = uvicorn.Config(create_app(rt), log_config=None, access_log=False,
                             lifespan="off")
        server = uvicorn.Server(cfg)
        task = asyncio.create_task(server.serve(sockets=socks))
        while not server.started:
            await asyncio.sleep(0.01)
        info["http_impl"] = getattr(cfg.http_protocol_class, "__name__", "?")
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.should_exit = True
        await task

    asyncio.run(main())


def _round(port: int, requests: int) -> tuple[float, float, float, float]:
    """(median ms per request on one connection, requests/s, server CPU s, ms of one
    fresh-connection request)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    try:
        conn.request("GET", "/api/v1/whoami", headers=headers)  # connect + warm
        conn.getresponse().read()
        c0 = time.process_time() - time.thread_time()
        t0 = time.perf_counter()
        for _ in range(requests):
            t1 = time.perf_counter()
            conn.request("GET", "/api/v1/whoami", headers=headers)
            resp = conn.getresponse()
            resp.read()
            times.append((time.perf_counter() - t1) * 1000)
            if resp.status != 200:
                raise RuntimeError(f"GET /api/v1/whoami → {resp.status}")
        wall = time.perf_counter() - t0
        cpu = time.process_time() - time.thread_time() - c0
    finally:
        conn.close()
    fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        t0 = time.perf_counter()
        fresh.request("GET", "/api/v1/whoami", headers=headers)
        fresh.getresponse().read()
        once = (time.perf_counter() - t0) * 1000
    finally:
        fresh.close()
    return statistics.median(times), requests / wall, cpu, once


def _spread(xs: list[float], nd: int = 3) -> dict[str, float]:
    return {"median": round(statistics.median(xs), nd), "min": round(min(xs), nd),
            "max": round(max(xs), nd)}


def run(rounds: int = 6, requests: int = 500, requests_old: int = 30,
        **_opts: Any) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cpn-bench-api-") as tmp:
        rt = Runtime(load_config(ROOT / "examples" / "gba.yaml"), Settings(state=Path(tmp)))
        rt.apply_config()
        rt.store.add_token(digest(TOKEN), "bench", "operator", None)
        old = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0: the old way
        old.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        old.bind(("127.0.0.1", 0))
        new = listen_socket("127.0.0.1", 0)
        ports = {"proto0": old.getsockname()[1], "ipproto_tcp": new.getsockname()[1]}
        counts = {"proto0": int(requests_old), "ipproto_tcp": int(requests)}
        ready, stop = threading.Event(), threading.Event()
        info: dict[str, Any] = {}
        th = threading.Thread(target=_serve, args=(rt, [old, new], ready, stop, info),
                              daemon=True)
        th.start()
        if not ready.wait(20):
            raise RuntimeError("uvicorn did not start")
        per: dict[str, list[float]] = {k: [] for k in ports}
        rate: dict[str, list[float]] = {k: [] for k in ports}
        per_cpu: dict[str, list[float]] = {k: [] for k in ports}
        fresh: dict[str, list[float]] = {k: [] for k in ports}
        try:
            for i in range(int(rounds)):
                order = list(ports) if i % 2 == 0 else list(reversed(ports))
                for name in order:
                    med, rps, cpu, once = _round(ports[name], counts[name])
                    per[name].append(med)
                    rate[name].append(rps)
                    per_cpu[name].append(counts[name] / cpu if cpu > 0 else 0.0)
                    fresh[name].append(once)
        finally:
            stop.set()
            th.join(10)
            rt.store.close()
    ms = statistics.median(per["ipproto_tcp"])
    gets = statistics.median(per_cpu["ipproto_tcp"])
    return {
        "bench": "api-keepalive", "requests_per_round": counts, "rounds": int(rounds),
        "http_impl": info.get("http_impl"),
        "reused_ms": {k: _spread(v) for k, v in per.items()},
        "get_per_s": {k: _spread(v, 0) for k, v in rate.items()},
        "get_per_server_cpu_s": {k: _spread(v, 0) for k, v in per_cpu.items()},
        "fresh_connection_ms": {k: round(statistics.median(v), 3) for k, v in fresh.items()},
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "figure": {"ms_per_request": round(ms, 3), "get_per_server_cpu_s": round(gets)},
        "unit": "median ms a request on a reused connection; GET/s per server CPU-second",
        "goal": {"ms_per_request": GOAL_MS, "get_per_server_cpu_s": GOAL_GET_PER_CPU_S},
        "met": ms <= GOAL_MS and gets >= GOAL_GET_PER_CPU_S,
    }
