"""`cpn bench api-keepalive` on a tiny schedule: both event loops serve the real app
from their own pinned processes, every path is measured, and the servers are gone."""

from __future__ import annotations

import os

import pytest

from labs.bench import api_keepalive
from labs.bench.api_keepalive import run


def test_api_keepalive_bench_measures_both_loops_and_paths_then_stops_its_servers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[api_keepalive._Server] = []
    real_init = api_keepalive._Server.__init__

    def init(self: api_keepalive._Server, loop: str, cpu: int | None) -> None:
        real_init(self, loop, cpu)
        started.append(self)
    monkeypatch.setattr(api_keepalive._Server, "__init__", init)
    mask = os.sched_getaffinity(0)
    out = run(rounds=1, requests=30, requests_old=2)
    assert os.sched_getaffinity(0) == mask  # the client's pinning undone
    assert [s.info["loop"].split(".")[0] for s in started] == ["asyncio", "uvloop"]
    assert all(s.proc.poll() is not None for s in started)  # servers stopped
    for table in ("reused_ms", "get_per_s", "get_per_server_cpu_s"):
        for loop in ("asyncio", "uvloop"):
            assert set(out[table][loop]) == {"whoami", "sites"}
            assert all(v["median"] > 0 for v in out[table][loop].values())
    if len(mask) >= 2:
        assert out["server_cpu"] != out["client_cpu"]
    assert out["http_impl"] == "HttpToolsProtocol"
    assert out["figure"]["get_per_server_cpu_s"] > 0 and isinstance(out["met"], bool)
