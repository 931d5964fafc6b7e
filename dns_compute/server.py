"""The embedded authoritative DNS server: thin socket adapters around ``Responder``.

Rules:
- UDP is served by ``udp_threads`` blocking loops, each on its own socket bound with
  SO_REUSEPORT to the same address (the kernel spreads clients across them). On Linux a
  loop receives and sends in batches (``recvmmsg``/``sendmmsg`` through ``mmsg.Batch``:
  one system call for up to 64 datagrams each way, buffers reused in place); elsewhere
  (or ``batched=False``) it is ``recvfrom → answer → sendto``. A loop has its own
  ``AnswerCache`` (``cache.py``:
  case-folded keys, per-source answers for steered names asked without ECS, bounded
  in entries whatever the number of clients); a repeated question costs a dict
  lookup and a concatenation. The cache belongs to one zone version and is dropped
  when the responder's zone changes; answers the responder marks uncacheable are not
  cached.
- ``udp_workers`` extra worker processes (``worker.py``) bind the same port with
  SO_REUSEPORT and answer from a copy of the zone the server pipes to them on start and
  on every swap: the UDP threads share one GIL, the workers do not, so answering scales
  over cores. A worker that dies is logged and dropped; ``stop()`` closes their pipes
  (they exit at once) and waits for them by pid.
- ``cache=False`` answers every query through the responder (fast path + full path):
  ``cpn bench dns`` measures the uncached figure this way.
- TCP (RFC 7766) runs on the asyncio loop: 2-octet length framing, pipelined queries,
  idle connections closed after ``TCP_IDLE_S``.
- Before binding with SO_REUSEPORT, a plain bind probes the port so a second server
  cannot silently share it with us.
- ``stop()`` wakes each UDP loop with an empty datagram and a ``shutdown`` of its socket
  and joins it; sockets are closed. A woken loop returns before touching its socket again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import subprocess
import sys
import threading

from dns_compute import mmsg
from dns_compute.cache import AnswerCache
from dns_compute.fastpath import FastTable, fast_answer
from dns_compute.mmsg import SLOT, Batch
from dns_compute.responder import Responder, WireZone
from dns_compute.worker import encode_zone

log = logging.getLogger("cpn.dns")

TCP_IDLE_S = 10.0


def _udp_loop(sock: socket.socket, responder: Responder, stop: threading.Event,
              cache: AnswerCache) -> None:
    recv = sock.recvfrom
    send = sock.sendto
    respond = responder.respond
    zone = None
    fast, fast_src = cache.fast_lookup, cache.fast_source
    lookup, remember = cache.get, cache.put
    fast_hits = 0
    while True:
        try:
            data, addr = recv(4096)
        except OSError:
            if stop.is_set():
                return
            continue
        if not data:  # stop() wakes us with an empty datagram
            if stop.is_set():
                return
            continue
        z = responder.zone
        if z is not zone:
            zone = z
            cache.clear()
        tail = data[2:]
        hit = fast(tail)  # a lower-case question asked before: one concatenation
        if hit is None:
            slot = fast_src(tail)
            hit = slot.get(addr[0]) if slot is not None else None
        if hit is None:
            hit = lookup(data, addr[0])  # other spellings (parses the name)
        else:
            fast_hits += 1
            if not fast_hits & 1023:
                cache.fast_hits = fast_hits
            hit = data[:2] + hit
        if hit is not None:
            try:
                send(hit, addr)
            except OSError:
                pass
            continue
        try:
            out, mode = respond(data, addr[0], False, z)
        except Exception:  # never let one query kill the loop
            log.exception("DNS responder failed on a %d-octet query", len(data))
            continue
        if out is None:
            continue
        with contextlib.suppress(OSError):
            send(out, addr)
        remember(data, addr[0], out, mode)


def _free_port(family: int, host: str) -> int:
    """A port free for both UDP and TCP on ``host`` (port 0 given): a UDP ephemeral port
    may be held by a TCP socket, which made the TCP listener fail on a busy machine."""
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise OSError(f"no port free for both UDP and TCP on {host}")


def _udp_loop_uncached(sock: socket.socket, responder: Responder,
                       stop: threading.Event) -> None:
    recv = sock.recvfrom
    send = sock.sendto
    respond = responder.respond
    while True:
        try:
            data, addr = recv(4096)
        except OSError:
            if stop.is_set():
                return
            continue
        if not data:  # stop() wakes us with an empty datagram
            if stop.is_set():
                return
            continue
        z = responder.zone
        try:
            # the template fast path straight from the loop, else the full responder
            hit = fast_answer(z.fast, data, addr[0]) if z is not None and z.fast else None
            out = hit[0] if hit is not None else respond(data, addr[0])[0]
        except Exception:  # never let one query kill the loop
            log.exception("DNS responder failed on a %d-octet query", len(data))
            continue
        if out is not None:
            with contextlib.suppress(OSError):
                send(out, addr)


def _udp_loop_batched(sock: socket.socket, responder: Responder, stop: threading.Event,
                      cache: AnswerCache | None, size: int = 64,
                      batch: Batch | None = None) -> None:
    """The UDP loop on ``recvmmsg``/``sendmmsg`` (``mmsg.Batch``): one system call per
    batch each way, the batch's buffers used in place (no per-query method calls on the
    hot path). With ``cache`` the answer cache is asked first (as ``_udp_loop``);
    without, every query is answered from the current zone (fast path, else full).

    Answer j goes out from send slot j, its id from datagram j's own buffer (``Batch``),
    so a cache hit (the answer after the id) is stored as it is. While no query of the
    batch was dropped, j == i and send message j already points at datagram i's id and
    address; after a drop, answers shift and carry both pointers (``batch.skewed``:
    ``flush`` puts them back)."""
    if batch is None:
        batch = Batch(sock, size)
    size = batch.size
    recv, source_of, flush = batch.recv, batch.source, batch.flush
    lazy_src = [functools.partial(source_of, i) for i in range(size)]
    rview, lens, sview, siov, smsg = (batch.rview, batch.lens, batch.sview, batch.siov,
                                      batch.smsg)
    # per slot i: (i, buffer offset, its offset + 2, index of its length, index of its
    # send length)
    slots = [(i, i * SLOT, i * SLOT + 2, batch.len_index[i], 4 * i + 3)
             for i in range(size)]
    pointer_idx = [i * batch.stride64 for i in range(size)]
    name_ptr, id_ptr = batch.name_ptr, batch.id_ptr
    respond = responder.respond
    zone: WireZone | None = None
    table: FastTable | None = None
    cached = cache is not None
    fast = fast_src = None
    if cache is not None:
        fast, fast_src = cache.fast_lookup, cache.fast_source
        lookup, remember = cache.get, cache.put
    fast_hits = 0
    while True:
        try:
            k = recv()
        except OSError:
            if stop.is_set():
                return
            continue
        if stop.is_set():  # woken by stop(): never touch the socket's fd again
            return
        z = responder.zone
        if z is not zone:
            zone = z
            table = z.fast if z is not None else None
            if cache is not None:
                cache.clear()
        j = 0  # answers queued so far (send slot of the next one)
        for i, off, off2, li, sl in slots[:k]:
            end = off + lens[li]
            if cached:
                # the answer after the id: a lower-case question asked before
                tail = bytes(rview[off2:end])
                hit = fast(tail)  # type: ignore[misc]
                if hit is None:
                    slot = fast_src(tail)  # type: ignore[misc]
                    if slot is not None:
                        hit = slot.get(source_of(i))
                if hit is not None:
                    fast_hits += 1
                    m = len(hit)
                    if j == i:
                        sview[off2:off2 + m] = hit
                        siov[sl] = m
                    else:
                        so = j * SLOT + 2
                        sview[so:so + m] = hit
                        siov[4 * j + 3] = m
                        siov[4 * j] = id_ptr[i]
                        smsg[pointer_idx[j]] = name_ptr[i]
                        batch.skewed = True
                    j += 1
                    continue
            data = bytes(rview[off:end])
            if end - off < 2:
                if not data and stop.is_set():  # stop() wakes us with an empty datagram
                    batch.queued = j
                    flush()
                    return
                continue  # not even an id: nothing to answer
            out: bytes | None
            try:
                if cached:
                    src = source_of(i)
                    out = lookup(data, src)  # other spellings (parses the name)
                    if out is None:
                        out, mode = respond(data, src, False, z)
                        if out is not None:
                            remember(data, src, out, mode)
                else:
                    # the template fast path straight from the loop, else the full responder
                    hit2 = fast_answer(table, data, lazy_src[i]) if table is not None else None
                    out = hit2[0] if hit2 is not None else respond(
                        data, source_of(i), False, z)[0]
            except Exception:  # never let one query kill the loop
                log.exception("DNS responder failed on a %d-octet query", len(data))
                continue
            if out is None:
                continue
            n = len(out)
            if n > SLOT:
                with contextlib.suppress(OSError):
                    sock.sendto(out, (source_of(i), batch.source_port(i)))
                continue
            # a whole answer: its first two octets (the id, as in the query) are not sent
            if j == i:
                sview[off:off + n] = out
                siov[sl] = n - 2
            else:
                so = j * SLOT
                sview[so:so + n] = out
                siov[4 * j + 3] = n - 2
                siov[4 * j] = id_ptr[i]
                smsg[pointer_idx[j]] = name_ptr[i]
                batch.skewed = True
            j += 1
        if fast_hits:  # counted before the answers leave: a client that got them
            cache.fast_hits += fast_hits  # type: ignore[union-attr]  # sees the count
            fast_hits = 0
        if j:
            batch.queued = j
            flush()


class DnsServer:
    """UDP threads + asyncio TCP listener for one ``Responder`` on ``(host, port)``."""

    def __init__(self, responder: Responder, host: str, port: int,
                 udp_threads: int = 1, udp_workers: int = 0, cache: bool = True,
                 batched: bool = True) -> None:
        self.responder = responder
        self.host = host
        self.port = port
        self.udp_threads = udp_threads
        self.udp_workers = udp_workers
        self.cache = cache
        #: UDP loops on recvmmsg/sendmmsg (``mmsg``) where the machine has them
        self.batched = batched and mmsg.available()
        #: worker processes (``worker.py``) answering on the same port
        self.workers: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._tcp: asyncio.Server | None = None
        self.caches: list[AnswerCache] = []
        #: the batched loops' buffers (their ``batches``/``datagrams`` counters: /metrics)
        self.batches: list[Batch] = []

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        if self.port == 0:
            self.port = _free_port(family, self.host)
        if self.port:
            # SO_REUSEPORT would let a second server silently share the port with us;
            # a plain bind first proves nobody else holds it (UDP and TCP).
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(family, kind) as probe:
                    if kind == socket.SOCK_STREAM:
                        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((self.host, self.port))
        for i in range(self.udp_threads):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((self.host, self.port))
            if self.port == 0:
                self.port = sock.getsockname()[1]
            self._socks.append(sock)
            if self.batched:
                cache_b = AnswerCache() if self.cache else None
                if cache_b is not None:
                    self.caches.append(cache_b)
                batch = Batch(sock)
                self.batches.append(batch)
                t = threading.Thread(target=_udp_loop_batched,
                                     args=(sock, self.responder, self._stop, cache_b,
                                           batch.size, batch),
                                     name=f"cpn-dns-udp-{i}", daemon=True)
            elif self.cache:
                cache = AnswerCache()
                self.caches.append(cache)
                t = threading.Thread(target=_udp_loop,
                                     args=(sock, self.responder, self._stop, cache),
                                     name=f"cpn-dns-udp-{i}", daemon=True)
            else:
                t = threading.Thread(target=_udp_loop_uncached,
                                     args=(sock, self.responder, self._stop),
                                     name=f"cpn-dns-udp-{i}", daemon=True)
            self._threads.append(t)
        self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port,
                                               reuse_port=True)
        for t in self._threads:
            t.start()
        if self.udp_workers:
            await asyncio.to_thread(self._start_workers)

    def _start_workers(self) -> None:
        zone = self.responder.zone
        if zone is None:
            raise RuntimeError("DNS worker processes need a zone: build it before start()")
        frame = encode_zone(zone)
        for _ in range(self.udp_workers):
            proc = subprocess.Popen(  # our own module, fixed arguments
                [sys.executable, "-m", "dns_compute.worker", self.host, str(self.port)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.workers.append(proc)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(frame)
            proc.stdin.flush()
            line = proc.stdout.readline().decode(errors="replace").strip()
            if not line.startswith("ready"):
                raise RuntimeError(f"DNS worker process {proc.pid} did not start "
                                   f"(exit {proc.poll()}); see its stderr above")
        self.responder.on_swap.append(self._feed_workers)
        log.info("dns: %d UDP worker processes on %s:%d (pids %s)", len(self.workers),
                 self.host, self.port, ",".join(str(p.pid) for p in self.workers))

    def _feed_workers(self, zone: WireZone) -> None:
        frame = encode_zone(zone)
        for proc in list(self.workers):
            try:
                assert proc.stdin is not None
                proc.stdin.write(frame)
                proc.stdin.flush()
            except (OSError, ValueError):
                log.error("dns: UDP worker process %d is gone (exit %s); serving without it",
                          proc.pid, proc.poll())
                self.workers.remove(proc)

    def _stop_workers(self) -> None:
        if self._feed_workers in self.responder.on_swap:
            self.responder.on_swap.remove(self._feed_workers)
        for proc in self.workers:
            with contextlib.suppress(OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.close()
        for proc in self.workers:
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2.0)
            if proc.stdout is not None:
                proc.stdout.close()
        self.workers.clear()

    async def stop(self) -> None:
        self._stop.set()
        if self.workers:
            await asyncio.to_thread(self._stop_workers)
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.sendto(b"", sock.getsockname())
            # wakes a loop blocked on this very socket (Linux: ENOTCONN is raised here
            # for an unconnected UDP socket, but its readers are woken all the same)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            if t.is_alive():
                await asyncio.to_thread(t.join, 2.0)
        for sock in self._socks:
            sock.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = peer[0] if peer else "127.0.0.1"
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_S)
                size = int.from_bytes(head, "big")
                data = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_S)
                out, _ = self.responder.respond(data, source, tcp=True)
                if out is None:
                    break
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
