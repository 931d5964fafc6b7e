"""Link probes: delay, jitter, loss between sites over UDP (GBA-6.4.3b network metrics).

Rules:
- Wire format (sans-I/O ``encode_probe``/``decode_probe``): 24 bytes, big-endian
  ``magic "CPNP" | version 1 | flags (0 = probe, 1 = reply) | pad 2 | seq u64 |
  t_send_ns u64`` (sender's monotonic clock). The responder echoes the packet with
  flags = 1; only the sender's clock is used, so clocks need not be synchronised.
- ``ProbeWindow`` keeps the last ``window`` probes: delay = mean RTT / 2 (ms); jitter
  = RFC 3550 §6.4.1 estimator ``J += (|D| − J)/16`` over consecutive RTTs, halved to
  one-way; loss % = probes without a reply within ``timeout`` / probes decided (in-
  flight probes are not counted). Late or duplicate replies are ignored; a reply with
  a bad magic/length is dropped.
- ``ProbeComponent`` is a ``telemetry.source.MetricSource``: it stages
  ``Link.delay_ms/jitter_ms/loss_pct`` of the configured link key at most once per
  window period and flushes at once through ``telemetry.source.commit``; the
  precedence rule (``telemetry.precedence.merge``) keeps the operator's fields, writes
  only when a value moved, and never creates an unknown link (logged once).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from controller.errors import RemoteProtocolError
from telemetry.models import ProbePeer
from telemetry.source import commit

log = logging.getLogger("cpn.telemetry.probes")

_FMT = struct.Struct("!4sBBxxQQ")
MAGIC = b"CPNP"
PROBE, REPLY = 0, 1


def encode_probe(seq: int, t_ns: int, flags: int = PROBE) -> bytes:
    return _FMT.pack(MAGIC, 1, flags, seq, t_ns)


def decode_probe(data: bytes) -> tuple[int, int, int]:
    """→ (flags, seq, t_send_ns); ``RemoteProtocolError`` for anything else."""
    if len(data) != _FMT.size:
        raise RemoteProtocolError(f"probe of {len(data)} bytes, expected {_FMT.size}")
    magic, ver, flags, seq, t_ns = _FMT.unpack(data)
    if magic != MAGIC or ver != 1 or flags not in (PROBE, REPLY):
        raise RemoteProtocolError("not a CPN probe (bad magic/version/flags)")
    return flags, seq, t_ns


@dataclass(frozen=True, slots=True)
class LinkSample:
    """Measured over a window: ``delay_ms`` (one-way, RTT/2), ``jitter_ms``,
    ``loss_pct`` (0–100), ``sent``, ``received``."""

    delay_ms: float
    jitter_ms: float
    loss_pct: float
    sent: int
    received: int


class ProbeWindow:
    """Sans-I/O probe bookkeeping for one peer (times in ns, caller's clock).

    A probe is *in flight* until answered or ``timeout_ns`` old; then it is decided
    (RTT or lost) and enters the window of the last ``window`` decided probes."""

    def __init__(self, window: int = 50, timeout_ns: int = 1_000_000_000) -> None:
        self.window, self.timeout_ns = window, timeout_ns
        self.in_flight: OrderedDict[int, int] = OrderedDict()  # seq -> t_send
        self.done: deque[int | None] = deque(maxlen=window)  # RTT ns or None (lost)
        self.jitter_ns = 0.0
        self._last_rtt: int | None = None
        self.next_seq = 0

    def probe(self, now_ns: int) -> bytes:
        self.expire(now_ns)
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        self.in_flight[seq] = now_ns
        return encode_probe(seq, now_ns)

    def expire(self, now_ns: int) -> None:
        while self.in_flight:
            seq, t = next(iter(self.in_flight.items()))
            if now_ns - t <= self.timeout_ns:
                break
            del self.in_flight[seq]
            self.done.append(None)

    def reply(self, data: bytes, now_ns: int) -> int | None:
        """Account a reply; returns its RTT (ns) or None if ignored (bad, late, dup)."""
        try:
            flags, seq, t_ns = decode_probe(data)
        except RemoteProtocolError:
            return None
        if flags != REPLY or self.in_flight.get(seq) != t_ns:
            return None
        rtt = now_ns - t_ns
        if rtt < 0 or rtt > self.timeout_ns:
            return None
        del self.in_flight[seq]
        self.done.append(rtt)
        if self._last_rtt is not None:  # RFC 3550 §6.4.1
            self.jitter_ns += (abs(rtt - self._last_rtt) - self.jitter_ns) / 16
        self._last_rtt = rtt
        return rtt

    def sample(self, now_ns: int) -> LinkSample | None:
        self.expire(now_ns)
        if not self.done:
            return None
        got = [r for r in self.done if r is not None]
        delay = (sum(got) / len(got) / 2 / 1e6) if got else 0.0
        loss = 100.0 * (len(self.done) - len(got)) / len(self.done)
        return LinkSample(round(delay, 4), round(self.jitter_ns / 2 / 1e6, 4), round(loss, 2),
                          len(self.done), len(got))


class ProbeResponder(asyncio.DatagramProtocol):
    """Echo probes back as replies (the peer's clock is never read)."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.answered = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            flags, seq, t_ns = decode_probe(data)
        except RemoteProtocolError:
            return
        if flags == PROBE:
            self.transport.sendto(encode_probe(seq, t_ns, REPLY), addr)
            self.answered += 1


class ProbeSender(asyncio.DatagramProtocol):
    """Sends a probe every ``interval_ms`` to one peer; replies feed ``window``."""

    def __init__(self, window: ProbeWindow) -> None:
        self.window = window

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.window.reply(data, time.monotonic_ns())

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable etc.
        log.debug("probe error: %s", exc)


def _addr(hp: str) -> tuple[str, int]:
    host, _, port = hp.rpartition(":")
    return host.strip("[]"), int(port)


async def start_responder(listen: str) -> tuple[asyncio.DatagramTransport, ProbeResponder]:
    loop = asyncio.get_running_loop()
    t, p = await loop.create_datagram_endpoint(ProbeResponder, local_addr=_addr(listen))
    return t, p


class ProbeComponent:
    """Component: answer probes on ``listen``; probe ``peers``; write link state (a
    ``MetricSource``)."""

    name = "telemetry-probes"
    actor = "telemetry-probes"

    def __init__(self, peers: list[ProbePeer], listen: str | None = None) -> None:
        self.peers, self.listen = peers, listen
        self.windows: dict[str, ProbeWindow] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._transports: list[Any] = []
        self._warned: set[str] = set()
        self.last: dict[str, LinkSample] = {}
        self.staged: dict[str, Any] = {}

    async def start(self, rt: Any) -> None:
        self.store = rt.store
        if self.listen:
            t, _ = await start_responder(self.listen)
            self._transports.append(t)
        for peer in self.peers:
            self._tasks.append(asyncio.create_task(self._probe(peer)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for tr in self._transports:
            tr.close()

    async def _probe(self, peer: ProbePeer) -> None:
        loop = asyncio.get_running_loop()
        win = self.windows[peer.link] = ProbeWindow(peer.window,
                                                    timeout_ns=int(peer.timeout_ms * 1e6))
        tr, _ = await loop.create_datagram_endpoint(lambda: ProbeSender(win),
                                                    remote_addr=_addr(peer.peer))
        self._transports.append(tr)
        n = 0
        while True:
            tr.sendto(win.probe(time.monotonic_ns()))
            n += 1
            if n % max(peer.window // 5, 1) == 0:
                self.observe(peer.link, win.sample(time.monotonic_ns()))
                self.flush()
            await asyncio.sleep(peer.interval_ms / 1000)

    def observe(self, link_key: str, sample: LinkSample | None) -> None:
        """Stage one window's measurement of ``link_key`` (None: nothing measured)."""
        from controller.models import Link

        if sample is None:
            return
        self.last[link_key] = sample
        link = self.store.get(Link, link_key)
        if link is None:
            if link_key not in self._warned:
                self._warned.add(link_key)
                log.warning("probed link not in topology; not written",
                            extra={"fields": {"link": link_key}})
            return
        self.staged[link_key] = link.model_copy(update={
            "delay_ms": sample.delay_ms, "jitter_ms": sample.jitter_ms,
            "loss_pct": sample.loss_pct})

    def backlog(self) -> int:
        return len(self.staged)

    def flush(self) -> int:
        """Commit the staged measurements (the precedence rule drops unmoved ones)."""
        if not self.staged:
            return 0
        recs, self.staged = list(self.staged.values()), {}
        return len(commit(self.store, self.actor, "link probe", recs))
