"""The site agent loop: collect → report over mTLS, periodically and on threshold.

Rules:
- One report in flight at a time; a threshold crossing (any util rising to
  ``on_pct`` or falling below ``off_pct`` after that) wakes the sender at once, so
  a spike is never hidden by the interval (issue #3).
- Each dynamic resource runs its acquisition command on its own interval, killed
  at that interval; bad output or a failure is logged and the last value kept.
- A failed send is logged and retried at the next period; the agent never exits
  on bad input or a controller outage.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.errors import CpnError, ValidationError
from telemetry.agent.collect import ProcCollector, parse_acquisition, run_acquisition
from telemetry.agent.config import AgentConfig, AgentResource, load_agent_config
from telemetry.agent.service_load import LoadReceiver, parse_load_line
from telemetry.grading import Benchmark
from telemetry.models import Report, ResourceSample, ServiceLoad

log = logging.getLogger("cpn.telemetry.agent")


class ThresholdWatch:
    """Per-signal high/low state; ``update`` returns True on a crossing (sans-I/O)."""

    def __init__(self, on_pct: float, off_pct: float) -> None:
        self.on, self.off = on_pct, off_pct
        self.high: dict[str, bool] = {}

    def update(self, name: str, value: float) -> bool:
        was = self.high.get(name, False)
        now = value >= self.on if not was else not value < self.off
        self.high[name] = now
        return now != was


def client_context(cfg: AgentConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cfg.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cfg.cert), str(cfg.key))
    return ctx


class Agent:
    """The GBA-6.3 site adapter. ``run()`` until cancelled; ``report_once()`` for one shot."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.proc = ProcCollector()
        self.watch = ThresholdWatch(cfg.thresholds.on_pct, cfg.thresholds.off_pct)
        self.values: dict[str, tuple[float, dict[str, Any]]] = {
            r.name: (r.value, dict(r.extended)) for r in cfg.resources if r.value is not None}
        self.services: dict[str, ServiceLoad] = {}
        self.builtins: dict[str, float] = {}
        self.seq = 0
        self.sent = self.failed = 0
        self._urgent = asyncio.Event()
        self._reason = "start"
        self._client: Any = None
        self.known = {s.name for s in cfg.services}
        self.benchmark: Benchmark | None = None

    # -- collection ----------------------------------------------------------------
    async def _acquire_loop(self, res: AgentResource) -> None:
        assert res.acquisition_command and res.interval_s
        while True:
            t0 = time.monotonic()
            try:
                out = await run_acquisition(res.acquisition_command, res.interval_s)
                value, ext = parse_acquisition(out)
                self.values[res.name] = (value, {**res.extended, **ext})
            except ValidationError as exc:
                log.warning("acquisition failed; last value kept", extra={"fields": {
                    "resource": res.name, "reason": str(exc)}})
            await asyncio.sleep(max(res.interval_s - (time.monotonic() - t0), 0.0))

    async def collect(self) -> None:
        """Built-ins and load files (called before each periodic report)."""
        c, got = self.cfg.collectors, {}
        if "cpu" in c:
            got["cpu_pct"] = self.proc.cpu_pct()
        if "mem" in c:
            got["mem_pct"] = self.proc.mem_pct()
        if "load" in c:
            got["load1"] = self.proc.load1()
        if "gpu" in c:
            got["gpu_free"] = await self.proc.gpu_free()
        if "energy" in c:
            got["energy_w"] = self.proc.energy_w()
        self.builtins.update({k: v for k, v in got.items() if v is not None})
        if "cpu_pct" in self.builtins:
            self._check("cpu", self.builtins["cpu_pct"])
        for svc in self.cfg.services:
            if svc.load_file is None:
                continue
            try:
                self.on_load(parse_load_line(svc.load_file.read_text(), svc.name))
            except (OSError, ValidationError) as exc:
                log.warning("service load file unreadable; last value kept", extra={
                    "fields": {"service": svc.name, "file": str(svc.load_file),
                               "reason": str(exc)}})

    def on_load(self, load: ServiceLoad) -> None:
        self.services[load.service] = load
        self._check(f"service:{load.service}", load.util_pct)

    def _check(self, name: str, value: float) -> None:
        if self.watch.update(name, value):
            log.info("threshold crossed: %s=%.1f (%s)", name, value,
                     "high" if self.watch.high[name] else "cleared")
            self._reason = "threshold"
            self._urgent.set()

    # -- reporting -----------------------------------------------------------------
    def build_report(self, reason: str) -> Report:
        self.seq += 1
        energy = self.builtins.get("energy_w", self.cfg.energy_w)
        return Report(
            site=self.cfg.site, seq=self.seq, sent_at=datetime.now(UTC),
            interval_s=self.cfg.interval_s, reason=reason,
            cpu_pct=self.builtins.get("cpu_pct"), mem_pct=self.builtins.get("mem_pct"),
            load1=self.builtins.get("load1"), gpu_free=self.builtins.get("gpu_free"),
            energy_w=energy, price_per_hour=self.cfg.price_per_hour,
            resources=[ResourceSample(name=n, value=v, extended=e)
                       for n, (v, e) in self.values.items()],
            services=list(self.services.values()), benchmark=self.benchmark)

    async def _benchmark_loop(self) -> None:
        """WP-3.1.5: measure this node (real numpy work, ``telemetry.grading``) at start
        and every ``benchmark_every_s``; the result rides on the next report."""
        import socket

        from telemetry.grading import run_benchmark

        node = self.cfg.node or socket.gethostname()
        while True:
            try:
                self.benchmark = await asyncio.to_thread(run_benchmark, node,
                                                         self.cfg.benchmark_s)
                log.info("benchmark measured: %.2f GFLOPS fp32, %.3f G int ops/s",
                         self.benchmark.fp32_gflops, self.benchmark.logic_gops)
            except Exception as exc:  # a broken BLAS must not stop reporting
                log.warning("benchmark failed: %s", exc)
            await asyncio.sleep(self.cfg.benchmark_every_s)

    async def send(self, report: Report) -> bool:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(verify=client_context(self.cfg), timeout=5.0)
        try:
            resp = await self._client.post(f"{self.cfg.controller.rstrip('/')}/v1/report",
                                           content=report.model_dump_json(exclude_none=True),
                                           headers={"content-type": "application/json"})
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            self.failed += 1
            log.warning("report not delivered", extra={"fields": {
                "controller": self.cfg.controller, "seq": report.seq, "reason": str(exc)}})
            return False
        if resp.status_code != 202:
            self.failed += 1
            log.warning("report refused by controller", extra={"fields": {
                "status": resp.status_code, "seq": report.seq, "reason": resp.text[:300]}})
            return False
        self.sent += 1
        if report.benchmark is not None and report.benchmark is self.benchmark:
            self.benchmark = None  # delivered: graded once
        return True

    async def report_once(self, reason: str = "periodic") -> bool:
        await self.collect()
        return await self.send(self.build_report(reason))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self._acquire_loop(r)) for r in self.cfg.resources
                 if r.dynamic]
        if self.cfg.benchmark_s > 0:
            tasks.append(asyncio.create_task(self._benchmark_loop()))
        transport = None
        if self.cfg.service_load_udp is not None:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: LoadReceiver(self.known, self.on_load),
                local_addr=("127.0.0.1", self.cfg.service_load_udp))
        if self.cfg.probe_listen:
            from telemetry.probes import start_responder

            probe_tr, _ = await start_responder(self.cfg.probe_listen)
            tasks.append(asyncio.create_task(_close_on_cancel(probe_tr)))
        next_at = time.monotonic()
        try:
            while True:
                if self._urgent.is_set():
                    reason = self._reason
                else:
                    await self.collect()
                    reason = self._reason if self._urgent.is_set() else "periodic"
                    next_at = time.monotonic() + self.cfg.interval_s
                self._urgent.clear()
                self._reason = "periodic"
                await self.send(self.build_report(reason))
                delay = next_at - time.monotonic()
                if delay > 0 and not self._urgent.is_set():
                    try:
                        async with asyncio.timeout(delay):
                            await self._urgent.wait()
                    except TimeoutError:
                        pass
        finally:
            for t in tasks:
                t.cancel()
            if transport is not None:
                transport.close()
            if self._client is not None:
                await self._client.aclose()


async def _close_on_cancel(transport: asyncio.BaseTransport) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()


def apply_nice(value: int) -> None:
    """Run this process at scheduling priority ``value`` (before any thread starts:
    Linux nice is per thread and inherited by threads created afterwards)."""
    os.setpriority(os.PRIO_PROCESS, 0, value)
    log.info("agent runs at nice %d", os.getpriority(os.PRIO_PROCESS, 0))


def main(config: Path, once: bool = False) -> int:
    from controller.logs import setup as setup_logging

    setup_logging("info")
    try:
        cfg = load_agent_config(config)
    except CpnError as exc:
        log.error("%s", exc)
        return 2
    if cfg.nice is not None:
        try:
            apply_nice(cfg.nice)
        except OSError as exc:
            log.error("cannot run at nice %d: %s (fix: run the agent as root or with "
                      "CAP_SYS_NICE, or remove nice from %s)", cfg.nice, exc, config)
            return 2
    agent = Agent(cfg)
    if once:
        return 0 if asyncio.run(agent.report_once("start")) else 1
    try:
        asyncio.run(agent.run())
    except KeyboardInterrupt:
        pass
    return 0
