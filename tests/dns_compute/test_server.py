"""The embedded responder on real sockets, driven by store changes; Knot fed by CPN
answers the same records; REST explain / long-poll / SSE (issue 5 "Show")."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import httpx
import pytest

from controller.auth import Principal, TokenLookup
from controller.models import Role
from labs.knot import KnotServer, free_port, knotd_path
from tests.conftest import have
from tests.dns_compute.harness import put, running
from tests.dns_compute.topo import overloaded

VIDEO = "video.svc.cpn.example"
needs_kdig = pytest.mark.skipif(not have("kdig"), reason="needs kdig")


def kdig(port: int, *args: str) -> str:
    out = subprocess.run(["kdig", "@127.0.0.1", "-p", str(port), "+timeout=2", *args],
                         capture_output=True, text=True, timeout=10, check=True)
    return out.stdout


def answers(text: str) -> list[str]:
    """Answer-section records from kdig +noall +answer output, normalised."""
    return sorted(" ".join(line.split()) for line in text.splitlines()
                  if line and not line.startswith(";"))


async def ask(port: int, name: str, subnet: str | None = None) -> str:
    opts = [dns.edns.ECSOption.from_text(subnet)] if subnet else []
    q = dns.message.make_query(name, "A", use_edns=0, options=opts)
    r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2)
    return str(r.answer[0][0])


@needs_kdig
def test_kdig_two_subnets_two_mecs_and_overload_moves(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path) as (rt, comp):
            assert comp.server is not None
            port = comp.server.port
            near1 = await asyncio.to_thread(kdig, port, VIDEO, "+subnet=10.0.0.7/32")
            near2 = await asyncio.to_thread(kdig, port, VIDEO, "+subnet=10.0.1.7/32")
            assert "10.0.1.10" in near1 and "CLIENT-SUBNET: 10.0.0.7/32/24" in near1
            assert "10.0.2.10" in near2 and "CLIENT-SUBNET: 10.0.1.7/32/24" in near2
            serial = comp.keeper.serial  # type: ignore[union-attr]
            put(rt, [overloaded("MEC-1")], "load generator drives MEC-1 to 95 %")
            for _ in range(200):
                if await ask(port, VIDEO, "10.0.0.0/24") == "10.0.2.10":
                    break
                await asyncio.sleep(0.005)
            assert await ask(port, VIDEO, "10.0.0.0/24") == "10.0.2.10"
            assert comp.keeper.serial == serial + 1  # type: ignore[union-attr]
            tcp = await asyncio.to_thread(kdig, port, "+tcp", VIDEO, "SVCB")
            assert "status: NOERROR" in tcp and "(TCP)" in tcp and 'key65280="1"' in tcp

    asyncio.run(main())


@needs_kdig
@pytest.mark.skipif(knotd_path() is None, reason="needs knotd")
def test_knot_fed_by_cpn_answers_the_same_records(tmp_path: Path) -> None:
    names = [(VIDEO, "A"), (VIDEO, "SVCB"), ("_video._udp.svc.cpn.example", "SRV"),
             ("mec-1.video.svc.cpn.example", "TXT"), ("_compute.mec-1.cpn.example", "TXT")]

    async def main(knot: KnotServer) -> None:
        knot_cfg = {"server": f"127.0.0.1:{knot.port}", "tsig_name": knot.key_name,
                    "tsig_secret": knot.secret}
        async with running(tmp_path / "ctl", knot=knot_cfg) as (rt, comp):
            assert comp.server is not None and comp.publisher is not None
            eport = comp.server.port

            async def same() -> bool:
                for name, rdtype in names:
                    a = await asyncio.to_thread(kdig, eport, "+noall", "+answer", name,
                                                rdtype)
                    b = await asyncio.to_thread(kdig, knot.port, "+noall", "+answer", name,
                                                rdtype)
                    if answers(a) != answers(b) or not answers(a):
                        return False
                return True

            for _ in range(100):
                if comp.publisher.last is not None and await same():
                    break
                await asyncio.sleep(0.05)
            assert await same()
            put(rt, [overloaded("MEC-1")])
            for _ in range(100):
                out = await asyncio.to_thread(kdig, knot.port, "+short", VIDEO, "A")
                if out.strip() == "10.0.2.10":
                    break
                await asyncio.sleep(0.02)
            assert out.strip() == "10.0.2.10"
            assert await same()

    with KnotServer(tmp_path / "knot", free_port()) as knot:
        asyncio.run(main(knot))


def test_rest_explain_long_poll_and_sse(tmp_path: Path) -> None:
    from controller.api.app import create_app

    async def main() -> None:
        async with running(tmp_path) as (rt, comp):
            token = "t" * 32
            rt.tokens = TokenLookup(rt.store, {hashlib.sha256(token.encode()).hexdigest():
                                               Principal("test", Role.VIEWER)})
            app = create_app(rt)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                         headers={"Authorization": f"Bearer {token}"}) as c:
                r = await c.get("/api/v1/dns/explain", params={"name": VIDEO,
                                                              "subnet": "10.0.1.0/24"})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["bucket"] == "10.0.1.0/24" and body["answer"]["A"] == ["10.0.2.10"]
                assert body["candidates"][0]["site"] == "MEC-2"
                assert {"compute", "delay", "weight"} <= set(body["candidates"][0]["reasons"])
                bad = await c.get("/api/v1/dns/explain", params={"name": VIDEO,
                                                                "subnet": "nonsense"})
                assert bad.status_code == 422 and "subnet" in bad.text
                serial = comp.keeper.serial  # type: ignore[union-attr]
                idle = await c.get("/api/v1/dns/changes", params={"since": serial,
                                                                 "timeout": 0.05})
                assert idle.status_code == 204
                poll = asyncio.create_task(c.get("/api/v1/dns/changes",
                                                 params={"since": serial, "timeout": 5}))
                await asyncio.sleep(0.05)
                queue = comp.feed.subscribe()  # what an SSE stream reads
                put(rt, [overloaded("MEC-1")])
                got = (await poll).json()
                assert got["serial"] == serial + 1 and "video.svc.cpn.example." in got["changed"]
                event = await asyncio.wait_for(queue.get(), 2)
                assert event["serial"] == serial + 1
                zone = (await c.get("/api/v1/dns/zone")).json()
                assert zone["serial"] == serial + 1 and json.dumps(zone)

    asyncio.run(main())


def test_two_udp_threads_share_the_port(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, udp_threads=2) as (_rt, comp):
            assert comp.server is not None
            got = await asyncio.gather(*[ask(comp.server.port, VIDEO, f"10.0.{i % 2}.0/24")
                                         for i in range(40)])
            assert {g for i, g in enumerate(got) if i % 2 == 0} == {"10.0.1.10"}
            assert {g for i, g in enumerate(got) if i % 2 == 1} == {"10.0.2.10"}

    asyncio.run(main())
