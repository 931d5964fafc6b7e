"""Batched UDP I/O for the responder's loops: many datagrams per system call (Linux).

Rules:
- ``Batch(sock, size)`` owns preallocated C arrays for ``recvmmsg(2)`` / ``sendmmsg(2)``
  (called through ``ctypes`` on the C library; no compiled code of our own): ``size``
  receive slots of ``SLOT`` octets, one source address per slot, ``size`` send slots.
  ``recv()`` blocks for the first datagram (``MSG_WAITFORONE``) and returns how many
  arrived (up to ``size``); ``data(i)`` is datagram ``i`` as ``bytes``; ``put(i, out)``
  queues ``out`` as the answer to datagram ``i`` (to its source address, which stays
  in C memory: no address object is built per query); ``flush()`` sends every queued
  answer with one ``sendmmsg`` (retrying the rest on a partial send) and empties the
  queue. An answer's first two octets are sent from the query's own buffer (a DNS
  answer echoes the query's id), so a cached answer (everything after the id) is
  stored as it is, with no concatenation. Send message j points at datagram j's
  source address and id unless an earlier datagram of the batch got no answer (then
  ``put`` re-points it and ``flush`` restores it). ``source(i)`` is datagram ``i``'s
  source address as a string, built only when asked (steered names asked without
  ECS, the full path) and memoised by its octets.
- The per-datagram work left in Python is a memoryview read (length), one slice copy
  (the query), one slice store (the answer) and one integer store (its length) — the
  ~3 µs of ``recvfrom`` + ``sendto`` per datagram become one system call per batch.
- ``available()`` says whether this machine has ``recvmmsg``/``sendmmsg`` (Linux with a
  glibc/musl exposing them, LP64); the server falls back to ``recvfrom``/``sendto``
  loops when it has not.
- ``Batch`` puts the socket in blocking mode (a Python timeout would make the
  descriptor non-blocking and ``recvmmsg`` return EAGAIN at once); should it become
  non-blocking later, ``recv()`` waits for it to be readable.
- Errors: ``recv()`` raises ``OSError`` with the C errno (the socket was closed under
  the loop: ``EBADF``; the caller checks its stop flag); ``EINTR`` is retried.
  An answer longer than ``SLOT`` octets is sent with ``sendto`` on its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import socket
import struct
import sys

SLOT = 4096  # octets per receive/send slot (a UDP query or answer we send: ≤ 1232)
MSG_WAITFORONE = 0x10000
MSG_DONTWAIT = 0x40


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


_MSTRIDE = ctypes.sizeof(_MMsgHdr)
_LEN_OFF = _MMsgHdr.len.offset
_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL | None:
    global _LIBC
    if _LIBC is None and sys.platform.startswith("linux") and ctypes.sizeof(ctypes.c_void_p) == 8:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            lib.recvmmsg  # noqa: B018 - presence check
            lib.sendmmsg  # noqa: B018
        except (OSError, AttributeError):
            return None
        for fn in (lib.recvmmsg, lib.sendmmsg):
            fn.restype = ctypes.c_int
        lib.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_void_p]
        lib.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        _LIBC = lib
    return _LIBC


def available() -> bool:
    """True when batched UDP I/O works on this machine (see module rules)."""
    return _libc() is not None


class Batch:
    """Preallocated ``recvmmsg``/``sendmmsg`` buffers for one UDP socket."""

    def __init__(self, sock: socket.socket, size: int = 64) -> None:
        lib = _libc()
        if lib is None:
            raise OSError("recvmmsg/sendmmsg are not available on this machine")
        self.sock = sock
        # recv() blocks in the kernel: a Python timeout makes the descriptor non-blocking
        sock.setblocking(True)
        self.size = size
        self.family = sock.family
        self._namelen = 28 if sock.family == socket.AF_INET6 else 16
        self._fd = sock.fileno()
        self._recvmmsg = lib.recvmmsg
        self._sendmmsg = lib.sendmmsg
        self._rbuf = (ctypes.c_char * (SLOT * size))()
        self._sbuf = (ctypes.c_char * (SLOT * size))()
        self._names = (ctypes.c_char * (self._namelen * size))()
        self._riov = (_IOVec * size)()
        # send message j: two iovecs, the id (2 octets) straight from receive slot j and
        # the rest of the answer from send slot j (whose first 2 octets are not sent)
        self._siov = (_IOVec * (2 * size))()
        self._rmsg = (_MMsgHdr * size)()
        self._smsg = (_MMsgHdr * size)()
        rbase = ctypes.addressof(self._rbuf)
        sbase = ctypes.addressof(self._sbuf)
        self._nbase = ctypes.addressof(self._names)
        iov_size = ctypes.sizeof(_IOVec)
        for i in range(size):
            self._riov[i].base = rbase + i * SLOT
            self._riov[i].len = SLOT
            self._siov[2 * i].base = rbase + i * SLOT
            self._siov[2 * i].len = 2
            self._siov[2 * i + 1].base = sbase + i * SLOT + 2
            for msgs, iov, per in ((self._rmsg, self._riov, 1), (self._smsg, self._siov, 2)):
                h = msgs[i].hdr
                h.name = self._nbase + i * self._namelen
                h.namelen = self._namelen
                h.iov = ctypes.addressof(iov) + i * per * iov_size
                h.iovlen = per
        self._raddr = ctypes.addressof(self._rmsg)
        self._saddr = ctypes.addressof(self._smsg)
        # The loop reads and writes these views in place (see ``server._udp_loop_batched``):
        #: the receive slots (datagram i at ``i * SLOT``) and the send slots (answer j
        #: at ``j * SLOT``, its octets 0–1 not sent: the id goes out from receive slot j)
        self.rview = memoryview(self._rbuf).cast("B")
        self.sview = memoryview(self._sbuf).cast("B")
        self._nview = memoryview(self._names).cast("B")
        #: the receive lengths: datagram i's length is ``lens[len_index[i]]``
        self.lens = memoryview(self._rmsg).cast("B").cast("I")
        self.len_index = [(i * _MSTRIDE + _LEN_OFF) // 4 for i in range(size)]
        #: the send iovecs as uint64s: answer j's length after the id is ``siov[4j + 3]``,
        #: the pointer to the id it carries ``siov[4j]`` (``id_ptr[i]`` = datagram i's id)
        self.siov = memoryview(self._siov).cast("B").cast("Q")
        self.id_ptr = [rbase + i * SLOT for i in range(size)]
        #: send message j's address pointer is ``smsg[j * stride64]``; datagram i's source
        #: address lives at ``name_ptr[i]``
        self.smsg = memoryview(self._smsg).cast("B").cast("Q")
        self.stride64 = _MSTRIDE // 8
        self.name_ptr = [self._nbase + i * self._namelen for i in range(size)]
        self.queued = 0
        #: some queued answer j goes to another datagram's source than j's (after a
        #: dropped query): ``flush`` restores the identity mapping once sent
        self.skewed = False
        #: totals for status: batches received, datagrams received
        self.batches = self.datagrams = 0
        # address octets of datagram i: (start, end) inside the names buffer
        v6 = sock.family == socket.AF_INET6
        self._addr_at = [(i * self._namelen + (8 if v6 else 4),
                          i * self._namelen + (24 if v6 else 8)) for i in range(size)]
        self._memo: dict[bytes, str] = {}

    def recv(self) -> int:
        """Block until at least one datagram is there; how many arrived (≥ 1)."""
        while True:
            k: int = self._recvmmsg(self._fd, self._raddr, self.size, MSG_WAITFORONE, None)
            if k >= 0:
                self.batches += 1
                self.datagrams += k
                return k
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK):
                # made non-blocking behind our back: wait until readable
                select.select([self._fd], [], [])
            elif err != errno.EINTR:
                raise OSError(err, os.strerror(err))

    def length(self, i: int) -> int:
        """Length of datagram ``i`` of the last ``recv``."""
        return self.lens[self.len_index[i]]

    def data(self, i: int) -> bytes:
        """Datagram ``i`` of the last ``recv``."""
        off = i * SLOT
        return bytes(self.rview[off:off + self.lens[self.len_index[i]]])

    def source(self, i: int) -> str:
        """Source address of datagram ``i`` (textual IP; memoised by its octets)."""
        a, b = self._addr_at[i]
        raw = self._nview[a:b].tobytes()
        text = self._memo.get(raw)
        if text is None:
            if len(self._memo) >= 4096:
                self._memo.clear()
            text = self._memo[raw] = socket.inet_ntop(
                socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)
        return text

    def source_port(self, i: int) -> int:
        """Source port of datagram ``i``."""
        off = i * self._namelen
        port: int = struct.unpack_from("!H", self._nview, off + 2)[0]
        return port

    def put(self, i: int, out: bytes) -> None:
        """Queue ``out`` as the answer to datagram ``i``. Its first two octets go out as
        datagram ``i``'s first two (a DNS answer echoes the query's id)."""
        n = len(out)
        if n > SLOT or n < 2:
            self.sock.sendto(out, self._address(i))
            return
        j = self.queued
        off = j * SLOT
        self.sview[off:off + n] = out
        self.siov[4 * j + 3] = n - 2
        if j != i:
            self.siov[4 * j] = self.id_ptr[i]
            self.smsg[j * self.stride64] = self.name_ptr[i]
            self.skewed = True
        self.queued = j + 1

    def _address(self, i: int) -> tuple[str, int]:
        return self.source(i), self.source_port(i)

    def flush(self) -> int:
        """Send every queued answer; returns how many were queued (a datagram the kernel
        refuses is dropped, as a ``sendto`` loop drops it: UDP answers are best effort)."""
        q = self.queued
        self.queued = 0
        try:
            self._send(q)
        finally:
            if self.skewed:  # answer j goes to datagram j's source with its id again
                self.skewed = False
                for j in range(q):
                    self.siov[4 * j] = self.id_ptr[j]
                    self.smsg[j * self.stride64] = self.name_ptr[j]
        return q

    def _send(self, q: int) -> None:
        sent = 0
        while sent < q:
            k: int = self._sendmmsg(self._fd, self._saddr + sent * _MSTRIDE, q - sent, 0)
            if k <= 0:
                if k < 0 and ctypes.get_errno() == errno.EINTR:
                    continue
                # the datagram at the head failed (e.g. unreachable): skip it
                sent += 1
                continue
            sent += k
