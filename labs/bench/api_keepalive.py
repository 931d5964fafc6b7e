"""Bench: REST on one reused keep-alive connection — ms a request and GET/s on one core.

What is measured (issue #15: ≤ 2 ms a request; issue #19: ≥ 2,000 GET/s on one core):
the real app (``create_app`` on ``examples/gba.yaml``: every plug-in's routers, the
request-counting middleware, bearer-token auth with a token from the store's table, as
``cpn token create`` makes them) served by uvicorn with the HTTP implementation it picks
(``http_impl``; httptools when installed) on a socket made by
``controller.api.server.listen_socket`` — in a **server process of its own pinned to one
core** (``server_cpu``), the client (``http.client``, this process) pinned to the other.
Each round sends sequential authenticated requests on one connection:

- ``whoami``: ``GET /api/v1/whoami`` (auth, a small JSON answer) — the figure;
- ``sites``: ``GET /api/v1/sites`` (auth, a real object list: the example's sites with
  their fields, ~2.5 kB) — reported beside it.

Variants, alternated round by round (order reversed every other round): ``asyncio``
(the standard event loop) and ``uvloop`` (uvicorn's ``loop="uvloop"``), two server
processes on the same core, only one of them busy at a time. The product runs the API
on the controller's loop (``controller.runtime``), which is the standard asyncio loop
unless ``CPN_EVENT_LOOP=uvloop``; ``product_loop`` names which variant that is and the
figure is that variant's.

Server CPU per request = the server process's CPU time (``time.process_time`` of every
thread: uvicorn's loop, any worker thread, the store), read from the server over a pipe
before and after each batch; ``get_per_server_cpu_s`` = requests / that CPU time, what
one core serves. ``get_per_s`` is wall-clock (client and server on their own cores;
depressed on a busy machine). One request on a fresh connection and a few on a proto-0
socket (how the API socket used to be made: Nagle + delayed ACK, ~44 ms a request) are
kept for reference. Medians over rounds with the spread (min–max of the round figures)
and the load average before and after.
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-token-0123456789"
GOAL_MS = 2.0
GOAL_GET_PER_CPU_S = 2_000
PATHS = {"whoami": "/api/v1/whoami", "sites": "/api/v1/sites"}
LOOPS = ("asyncio", "uvloop")


def serve(loop: str, cpu: int | None) -> None:
    """The server process: prints ``{"port", "proto0_port", "http_impl"}`` once ready,
    then answers each line on stdin with its CPU seconds (``quit`` stops it)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # before any thread starts: they inherit it
    import asyncio

    import uvicorn

    from controller.api.app import create_app
    from controller.api.server import listen_socket
    from controller.auth import digest
    from controller.config import load_config
    from controller.runtime import Runtime, Settings

    with tempfile.TemporaryDirectory(prefix="cpn-bench-api-") as tmp:
        rt = Runtime(load_config(ROOT / "examples" / "gba.yaml"), Settings(state=Path(tmp)))
        rt.apply_config()
        rt.store.add_token(digest(TOKEN), "bench", "operator", None)
        sock = listen_socket("127.0.0.1", 0)
        old = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0: the old way
        old.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        old.bind(("127.0.0.1", 0))
        cfg = uvicorn.Config(create_app(rt), log_config=None, access_log=False,
                             lifespan="off")
        server = uvicorn.Server(cfg)

        async def main() -> None:
            task = asyncio.create_task(server.serve(sockets=[sock, old]))
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            print(json.dumps({"port": sock.getsockname()[1],
                              "proto0_port": old.getsockname()[1],
                              "http_impl": getattr(cfg.http_protocol_class, "__name__", "?"),
                              "loop": type(asyncio.get_running_loop()).__module__}),
                  flush=True)
            await task

        def control() -> None:
            for line in sys.stdin:
                if line.strip() == "quit":
                    break
                print(time.process_time(), flush=True)
            server.should_exit = True

        threading.Thread(target=control, daemon=True).start()
        if loop == "uvloop":
            import uvloop
            uvloop.run(main())
        else:
            asyncio.run(main())
        rt.store.close()


class _Server:
    """One server process (``serve``) and its control pipe."""

    def __init__(self, loop: str, cpu: int | None) -> None:
        args = [sys.executable, "-m", "labs.bench.api_keepalive", loop,
                "" if cpu is None else str(cpu)]
        self.proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        self.stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        line = self.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise RuntimeError(f"{loop} server did not start (exit {self.proc.returncode})")
        self.info: dict[str, Any] = json.loads(line)

    def cpu_s(self) -> float:
        self.stdin.write("cpu\n")
        self.stdin.flush()
        return float(self.stdout.readline())

    def close(self) -> None:
        try:
            self.stdin.write("quit\n")
            self.stdin.flush()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)


def _batch(port: int, path: str, requests: int) -> tuple[list[float], float]:
    """ms of each request on one warmed connection, and the batch's wall seconds (the
    client's garbage collector paused: this process holds every module ``cpn``
    imports, and its full collections would be counted as the server's time)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    gc.collect()
    gc.disable()
    try:
        conn.request("GET", path, headers=headers)  # connect + warm
        conn.getresponse().read()
        t0 = time.perf_counter()
        for _ in range(requests):
            t1 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            times.append((time.perf_counter() - t1) * 1000)
            if resp.status != 200:
                raise RuntimeError(f"GET {path} → {resp.status}")
        return times, time.perf_counter() - t0
    finally:
        gc.enable()
        conn.close()


def _fresh_ms(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        t0 = time.perf_counter()
        conn.request("GET", PATHS["whoami"], headers={"Authorization": f"Bearer {TOKEN}"})
        conn.getresponse().read()
        return (time.perf_counter() - t0) * 1000
    finally:
        conn.close()


def _spread(xs: list[float], nd: int = 3) -> dict[str, float]:
    return {"median": round(statistics.median(xs), nd), "min": round(min(xs), nd),
            "max": round(max(xs), nd)}


def product_loop() -> str:
    """The loop the controller serves the API on (``controller.runtime``)."""
    return "uvloop" if os.environ.get("CPN_EVENT_LOOP", "").lower() == "uvloop" else "asyncio"


def run(rounds: int = 5, requests: int = 2000, requests_old: int = 20,
        **_opts: Any) -> dict[str, Any]:
    load_before = os.getloadavg()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    mask = os.sched_getaffinity(0)
    loops = [lp for lp in LOOPS if lp == "asyncio" or _has_uvloop()]
    servers: dict[str, _Server] = {}
    keys = [(lp, p) for lp in loops for p in PATHS]
    per: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    rate: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    per_cpu: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    old_ms: list[float] = []
    fresh: list[float] = []
    try:
        for lp in loops:
            servers[lp] = _Server(lp, server_cpu)
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        for i in range(int(rounds)):
            order = keys if i % 2 == 0 else list(reversed(keys))
            for lp, p in order:
                srv = servers[lp]
                c0 = srv.cpu_s()
                times, wall = _batch(srv.info["port"], PATHS[p], int(requests))
                cpu = srv.cpu_s() - c0
                per[(lp, p)].append(statistics.median(times))
                rate[(lp, p)].append(int(requests) / wall)
                per_cpu[(lp, p)].append(int(requests) / cpu if cpu > 0 else 0.0)
            first = servers[loops[0]]
            t_old, _ = _batch(first.info["proto0_port"], PATHS["whoami"], int(requests_old))
            old_ms.append(statistics.median(t_old))
            fresh.append(_fresh_ms(first.info["port"]))
    finally:
        os.sched_setaffinity(0, mask)
        for srv in servers.values():
            srv.close()
    prod = product_loop() if product_loop() in loops else "asyncio"
    ms = statistics.median(per[(prod, "whoami")])
    gets = statistics.median(per_cpu[(prod, "whoami")])
    wall = statistics.median(rate[(prod, "whoami")])

    def table(d: dict[tuple[str, str], list[float]], nd: int) -> dict[str, Any]:
        return {lp: {p: _spread(d[(lp, p)], nd) for p in PATHS} for lp in loops}
    return {
        "bench": "api-keepalive", "requests_per_round": int(requests), "rounds": int(rounds),
        "http_impl": servers[loops[0]].info.get("http_impl") if servers else None,
        "server_cpu": server_cpu, "client_cpu": client_cpu, "product_loop": prod,
        "paths": PATHS,
        "reused_ms": table(per, 3),
        "get_per_s": table(rate, 0),
        "get_per_server_cpu_s": table(per_cpu, 0),
        "proto0_reused_ms": _spread(old_ms),
        "fresh_connection_ms": round(statistics.median(fresh), 3),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "figure": {"ms_per_request": round(ms, 3), "get_per_server_cpu_s": round(gets),
                   "get_per_s_wall": round(wall)},
        "unit": "median ms a request on a reused connection; GET /api/v1/whoami per "
                "server CPU-second (server process pinned to one core; met on these "
                "two) and per wall-second (client on the other core; falls with the "
                "machine's load)",
        "goal": {"ms_per_request": GOAL_MS, "get_per_server_cpu_s": GOAL_GET_PER_CPU_S},
        "met": ms <= GOAL_MS and gets >= GOAL_GET_PER_CPU_S,
    }


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]) if sys.argv[2:] and sys.argv[2] else None)
