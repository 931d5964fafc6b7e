"""Bench: memory of the embedded DNS server's answer cache under many clients.

What is measured (issue #15: 300 k client sources grew RSS by 45 MB, doubling with
query-name spelling variants): the real UDP server (``DnsServer`` + ``Responder`` on
the sample security-video zone, one UDP loop) on loopback. ``sources`` distinct client
addresses in 127.0.0.0/8 (one short-lived socket each) ask the steered name without
ECS — an answer that depends on the source, so the server caches it per source — each
in a random letter case. RSS (``/proc/self/status`` VmRSS) is read after a warm-up of
2,000 sources and at the end; the figure is the growth in MB. Every ``check_every``
sources one answer is read back and checked (right address, question echoed in the
client's spelling). The same script run against an older checkout (the server and
responder APIs are unchanged) gives the before figure.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

import dns.message

from dns_compute.keeper import ZoneKeeper
from dns_compute.responder import Responder
from dns_compute.server import DnsServer
from labs.dns_sample import ZONE, dns_section, entities

NAME = "video.svc.cpn.example"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _spell(rnd: random.Random) -> str:
    return "".join(c.upper() if rnd.random() < 0.5 else c for c in NAME)


def _source(i: int) -> str:
    n = i + 2  # skip 127.0.0.0 / .1
    return f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def _blast(port: int, start: int, stop: int, rnd: random.Random, check_every: int) -> int:
    checked = 0
    for i in range(start, stop):
        src = _source(i)
        name = _spell(rnd)
        q = dns.message.make_query(name, "A")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((src, 0))
            s.sendto(q.to_wire(), ("127.0.0.1", port))
            if i % check_every == 0:
                s.settimeout(2)
                r = dns.message.from_wire(s.recv(4096))
                got = r.answer[0][0].to_text() if r.answer else ""
                if r.question[0].name.to_text() != name + "." or not got:
                    raise RuntimeError(f"bad answer to {name} from {src}: {r}")
                checked += 1
    return checked


def run(sources: int = 300_000, check_every: int = 5_000, warmup: int = 2_000,
        goal_mb: float = 20.0, seed: int = 7, **_opts: Any) -> dict[str, Any]:
    rnd = random.Random(seed)
    keeper = ZoneKeeper(ZONE, dns_section(), responder=Responder())
    keeper.load(entities())
    keeper.rebuild()

    async def main() -> dict[str, Any]:
        server = DnsServer(keeper.responder, "127.0.0.1", 0, udp_threads=1)
        await server.start()
        try:
            await asyncio.to_thread(_blast, server.port, 0, warmup, rnd, check_every)
            time.sleep(0.5)
            before = _rss_mb()
            t0 = time.perf_counter()
            checked = await asyncio.to_thread(_blast, server.port, warmup, sources, rnd,
                                              check_every)
            seconds = time.perf_counter() - t0
            time.sleep(1.0)  # let the UDP loop drain its socket
            after = _rss_mb()
            caches = getattr(server, "caches", [])
            return {"rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
                    "checked_answers": checked, "send_seconds": round(seconds, 1),
                    "cache_entries": sum(c.entries for c in caches) if caches else None,
                    "cache_flushes": sum(c.flushes for c in caches) if caches else None}
        finally:
            await server.stop()

    out = asyncio.run(main())
    growth = out["rss_after_mb"] - out["rss_before_mb"]
    return {"bench": "dns-cache-memory", "sources": sources, **out,
            "load_avg_1m": os.getloadavg()[0], "figure": round(growth, 1),
            "unit": "MB RSS growth", "goal": goal_mb, "met": growth <= goal_mb}
