"""UDP worker processes: they answer on the server's port from a piped copy of the zone,
follow zone swaps, and end with the server (DNS on N cores, issue #19)."""

from __future__ import annotations

import asyncio
import io
import socket

import dns.edns
import dns.message

from dns_compute.keeper import ZoneKeeper
from dns_compute.responder import Responder
from dns_compute.server import DnsServer
from dns_compute.worker import encode_zone, read_zone
from tests.dns_compute.topo import ZONE, dns_section, entities, overloaded

VIDEO = "video.svc.cpn.example"


def _ask_from_many_sockets(port: int, n: int) -> list[str]:
    """``n`` queries, each from a fresh socket (a new 4-tuple: the kernel's SO_REUSEPORT
    hash spreads them over the server's thread and its workers)."""
    got = []
    q = dns.message.make_query(VIDEO, "A", use_edns=0,
                               options=[dns.edns.ECSOption.from_text("10.0.0.0/24")])
    for _ in range(n):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(q.to_wire(), ("127.0.0.1", port))
            got.append(str(dns.message.from_wire(s.recv(4096)).answer[0][0]))
    return got


def test_zone_frame_round_trips() -> None:
    k = ZoneKeeper(ZONE, dns_section())
    k.load(entities())
    k.rebuild()
    zone = k.responder.zone
    assert zone is not None
    back = read_zone(io.BytesIO(encode_zone(zone)))
    assert back is not None and back.serial == zone.serial and back.nodes == zone.nodes
    assert read_zone(io.BytesIO(b"")) is None


def test_workers_answer_follow_swaps_and_stop_with_the_server() -> None:
    keeper = ZoneKeeper(ZONE, dns_section(), responder=Responder())
    keeper.load(entities())
    keeper.rebuild()

    async def main() -> None:
        server = DnsServer(keeper.responder, "127.0.0.1", 0, udp_threads=1, udp_workers=2)
        await server.start()
        pids = [p.pid for p in server.workers]
        try:
            assert len(pids) == 2 and all(p.poll() is None for p in server.workers)
            before = await asyncio.to_thread(_ask_from_many_sockets, server.port, 60)
            assert set(before) == {"10.0.1.10"}  # MEC-1 is nearest to 10.0.0.0/24
            # MEC-1 overloaded: every answerer (thread and workers) moves to MEC-2.
            keeper.load([overloaded("MEC-1")])
            keeper.rebuild()
            after: list[str] = []
            for _ in range(50):
                after = await asyncio.to_thread(_ask_from_many_sockets, server.port, 60)
                if set(after) == {"10.0.2.10"}:
                    break
                await asyncio.sleep(0.1)
            # 60 fresh 4-tuples over 3 sockets: the chance that no worker answered any
            # of them is 3 * (2/3)^60 < 1e-10, so every answerer followed the swap.
            assert set(after) == {"10.0.2.10"}
        finally:
            procs = list(server.workers)
            await server.stop()
        assert all(p.returncode is not None for p in procs)

    asyncio.run(main())


def test_uncached_worker_answers_every_spelling_from_the_responder() -> None:
    """``--no-cache`` (what ``cpn bench dns`` measures): answers still exact."""
    import subprocess
    import sys

    from labs.knot import free_port

    keeper = ZoneKeeper(ZONE, dns_section(), responder=Responder())
    keeper.load(entities())
    keeper.rebuild()
    assert keeper.responder.zone is not None
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dns_compute.worker", "127.0.0.1",
                             str(port), "--no-cache"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(encode_zone(keeper.responder.zone))
        proc.stdin.flush()
        assert proc.stdout.readline().startswith(b"ready")
        for name in ("Video.SVC.cpn.example", "vIDEO.svc.CPN.example"):
            q = dns.message.make_query(name, "A", use_edns=0,
                                       options=[dns.edns.ECSOption.from_text("10.0.1.0/24")])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.sendto(q.to_wire(), ("127.0.0.1", port))
                r = dns.message.from_wire(s.recv(4096))
            assert str(r.answer[0][0]) == "10.0.2.10"  # 10.0.1.0/24 sits behind R3
            assert r.question[0].name.to_text() == name + "."
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
