"""Bench: REST latency of sequential requests on one reused keep-alive connection.

What is measured (issue #15, goal ≤ 2 ms a request): the real app (``create_app`` on
``examples/gba.yaml``) served by uvicorn on loopback, two listening sockets side by
side — A made with proto 0 (how the API socket used to be made: asyncio then leaves
Nagle on, and a response written in two segments waits for the client's delayed ACK)
and B made by ``controller.api.server.listen_socket`` (``IPPROTO_TCP`` ⇒ asyncio sets
``TCP_NODELAY``). Rounds alternate A and B; each round sends ``requests`` sequential
``GET /api/v1/whoami`` on one ``http.client`` connection, and one request each on a
fresh connection for reference. Figures are medians over rounds with the spread
(min–max of the round medians); ``load_avg_1m`` says how busy the machine was.
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


def _serve(rt: Runtime, socks: list[socket.socket], ready: threading.Event,
           stop: threading.Event) -> None:
    async def main() -> None:
        cfg = uvicorn.Config(create_app(rt), log_config=None, access_log=False,
                             lifespan="off")
        server = uvicorn.Server(cfg)
        task = asyncio.create_task(server.serve(sockets=socks))
        while not server.started:
            await asyncio.sleep(0.01)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.should_exit = True
        await task

    asyncio.run(main())


def _round(port: int, requests: int) -> tuple[float, float]:
    """(median ms per request on one connection, ms of one fresh-connection request)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    try:
        for _ in range(requests):
            t0 = time.perf_counter()
            conn.request("GET", "/api/v1/whoami", headers=headers)
            resp = conn.getresponse()
            resp.read()
            times.append((time.perf_counter() - t0) * 1000)
            if resp.status != 200:
                raise RuntimeError(f"GET /api/v1/whoami → {resp.status}")
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
    return statistics.median(times[1:] or times), once


def run(rounds: int = 6, requests: int = 50, goal_ms: float = 2.0,
        **_opts: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cpn-bench-api-") as tmp:
        rt = Runtime(load_config(ROOT / "examples" / "gba.yaml"), Settings(state=Path(tmp)))
        rt.apply_config()
        rt.store.add_token(digest(TOKEN), "bench", "operator", None)
        old = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0: the old way
        old.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        old.bind(("127.0.0.1", 0))
        new = listen_socket("127.0.0.1", 0)
        ports = {"proto0": old.getsockname()[1], "ipproto_tcp": new.getsockname()[1]}
        ready, stop = threading.Event(), threading.Event()
        th = threading.Thread(target=_serve, args=(rt, [old, new], ready, stop), daemon=True)
        th.start()
        if not ready.wait(20):
            raise RuntimeError("uvicorn did not start")
        per: dict[str, list[float]] = {k: [] for k in ports}
        fresh: dict[str, list[float]] = {k: [] for k in ports}
        try:
            for i in range(rounds):
                order = list(ports) if i % 2 == 0 else list(reversed(ports))
                for name in order:
                    med, once = _round(ports[name], requests)
                    per[name].append(med)
                    fresh[name].append(once)
        finally:
            stop.set()
            th.join(10)
            rt.store.close()
    figure = statistics.median(per["ipproto_tcp"])
    return {
        "bench": "api-keepalive", "requests_per_round": requests, "rounds": rounds,
        "reused_ms": {k: round(statistics.median(v), 3) for k, v in per.items()},
        "reused_spread_ms": {k: [round(min(v), 3), round(max(v), 3)] for k, v in per.items()},
        "fresh_connection_ms": {k: round(statistics.median(v), 3) for k, v in fresh.items()},
        "load_avg_1m": os.getloadavg()[0],
        "figure": round(figure, 3), "unit": "ms per request on a reused connection",
        "goal": goal_ms, "met": figure <= goal_ms,
    }
