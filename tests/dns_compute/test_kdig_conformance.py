"""DNS conformance driven by kdig against the embedded responder (issue #15): negative
answers carry the SOA with TTL min(SOA TTL, MINIMUM) (RFC 2308 §3), the question is
echoed in the client's spelling while the answer cache keeps one entry for every
spelling (RFC 4343), TCP and UDP agree; a Knot primary refusing our updates (BADSIG)
shows in /healthz and /metrics."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from labs.knot import KnotServer, free_port, knotd_path, new_secret
from tests.conftest import have
from tests.dns_compute.harness import running

pytestmark = pytest.mark.skipif(not have("kdig"), reason="needs kdig")

VIDEO = "video.svc.cpn.example"
SOA_MINIMUM = 5


def kdig(port: int, *args: str) -> str:
    out = subprocess.run(["kdig", "@127.0.0.1", "-p", str(port), "+timeout=2", "+retry=0",
                          *args], capture_output=True, text=True, timeout=10, check=True)
    return out.stdout


def _status(text: str) -> str:
    m = re.search(r"status: (\w+)", text)
    assert m is not None, text
    return m.group(1)


def _section(text: str, name: str) -> list[list[str]]:
    """Records of a kdig section (``AUTHORITY``, ``ANSWER`` …) as field lists."""
    out: list[list[str]] = []
    inside = False
    for line in text.splitlines():
        if line.startswith(";;"):
            inside = line.startswith(f";; {name} SECTION")
            continue
        if inside and line.strip():
            out.append(line.split())
    return out


def test_negative_answers_soa_ttl_is_min_of_ttl_and_minimum(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path) as (_, comp):
            assert comp.server is not None
            port = comp.server.port
            for args, status in ((("nosuch.cpn.example", "A"), "NXDOMAIN"),
                                 ((VIDEO, "MX"), "NOERROR"),
                                 (("+tcp", "nosuch.svc.cpn.example", "AAAA"), "NXDOMAIN")):
                text = await asyncio.to_thread(kdig, port, *args)
                assert _status(text) == status, text
                assert _section(text, "ANSWER") == []
                (soa,) = _section(text, "AUTHORITY")
                assert soa[3] == "SOA" and soa[-1] == str(SOA_MINIMUM)
                assert int(soa[1]) == min(int(soa[1]), SOA_MINIMUM) == SOA_MINIMUM, soa
            # the SOA asked for itself keeps its own TTL (a positive answer)
            text = await asyncio.to_thread(kdig, port, "cpn.example", "SOA")
            (soa,) = _section(text, "ANSWER")
            assert int(soa[1]) > SOA_MINIMUM

    asyncio.run(main())


def test_question_spelling_is_echoed_and_shares_one_cache_entry(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path) as (_, comp):
            assert comp.server is not None
            port = comp.server.port
            (cache,) = comp.server.caches
            spellings = ["video.svc.cpn.example", "VIDEO.SVC.CPN.EXAMPLE",
                         "ViDeO.sVc.CpN.eXaMpLe", "vIdEo.SvC.cPn.ExAmPlE"]
            first = await asyncio.to_thread(kdig, port, spellings[0], "+subnet=10.0.0.7/32")
            assert "10.0.1.10" in first
            # kdig sends names lower-cased, so the spellings go out through dnspython
            # (its EDNS bytes differ from kdig's: a key of their own, held once)
            ecs = [dns.edns.ECSOption.from_text("10.0.0.7/32")]

            async def ask(name: str) -> None:
                q = dns.message.make_query(name, "A", use_edns=0, options=ecs)
                r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2)
                assert r.question[0].name.to_text() == name + "."  # echoed as sent
                assert r.answer[0].name.to_text() == name + "."
                assert r.answer[0][0].to_text() == "10.0.1.10"

            # the loop caches an answer just after sending it: ask until a mixed-case
            # spelling is answered from the cache (counted in ``hits`` at once), then
            # every other spelling must be a hit on that same entry
            await ask(spellings[0])
            for _ in range(50):
                before = cache.hits
                await ask(spellings[1])
                if cache.hits > before:
                    break
            held, hits = cache.entries, cache.hits
            for name in [*spellings[2:], spellings[1]]:
                await ask(name)
            assert cache.entries == held  # one entry for every spelling
            assert cache.hits == hits + len(spellings) - 1

    asyncio.run(main())


@pytest.mark.skipif(knotd_path() is None, reason="needs knotd")
def test_knot_refusing_updates_shows_in_healthz_and_metrics(tmp_path: Path) -> None:
    with KnotServer(tmp_path / "primary", free_port()) as knot:
        wrong = {"server": f"127.0.0.1:{knot.port}", "tsig_name": knot.key_name,
                 "tsig_secret": new_secret(), "retries": 1, "backoff_s": 0.01}

        async def main() -> tuple[dict[str, object], str]:
            async with running(tmp_path / "ctl", knot=wrong) as (rt, comp):
                deadline = time.monotonic() + 15
                while comp.publisher is None or not comp.publisher.last_error:
                    assert time.monotonic() < deadline, "publisher never failed"
                    await asyncio.sleep(0.05)
                client = TestClient(create_app(rt))
                health = await asyncio.to_thread(client.get, "/healthz")
                metrics = await asyncio.to_thread(client.get, "/metrics")
                return health.json(), metrics.text

        health, metrics = asyncio.run(main())
    assert health["status"] == "degraded"
    (problem,) = health["problems"]  # type: ignore[misc]
    assert problem["component"] == "dns" and "BADSIG" in problem["problem"]
    assert f'cpn_dns_publish_failing{{server="127.0.0.1:{knot.port}"}} 1.0' in metrics
    assert re.search(r"cpn_dns_publish_failures_total\{[^}]*\} [1-9]", metrics)
