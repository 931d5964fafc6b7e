"""A light DNS-over-UDP load generator (``labs/dnsload.c``) for ``cpn bench dns``.

Rules:
- Why: on a machine whose cores the load generator shares with the servers, the wall
  gain of 2 server workers over 1 is bounded by 2·S/(S + C) (S, C = server and client
  CPU per query). dnsperf spends several µs per query on its own bookkeeping; this
  generator spends what the kernel needs to send and receive the datagrams plus a few
  dozen instructions, so the bound is the servers' own.
- ``build(dir)`` compiles the C source with ``gcc -O2`` into ``dir`` (a fraction of a
  second; gcc is in ``scripts/bootstrap.sh``'s packages) and returns the binary.
- ``write_queries(path, queries)`` stores the query set: per query its wire octets and
  the RCODE its answer must carry. The generator sends them round-robin, each with a
  fresh id, over ``sockets`` connected UDP sockets (the kernel's SO_REUSEPORT hash
  spreads sockets, not queries, over server workers), ``window`` queries in flight in
  total, ``sendmmsg``/``recvmmsg`` batches of 64.
- Only valid answers are counted (``answered``, ``qps``): the id must match a query in
  flight on that socket, QR set, same opcode, QDCOUNT 1, the question echoed octet for
  octet (letter case included), the expected RCODE. Everything else is counted under
  its own heading (``bad_rcode``, ``bad_question``, ``bad_flags``, ``malformed``,
  ``unmatched``: late, duplicate or forged ids; an answer too short to carry an id
  leaves its query in flight); a query unanswered within
  ``timeout_ms`` is ``lost`` and its slot reused. Answers arriving after ``duration_s``
  are not counted.
- ``count``: send exactly that many queries, then wait for every answer or its timeout
  (tests use it for exact counts).
- ``sample_every``: every n-th valid answer is returned whole (``samples``, at most
  4,096) with its query's index, for a full parse by the caller (``check_samples``).
- ``send_calls`` / ``recv_calls``: system calls made (queries per ``sendmmsg`` and
  answers per ``recvmmsg`` show how well the batches fill).
- ``cpu``: pin the generator (``taskset`` list); its CPU time (user + system) comes back
  as ``client_cpu_s`` from its own ``getrusage``.
- Errors: a bad query file or address makes the binary exit 2 naming the problem;
  ``run`` raises ``RuntimeError`` with that text.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).with_name("dnsload.c")


@dataclass
class LoadResult:
    """What one generator run saw (see module rules)."""

    sent: int
    answered: int
    bad_rcode: int
    bad_question: int
    bad_flags: int
    malformed: int
    unmatched: int
    lost: int
    in_flight_at_end: int
    send_errors: int
    send_calls: int
    recv_calls: int
    elapsed_s: float
    qps: float
    avg_latency_ms: float
    client_cpu_s: float
    samples: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        """Answers received but refused (wrong RCODE, question, flags, id or shape)."""
        return (self.bad_rcode + self.bad_question + self.bad_flags + self.malformed
                + self.unmatched)

    @property
    def client_cpu_us_per_answer(self) -> float:
        return self.client_cpu_s / self.answered * 1e6 if self.answered else -1.0


def build(directory: Path) -> Path:
    """Compile the generator into ``directory``; the binary's path."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is not installed: run scripts/bootstrap.sh (it installs gcc)")
    out = directory / "dnsload"
    proc = subprocess.run([gcc, "-O2", "-Wall", "-o", str(out), str(SOURCE)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling {SOURCE} failed: {proc.stderr.strip()}")
    return out


def write_queries(path: Path, queries: Sequence[tuple[bytes, int]]) -> None:
    """Store ``queries`` (wire octets, expected RCODE) for the generator."""
    parts = []
    for i, (wire, rcode) in enumerate(queries):
        if not 17 <= len(wire) <= 512:
            raise ValueError(f"query {i} is {len(wire)} octets; 17..512 expected")
        if not 0 <= rcode <= 15:
            raise ValueError(f"query {i}: RCODE {rcode} is not 0..15")
        parts.append(struct.pack("!HB", len(wire), rcode) + wire)
    if not parts:
        raise ValueError("no queries to write")
    path.write_bytes(b"".join(parts))


def run(binary: Path, port: int, queries: Path, *, host: str = "127.0.0.1",
        duration_s: float = 3.0, window: int = 256, sockets: int = 16,
        timeout_ms: int = 1000, count: int | None = None, sample_every: int = 0,
        cpu: str | None = None) -> LoadResult:
    """Run the generator against ``host``:``port`` (see module rules)."""
    with tempfile.TemporaryDirectory(prefix="cpn-dnsload-") as tmp:
        sample_file = Path(tmp) / "samples"
        cmd = [str(binary), "-s", host, "-p", str(port), "-f", str(queries),
               "-d", str(duration_s), "-w", str(window), "-c", str(sockets),
               "-t", str(timeout_ms)]
        if count is not None:
            cmd += ["-n", str(count)]
        if sample_every > 0:
            cmd += ["-S", str(sample_file), "-e", str(sample_every)]
        if cpu is not None:
            cmd = ["taskset", "-c", cpu, *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=duration_s + timeout_ms / 1000 + 30)
        if proc.returncode != 0:
            raise RuntimeError(f"dnsload failed ({proc.returncode}): {proc.stderr.strip()}")
        raw = json.loads(proc.stdout.strip().splitlines()[-1])
        samples = _read_samples(sample_file) if sample_every > 0 else []
    cpu_s = raw.pop("cpu_user_s") + raw.pop("cpu_sys_s")
    raw.pop("samples")
    return LoadResult(**raw, client_cpu_s=cpu_s, samples=samples)


def _read_samples(path: Path) -> list[tuple[int, bytes]]:
    if not path.exists():
        return []
    data = path.read_bytes()
    out: list[tuple[int, bytes]] = []
    off = 0
    while off + 6 <= len(data):
        qidx, n = struct.unpack_from("!IH", data, off)
        out.append((qidx, data[off + 6:off + 6 + n]))
        off += 6 + n
    return out


def check_samples(samples: Sequence[tuple[int, bytes]],
                  expect: Callable[[int, bytes], str | None]) -> list[str]:
    """Run ``expect(query index, answer octets)`` on each sample; the problems it named
    (``None`` = the answer is right), each prefixed with the query index."""
    problems = []
    for qidx, wire in samples:
        why = expect(qidx, wire)
        if why is not None:
            problems.append(f"query {qidx}: {why}")
    return problems
