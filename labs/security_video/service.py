"""Video-analytics stand-in: one MEC's service doing real CPU work per frame.

Rules:
- One worker thread serves frames and load jobs first-in first-out, as one analytics
  engine would; a frame costs ``--frame-work-ms`` of real CPU work (SHA-256 rounds over
  the frame), a load job costs what it asks for. So load really delays frames.
- Utilisation = busy time of the worker over the last ``--window-ms``, sampled every
  20 ms. Crossing ``--high`` (up) or ``--low`` (down, hysteresis) is reported at once;
  otherwise every ``--period-s``. Reports go to the site agent as one UDP line
  ``SERVICE UTIL_PCT QUEUE_DEPTH`` on 127.0.0.1:``--agent-udp`` (the agent's service-load
  port; it reports to the controller over mTLS at once on a threshold crossing), or —
  without an agent — to the controller's REST API as a CATS ``ComputeMetrics`` record
  (``--controller``); and to ``<workdir>/<site>-util``.
- Events (start, crossing, first frame) are JSON lines on stdout with monotonic ns; a
  crossing carries the moment the sampler saw it, and the agent is told before the line
  is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import queue
import socket
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from labs.security_video.wire import Frame, Job, decode, encode_result


def burn(work_s: float, data: bytes) -> None:
    """Real CPU work for ``work_s`` seconds of wall time."""
    end = time.perf_counter() + work_s
    h = hashlib.sha256(data)
    while time.perf_counter() < end:
        for _ in range(50):
            h = hashlib.sha256(h.digest() + data[:256])


def emit(ev: str, t: int | None = None, **fields: Any) -> None:
    """One event line; ``t`` (monotonic ns) when the event happened earlier than now."""
    print(json.dumps({"ev": ev, "t": t or time.monotonic_ns(), **fields}), flush=True)


class Engine:
    def __init__(self, site: str, frame_work_s: float, window_s: float) -> None:
        self.site = site
        self.frame_work_s = frame_work_s
        self.window_s = window_s
        self.jobs: queue.Queue[tuple[Frame | Job, tuple[str, int] | None]] = queue.Queue()
        self.busy: deque[tuple[float, float]] = deque()  # (start, end) perf_counter
        self.lock = threading.Lock()
        self.current_start: float | None = None
        self.frames = 0
        self.sock: socket.socket | None = None

    def utilisation(self) -> float:
        now = time.perf_counter()
        lo = now - self.window_s
        total = 0.0
        with self.lock:
            while self.busy and self.busy[0][1] < lo:
                self.busy.popleft()
            for s, e in self.busy:
                total += min(e, now) - max(s, lo)
            if self.current_start is not None:
                total += now - max(self.current_start, lo)
        return max(0.0, min(1.0, total / self.window_s)) * 100.0

    def work(self) -> None:
        pad = bytes(1024)
        while True:
            item, addr = self.jobs.get()
            start = time.perf_counter()
            with self.lock:
                self.current_start = start
            if isinstance(item, Frame):
                burn(self.frame_work_s, pad)
                assert self.sock is not None and addr is not None
                self.frames += 1
                if self.frames == 1:
                    emit("first_frame", site=self.site, seq=item.seq)
                self.sock.sendto(encode_result(item, time.monotonic_ns(), self.site), addr)
            else:
                burn(item.work_us / 1e6, pad)
            with self.lock:
                self.busy.append((start, time.perf_counter()))
                self.current_start = None


class Reporter:
    """Sends the latest metrics to the controller (REST), newest wins."""

    def __init__(self, url: str, token: str, site: str, service: str) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.site = site
        self.service = service
        self.latest: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)

    def offer(self, body: dict[str, Any]) -> None:
        try:
            self.latest.get_nowait()
        except queue.Empty:
            pass
        self.latest.put_nowait(body)

    def run(self) -> None:
        import httpx

        key = f"{self.site}/{self.service}"
        with httpx.Client(timeout=2.0, headers={"Authorization": f"Bearer {self.token}",
                                                "X-CPN-Reason": "video service load"}) as c:
            while True:
                body = self.latest.get()
                try:
                    r = c.put(f"{self.url}/api/v1/metrics/{key}", json=body)
                    if r.status_code >= 400:
                        emit("report_failed", status=r.status_code, body=r.text[:200])
                except httpx.HTTPError as exc:
                    emit("report_failed", error=str(exc))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--site", required=True)
    p.add_argument("--service", default="video")
    p.add_argument("--port", type=int, default=5004)
    p.add_argument("--frame-work-ms", type=float, default=8.0)
    p.add_argument("--window-ms", type=float, default=250.0)
    p.add_argument("--high", type=float, default=80.0)
    p.add_argument("--low", type=float, default=60.0)
    p.add_argument("--period-s", type=float, default=1.0)
    p.add_argument("--controller", default="", help="REST base URL of the controller")
    p.add_argument("--token-file", default="")
    p.add_argument("--workdir", default=".")
    p.add_argument("--agent-udp", type=int, default=0,
                   help="report load to the site agent on this 127.0.0.1 UDP port")
    a = p.parse_args(argv)

    eng = Engine(a.site, a.frame_work_ms / 1000, a.window_ms / 1000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("0.0.0.0", a.port))
    eng.sock = sock
    threading.Thread(target=eng.work, daemon=True, name="engine").start()

    reporter: Reporter | None = None
    if a.controller:
        token = Path(a.token_file).read_text().strip()
        reporter = Reporter(a.controller, token, a.site, a.service)
        threading.Thread(target=reporter.run, daemon=True, name="reporter").start()
    util_file = Path(a.workdir) / f"{a.site}-util"
    agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if a.agent_udp else None

    def sample() -> None:
        overloaded = False
        last_report = 0.0
        while True:
            time.sleep(0.02)
            u = eng.utilisation()
            t_cross = time.monotonic_ns()
            crossed = ""
            if not overloaded and u >= a.high:
                overloaded, crossed = True, "up"
            elif overloaded and u <= a.low:
                overloaded, crossed = False, "down"
            now = time.monotonic()
            if crossed or now - last_report >= a.period_s:
                last_report = now
                # the agent is told first, as a service's load hook would: the event
                # line and the file below are this lab's records, and each write can
                # wait for the GIL behind the busy engine thread (up to 5 ms a time)
                if agent is not None:
                    line = f"{a.service} {u:.1f} {eng.jobs.qsize()}"
                    agent.sendto(line.encode(), ("127.0.0.1", a.agent_udp))
                if crossed:
                    emit("crossing", t=t_cross, site=a.site, direction=crossed,
                         util=round(u, 1))
                util_file.write_text(f"{u:.1f}\n")
                if reporter is not None:
                    reporter.offer({
                        "site": a.site, "service": a.service, "source": "agent",
                        "l0": {"cpu_util_pct": round(u, 1), "queue": eng.jobs.qsize()},
                        "l1": {"cpu_free": round(1 - u / 100, 3)},
                        "l2": round(10 * (1 - u / 100), 2),
                        "overloaded": overloaded, "available": True,
                        "period_s": a.period_s, "window_s": a.window_ms / 1000,
                    })

    threading.Thread(target=sample, daemon=True, name="sampler").start()
    emit("ready", site=a.site, port=a.port)
    while True:
        data, addr = sock.recvfrom(65535)
        try:
            msg = decode(data)
        except ValueError:
            continue
        if isinstance(msg, Frame):
            eng.jobs.put((msg, addr))
        elif isinstance(msg, Job):
            eng.jobs.put((msg, None))


if __name__ == "__main__":
    sys.exit(main())
