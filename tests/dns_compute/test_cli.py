"""``cpn resolve``: a real DNS query with ECS plus the score breakdown from REST; the SSE
subscription over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from controller.api.server import ApiServer
from controller.auth import Principal, TokenLookup
from controller.cli.main import app
from controller.models import Role
from controller.runtime import Runtime, Settings
from dns_compute.component import DnsComponent
from labs.knot import free_port
from tests.dns_compute.harness import put
from tests.dns_compute.topo import dns_section, entities, overloaded

TOKEN = "r" * 32


def _sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    event = ""
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "zone":
            yield json.loads(line[6:])


def test_resolve_prints_answer_and_why(tmp_path: Path) -> None:
    ready = threading.Event()
    done: asyncio.Event | None = None
    loop_box: list[asyncio.AbstractEventLoop] = []
    rt = Runtime(None, Settings(api=("127.0.0.1", free_port()),
                                dns=("127.0.0.1", free_port()), state=tmp_path))
    rt.tokens = TokenLookup(rt.store, {hashlib.sha256(TOKEN.encode()).hexdigest():
                                       Principal("cli", Role.VIEWER)})
    put(rt, entities())

    async def serve() -> None:
        nonlocal done
        done = asyncio.Event()
        loop_box.append(asyncio.get_running_loop())
        await rt.start([ApiServer(), DnsComponent(dns_section())])
        ready.set()
        await done.wait()
        await rt.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(20)
    try:
        res = CliRunner().invoke(app, [
            "resolve", "video.svc.cpn.example", "--subnet", "10.0.1.0/24",
            "--server", f"127.0.0.1:{rt.settings.dns[1]}",
            "--api", f"127.0.0.1:{rt.settings.api[1]}", "--token", TOKEN])
        assert res.exit_code == 0, res.output
        out = res.output
        assert "ECS 10.0.1.0/24 scope /24" in out and "10.0.2.10" in out
        assert "client bucket 10.0.1.0/24 (R3)" in out
        lines = [ln for ln in out.splitlines() if ln.startswith(("MEC-1", "MEC-2"))]
        assert lines[0].startswith("MEC-2") and "compute=" in lines[0] and "delay=" in lines[0]
        nx = CliRunner().invoke(app, ["resolve", "nope.cpn.example", "--no-why", "--server",
                                      f"127.0.0.1:{rt.settings.dns[1]}"])
        assert nx.exit_code == 0 and "NXDOMAIN" in nx.output
        down = CliRunner().invoke(app, ["resolve", "video.svc.cpn.example", "--server",
                                        f"127.0.0.1:{free_port()}"])
        assert down.exit_code == 1 and "no answer from DNS server" in down.output
        # SSE subscription over real HTTP: the current version, then the next change.
        url = f"http://127.0.0.1:{rt.settings.api[1]}/api/v1/dns/events"
        with httpx.stream("GET", url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=10) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = _sse_events(resp.iter_lines())
            first = next(events)
            put(rt, [overloaded("MEC-1")])
            second = next(events)
        assert second["serial"] == first["serial"] + 1
        assert "video.svc.cpn.example." in second["changed"]
    finally:
        assert done is not None
        loop_box[0].call_soon_threadsafe(done.set)
        thread.join(10)
        rt.store.close()
