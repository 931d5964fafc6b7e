"""UDP worker processes of the embedded DNS server (one GIL each: scaling over cores).

Rules:
- ``python -m dns_compute.worker HOST PORT [--no-cache]`` binds its own UDP socket to HOST:PORT with
  SO_REUSEPORT (the kernel spreads client flows over the controller's sockets and the
  workers') and answers with the same ``Responder`` + ``AnswerCache`` loop as the
  controller's UDP threads (``server._udp_loop``); ``--no-cache`` answers every query
  through the responder (``cpn bench dns`` measures the uncached figure so, in a process
  of its own).
- Zones arrive on stdin as frames (4-octet big-endian length + pickled ``WireZone``,
  template table included), written by the controller's ``DnsServer`` on start and on
  every zone swap; a worker answers nothing before its first zone. The pipe is private
  between the controller and the worker it started.
- stdin closing (the controller stopped or died) ends the worker at once; so a worker
  never outlives its controller. The worker prints ``ready PORT`` on stdout once bound.
"""

from __future__ import annotations

import gc
import os
import pickle
import socket
import struct
import sys
import threading
from typing import BinaryIO

from dns_compute import mmsg
from dns_compute.cache import AnswerCache
from dns_compute.responder import Responder, WireZone


def encode_zone(zone: WireZone) -> bytes:
    """One stdin frame carrying ``zone``."""
    blob = pickle.dumps(zone, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("!I", len(blob)) + blob


def read_zone(stream: BinaryIO) -> WireZone | None:
    """The next zone frame from ``stream``; None at end of stream."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack("!I", head)
    blob = stream.read(size)
    if len(blob) < size:
        return None
    zone = pickle.loads(blob)  # a private pipe from our controller
    if not isinstance(zone, WireZone):
        raise TypeError(f"zone frame holds a {type(zone).__name__}, not a WireZone")
    return zone


def _follow(stream: BinaryIO, responder: Responder) -> None:
    while True:
        zone = read_zone(stream)
        if zone is None:
            os._exit(0)  # the controller closed our stdin: stop serving now
        responder.swap(zone)


def main(argv: list[str]) -> int:
    cached = "--no-cache" not in argv
    batched = "--no-batch" not in argv and mmsg.available()
    argv = [a for a in argv if a not in ("--no-cache", "--no-batch")]
    if len(argv) != 2:
        print("usage: python -m dns_compute.worker HOST PORT [--no-cache] [--no-batch]"
              "  (zones on stdin)", file=sys.stderr)
        return 2
    from dns_compute.server import _udp_loop, _udp_loop_batched, _udp_loop_uncached

    host, port = argv[0], int(argv[1])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    except OSError:
        pass
    sock.bind((host, port))
    responder = Responder()
    stdin = sys.stdin.buffer
    first = read_zone(stdin)
    if first is None:
        return 0
    responder.swap(first)
    threading.Thread(target=_follow, args=(stdin, responder), daemon=True,
                     name="cpn-dns-zone").start()
    print(f"ready {sock.getsockname()[1]}", flush=True)
    gc.freeze()  # the zone and the loop's buffers live for the whole process
    if batched:
        _udp_loop_batched(sock, responder, threading.Event(), AnswerCache() if cached else None)
    elif cached:
        _udp_loop(sock, responder, threading.Event(), AnswerCache())
    else:
        _udp_loop_uncached(sock, responder, threading.Event())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
