"""The DNS part of /metrics reads the running server: batched UDP loops' counters and
the answer caches (issue #19: the mean batch is datagrams / batches)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import dns.message
import pytest

from dns_compute import mmsg
from dns_compute.metrics import DnsCollector
from tests.dns_compute.harness import running


@pytest.mark.skipif(not mmsg.available(), reason="recvmmsg/sendmmsg are Linux-only")
def test_batched_loop_counters_and_cache_hits_reach_the_collector(tmp_path: Path) -> None:
    def burst(port: int, n: int) -> int:
        q = dns.message.make_query("video.svc.cpn.example", "SVCB").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            for _ in range(n):
                s.sendto(q, ("127.0.0.1", port))
            return sum(1 for _ in range(n) if s.recv(4096))

    async def main() -> None:
        async with running(tmp_path) as (_rt, comp):
            assert comp.server is not None and comp.server.batches
            assert await asyncio.to_thread(burst, comp.server.port, 40) == 40
            values = {m.name: m.samples[0].value for m in DnsCollector(lambda: comp).collect()
                      if m.samples and not m.samples[0].labels}
            assert values["cpn_dns_udp_datagrams"] >= 40
            assert 1 <= values["cpn_dns_udp_batches"] <= values["cpn_dns_udp_datagrams"]
            assert values["cpn_dns_cache_hits"] >= 39  # the first one filled the cache

    asyncio.run(main())
