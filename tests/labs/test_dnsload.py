"""The light DNS load generator (``labs/dnsload.c``) counts only valid answers: a server
that drops some queries and spoils others gets exactly its valid answers counted
(the ``scaling_2_cores`` figure of ``cpn bench dns`` rests on it, issue #19)."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from labs import dnsload
from tests.conftest import have

NAMES = ["video.svc.cpn.example", "VIDEO.svc.cpn.example", "nothing.cpn.example"]


class SpoilingServer:
    """Answers query k (in arrival order) by ``k % 8``: 0 dropped, 1 wrong RCODE, 2 the
    question in another letter case, 3 QR clear, 4 another id, 5 a 5-octet datagram,
    6 the valid answer twice (the second is a duplicate), otherwise the valid answer."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.sent: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        r = dns.message.make_response(query)
        name = query.question[0].name
        if name.to_text(omit_final_dot=True).lower().startswith("nothing."):
            r.set_rcode(dns.rcode.NXDOMAIN)
        else:
            r.answer.append(dns.rrset.from_text(name, 5, "IN", "A", "10.0.1.10"))
        return r

    def _serve(self) -> None:
        k = 0
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            q = dns.message.from_wire(data)
            kind = k % 8
            k += 1
            good = self._answer(q).to_wire()
            if kind == 0:
                self.sent["dropped"] += 1
                continue
            if kind == 1:
                r = self._answer(q)
                r.set_rcode(dns.rcode.SERVFAIL)
                out = r.to_wire()
            elif kind == 2:
                out = good[:12] + good[12:].swapcase()  # the name's letters flip case
            elif kind == 3:
                out = good[:2] + bytes([good[2] & 0x7F]) + good[3:]
            elif kind == 4:
                out = bytes([good[0] ^ 0x80, good[1]]) + good[2:]
            elif kind == 5:
                out = good[:5]
            else:
                out = good
            self.sent["valid" if kind >= 6 else "spoilt"] += 1
            self.sock.sendto(out, addr)
            if kind == 6:
                self.sock.sendto(out, addr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def server() -> Iterator[SpoilingServer]:
    srv = SpoilingServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dnsload.build(tmp_path_factory.mktemp("dnsload"))


def _queries(path: Path) -> None:
    qs = []
    for name in NAMES:
        wire = dns.message.make_query(name, "A", use_edns=0).to_wire()
        rcode = dns.rcode.NXDOMAIN if name.startswith("nothing.") else dns.rcode.NOERROR
        qs.append((wire, int(rcode)))
    dnsload.write_queries(path, qs)


@pytest.mark.skipif(not have("gcc"), reason="needs gcc (scripts/bootstrap.sh installs it)")
def test_generator_counts_only_valid_answers(server: SpoilingServer, binary: Path,
                                             tmp_path: Path) -> None:
    qfile = tmp_path / "q.bin"
    _queries(qfile)
    res = dnsload.run(binary, server.port, qfile, duration_s=20, window=64, sockets=2,
                      timeout_ms=200, count=400, sample_every=1)
    # 400 queries: 50 of each kind (the server numbers them in arrival order)
    assert res.sent == 400
    assert server.sent == {"dropped": 50, "spoilt": 250, "valid": 100}
    # never answered in a form that names them (dropped, another id, too short): lost
    # once the timeout passed
    assert res.lost == 150
    assert res.bad_rcode == 50
    assert res.bad_question == 50
    assert res.bad_flags == 50
    assert res.malformed == 50
    # another id: matches no query in flight; a duplicate: its query was already answered
    assert res.unmatched == 100
    assert res.answered == 100  # kinds 6 and 7, the duplicate counted once
    assert res.in_flight_at_end == 0
    assert len(res.samples) == 100
    for qidx, wire in res.samples:
        msg = dns.message.from_wire(wire)
        assert msg.question[0].name.to_text(omit_final_dot=True) == NAMES[qidx % 3]


@pytest.mark.skipif(not have("gcc"), reason="needs gcc (scripts/bootstrap.sh installs it)")
def test_sample_checker_names_each_wrong_answer(server: SpoilingServer, binary: Path,
                                                tmp_path: Path) -> None:
    qfile = tmp_path / "q.bin"
    _queries(qfile)
    res = dnsload.run(binary, server.port, qfile, duration_s=20, window=32, sockets=1,
                      timeout_ms=200, count=80, sample_every=1)

    def expect(qidx: int, wire: bytes) -> str | None:
        return None if NAMES[qidx % 3].startswith("nothing.") else "not wanted"

    problems = dnsload.check_samples(res.samples, expect)
    assert problems and all(p.endswith("not wanted") for p in problems)
    assert len(problems) == sum(1 for q, _ in res.samples if q % 3 != 2)


def test_bad_query_sets_are_refused_with_the_query_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="query 1 is 3 octets"):
        dnsload.write_queries(tmp_path / "q.bin", [(b"x" * 20, 0), (b"abc", 0)])
    with pytest.raises(ValueError, match="RCODE 16"):
        dnsload.write_queries(tmp_path / "q.bin", [(b"x" * 20, 16)])
    with pytest.raises(ValueError, match="no queries"):
        dnsload.write_queries(tmp_path / "q.bin", [])


@pytest.mark.skipif(not have("gcc"), reason="needs gcc (scripts/bootstrap.sh installs it)")
def test_a_truncated_query_file_stops_the_generator_with_its_name(binary: Path,
                                                                  tmp_path: Path) -> None:
    qfile = tmp_path / "q.bin"
    qfile.write_bytes(b"\x00\x20\x00" + b"\x00" * 10)
    with pytest.raises(RuntimeError, match="query 0 in .*q.bin is truncated"):
        dnsload.run(binary, 53, qfile, duration_s=0.1)
