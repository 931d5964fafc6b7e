"""Sequence-numbered, timestamped UDP stream with loss / duplicate / reorder accounting.

Rules:
- Wire format (big-endian): ``seq`` u64, ``sent_ns`` u64 (sender's ``time.time_ns``),
  then zero padding to ``size`` bytes. Sender and receiver share only this.
- ``Accounting`` is sans-I/O: feed it ``(seq, sent_ns, recv_ns)``, read ``summary()``.
  ``lost`` = expected − unique received, where expected is the sender's count when
  known, else highest seq + 1 (datagrams already queued when SIGTERM arrives are still
  counted); ``reordered`` = arrivals with a seq below one already seen;
  ``max_gap_ms`` = largest inter-arrival gap (a path switch shows up here);
  ``latency_ms_p50/p99/max`` = one-way delay (meaningful when sender and receiver share
  a clock: namespaces on one host).
- ``send --tos`` marks the datagrams (IPv4 TOS / IPv6 traffic class byte, e.g. 0xb8 =
  DSCP 46) so a probe travels in a slice's class.
- The sender paces on an absolute schedule (``t0 + i/rate``), so a slow iteration is
  caught up, not accumulated.
- CLI (run inside namespaces): ``python -m labs.traffic send DST PORT --rate 1000
  --count 3000`` and ``python -m labs.traffic recv PORT --count 3000 --idle 2``; each
  prints one JSON line when done (receiver also on SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

HEADER = struct.Struct("!QQ")


def encode(seq: int, sent_ns: int, size: int = 64) -> bytes:
    return HEADER.pack(seq, sent_ns).ljust(max(size, HEADER.size), b"\0")


def decode(data: bytes) -> tuple[int, int]:
    if len(data) < HEADER.size:
        raise ValueError(f"datagram of {len(data)} bytes is shorter than the {HEADER.size}-byte"
                         " header")
    seq, sent = HEADER.unpack_from(data)
    return int(seq), int(sent)


@dataclass
class Accounting:
    """Receiver-side bookkeeping (sans-I/O)."""

    expected: int | None = None
    seen: set[int] = field(default_factory=set)
    received: int = 0
    duplicates: int = 0
    reordered: int = 0
    max_seq: int = -1
    max_gap_ms: float = 0.0
    _last_recv_ns: int | None = None
    _lat_ms: list[float] = field(default_factory=list)

    def feed(self, seq: int, sent_ns: int, recv_ns: int) -> None:
        self.received += 1
        if seq in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(seq)
        if seq < self.max_seq:
            self.reordered += 1
        self.max_seq = max(self.max_seq, seq)
        if self._last_recv_ns is not None:
            self.max_gap_ms = max(self.max_gap_ms, (recv_ns - self._last_recv_ns) / 1e6)
        self._last_recv_ns = recv_ns
        self._lat_ms.append((recv_ns - sent_ns) / 1e6)

    def done(self) -> bool:
        return self.expected is not None and len(self.seen) >= self.expected

    def summary(self) -> dict[str, Any]:
        expected = self.expected if self.expected is not None else self.max_seq + 1
        lat = sorted(self._lat_ms)
        missing = [s for s in range(expected) if s not in self.seen][:20]
        return {"expected": expected, "received": self.received, "unique": len(self.seen),
                "lost": expected - len(self.seen), "duplicates": self.duplicates,
                "reordered": self.reordered, "max_gap_ms": round(self.max_gap_ms, 3),
                "latency_ms_p50": round(lat[len(lat) // 2], 3) if lat else None,
                "latency_ms_p99": round(lat[min(len(lat) - 1, len(lat) * 99 // 100)], 3)
                if lat else None,
                "latency_ms_max": round(lat[-1], 3) if lat else None,
                "first_missing": missing}


def send(dst: str, port: int, rate: float, count: int, size: int = 64,
         tos: int = 0) -> dict[str, Any]:
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if tos:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
        interval = 1.0 / rate
        t0 = time.perf_counter()
        errors = 0
        for seq in range(count):
            delay = t0 + seq * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                sock.sendto(encode(seq, time.time_ns(), size), (dst, port))
            except OSError:
                errors += 1  # e.g. ENETUNREACH: counted, the receiver will see the loss
        return {"sent": count, "send_errors": errors,
                "duration_s": round(time.perf_counter() - t0, 3)}


def receive(port: int, count: int | None, idle: float, bind: str = "") -> dict[str, Any]:
    acc = Accounting(expected=count)
    stop = False

    def _term(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _term)
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.bind((bind, port))
        print(json.dumps({"listening": port}), flush=True)
        sock.settimeout(0.2)
        last = time.monotonic()
        while not stop and not acc.done():
            try:
                data = sock.recv(65535)
            except TimeoutError:
                if acc.received and time.monotonic() - last > idle:
                    break
                continue
            last = time.monotonic()
            try:
                seq, sent = decode(data)
            except ValueError:
                continue
            acc.feed(seq, sent, time.time_ns())
        if stop:  # stopped by a signal: what already arrived is counted, not dropped
            sock.setblocking(False)
            while not acc.done():
                try:
                    data = sock.recv(65535)
                except OSError:
                    break
                with contextlib.suppress(ValueError):
                    acc.feed(*decode(data), time.time_ns())
    return acc.summary()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m labs.traffic")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="send a paced sequence-numbered UDP stream")
    s.add_argument("dst")
    s.add_argument("port", type=int)
    s.add_argument("--rate", type=float, default=1000.0, help="packets per second")
    s.add_argument("--count", type=int, default=1000)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--tos", type=lambda v: int(v, 0), default=0,
                   help="TOS / traffic-class byte, e.g. 0xb8 for DSCP 46 (EF)")
    r = sub.add_parser("recv", help="receive and account a stream")
    r.add_argument("port", type=int)
    r.add_argument("--count", type=int, default=None)
    r.add_argument("--idle", type=float, default=2.0, help="stop after this many idle s")
    r.add_argument("--bind", default="")
    a = ap.parse_args(argv)
    if a.cmd == "send":
        out = send(a.dst, a.port, a.rate, a.count, a.size, a.tos)
    else:
        out = receive(a.port, a.count, a.idle, a.bind)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
