"""Batched UDP I/O (recvmmsg/sendmmsg through ctypes) on real loopback sockets, and the
server's batched loop answering byte for byte as the responder (issue #19, DNS rows)."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator

import dns.edns
import dns.message
import pytest

from dns_compute import mmsg
from dns_compute.cache import AnswerCache
from dns_compute.keeper import ZoneKeeper
from dns_compute.mmsg import Batch
from dns_compute.responder import Responder
from dns_compute.server import _udp_loop_batched
from tests.dns_compute.topo import ZONE, dns_section, entities

pytestmark = pytest.mark.skipif(not mmsg.available(), reason="recvmmsg/sendmmsg are Linux-only")


def _udp(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(3)
    return s


def _drain(batch: Batch, want: int) -> list[tuple[bytes, str, int]]:
    """Receive until ``want`` datagrams arrived: (data, source, port) each; each is
    answered with itself + "!" (queued and flushed per batch)."""
    got: list[tuple[bytes, str, int]] = []
    while len(got) < want:
        k = batch.recv()
        for i in range(k):
            data = batch.data(i)
            got.append((data, batch.source(i), batch.source_port(i)))
            if not data.startswith(b"skip"):
                # the first two octets go out from the query's buffer (its DNS id)
                batch.put(i, b"??" + data[2:] + b"!")
        batch.flush()
    return got


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_batch_receives_many_per_call_and_answers_each_source(host: str) -> None:
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 loopback")
    with _udp(host) as server, _udp(host) as a, _udp(host) as b:
        batch = Batch(server, size=8)
        dest = server.getsockname()[:2]
        sent = []
        for n in range(12):  # more than one batch: the slots are reused
            sender, payload = (a, b"a%d" % n) if n % 2 == 0 else (b, b"b%d" % n)
            if n == 5:
                payload = b"skip5"  # no answer: the later answers shift send slots
            sender.sendto(payload, dest)
            sent.append(payload)
        got = _drain(batch, 12)
        assert [g[0] for g in got] == sent
        assert batch.batches < 12  # several datagrams per system call
        ports = {a.getsockname()[1]: "a", b.getsockname()[1]: "b"}
        assert all(ports[port] == data[:1].decode() or data == b"skip5"
                   for data, _src, port in got)
        assert {src for _, src, _ in got} == {host}
        back_a = [a.recv(100) for _ in range(6)]
        back_b = [b.recv(100) for _ in range(5)]
        assert back_a == [b"a%d!" % n for n in range(0, 12, 2)]
        assert back_b == [b"b%d!" % n for n in (1, 3, 7, 9, 11)]
        b.settimeout(0.2)
        with pytest.raises(TimeoutError):
            b.recv(100)  # the skipped datagram got nothing


def test_answer_longer_than_a_slot_is_sent_alone() -> None:
    with _udp() as server, _udp() as client:
        batch = Batch(server, size=4)
        client.sendto(b"big", server.getsockname())
        assert batch.recv() == 1
        batch.put(0, b"x" * (mmsg.SLOT + 10))
        assert batch.flush() == 0
        assert len(client.recv(70_000)) == mmsg.SLOT + 10


def _queries() -> list[bytes]:
    """A burst with every kind of query the loop must answer exactly as the responder:
    spellings, ECS in and out of the configured subnets, steered names without ECS
    (answer depends on the source), NXDOMAIN, REFUSED, ANY, malformed, a response."""
    out = []
    for n, (name, rdtype, subnet) in enumerate([
            ("video.svc.cpn.example", "A", "10.0.0.0/24"),
            ("ViDeO.svc.CPN.example", "A", "10.0.1.0/24"),
            ("video.svc.cpn.example", "A", None),
            ("VIDEO.svc.cpn.example", "AAAA", "10.9.0.0/24"),
            ("video.svc.cpn.example", "SVCB", None),
            ("_video._udp.svc.cpn.example", "SRV", None),
            ("mec-1.video.svc.cpn.example", "TXT", "10.0.0.0/24"),
            ("nothing.cpn.example", "A", None),
            ("example.org", "A", None),
            ("video.svc.cpn.example", "ANY", None)]):
        opts = [dns.edns.ECSOption.from_text(subnet)] if subnet else []
        q = dns.message.make_query(name, rdtype, use_edns=0 if subnet or n % 3 else None,
                                   options=opts)
        q.id = 1000 + n
        out.append(q.to_wire())
    out.append(b"\x07\xd0\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05vid")  # truncated name
    # a response, dropped: the answers after it in the batch shift send slots
    out.insert(3, b"\x07\xd1\x81\x00" + b"\x00" * 8)
    return out


@contextlib.contextmanager
def _loop(cached: bool) -> Iterator[tuple[socket.socket, Responder]]:
    keeper = ZoneKeeper(ZONE, dns_section(), responder=Responder())
    keeper.load(entities())
    keeper.rebuild()
    sock = _udp()
    stop = threading.Event()
    t = threading.Thread(target=_udp_loop_batched, args=(
        sock, keeper.responder, stop, AnswerCache() if cached else None, 16), daemon=True)
    t.start()
    try:
        yield sock, keeper.responder
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            sock.sendto(b"", sock.getsockname())
        t.join(3)
        sock.close()
        assert not t.is_alive(), "the batched loop did not stop"


@pytest.mark.parametrize("cached", [False, True])
def test_batched_loop_answers_a_burst_exactly_as_the_responder(cached: bool) -> None:
    with _loop(cached) as (sock, responder), _udp() as client:
        queries = _queries()
        want = {}
        for q in queries:
            out, _ = responder.respond_full(q, "127.0.0.1")
            if out is not None:
                want[q[:2]] = out
        for _ in range(3):  # the second and third bursts ride the cache when it is on
            for q in queries:
                client.sendto(q, sock.getsockname())
            got = {}
            deadline = time.monotonic() + 5
            while len(got) < len(want) and time.monotonic() < deadline:
                r = client.recv(4096)
                got[r[:2]] = r
            assert got == want
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.recv(4096)  # nothing for the response we sent


def test_batched_loop_stops_on_the_empty_wake_datagram() -> None:
    with _loop(False) as (sock, _responder), _udp() as client:
        q = dns.message.make_query("video.svc.cpn.example", "A")
        client.sendto(q.to_wire(), sock.getsockname())
        assert dns.message.from_wire(client.recv(4096)).answer


def _mutants(n: int, seed: int = 7) -> list[bytes]:
    """``n`` damaged copies of real queries: flipped octets, cut or padded tails."""
    rnd = random.Random(seed)
    base = [q for q in _queries() if len(q) >= 12]
    out = []
    for k in range(n):
        q = bytearray(base[k % len(base)])
        for _ in range(rnd.randint(1, 3)):
            how = rnd.random()
            if how < 0.6:
                q[rnd.randrange(2, len(q))] = rnd.randrange(256)  # keep the id
            elif how < 0.8:
                del q[rnd.randrange(12, len(q) + 1):]
            else:
                q += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
        q[0:2] = (5000 + k).to_bytes(2, "big")  # one id per datagram
        out.append(bytes(q))
    return out


@pytest.mark.parametrize("cached", [False, True])
def test_batched_loop_answers_damaged_queries_as_the_responder_and_survives(
        cached: bool) -> None:
    with _loop(cached) as (sock, responder), _udp() as client:
        queries = _mutants(300)
        want = {}
        for q in queries:
            out, _ = responder.respond_full(q, "127.0.0.1")
            if out is not None:
                want[q[:2]] = out
        assert len(want) > 100  # most damaged queries still get an answer (FORMERR …)
        got: dict[bytes, bytes] = {}
        for start in range(0, len(queries), 50):  # bursts: many datagrams per batch
            for q in queries[start:start + 50]:
                client.sendto(q, sock.getsockname())
            expect = sum(1 for q in queries[start:start + 50] if q[:2] in want)
            for _ in range(expect):
                r = client.recv(4096)
                got[r[:2]] = r
        assert got == want
        ok = dns.message.make_query("video.svc.cpn.example", "A")
        client.sendto(ok.to_wire(), sock.getsockname())
        assert dns.message.from_wire(client.recv(4096)).answer  # the loop is alive


def test_shutdown_wakes_a_loop_blocked_in_recvmmsg() -> None:
    """``DnsServer.stop`` relies on it: on Linux, ``shutdown`` of an unconnected UDP
    socket raises ENOTCONN yet wakes its blocked reader with an empty datagram."""
    with _udp() as sock:
        batch = Batch(sock, size=4)
        got: list[int] = []
        t = threading.Thread(target=lambda: got.append(batch.length(0) if batch.recv() else -1),
                             daemon=True)
        t.start()
        time.sleep(0.2)
        with pytest.raises(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        t.join(3)
        assert not t.is_alive() and got == [0]
