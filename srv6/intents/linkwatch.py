"""IP link state from the routers' kernels: interface carrier → ``Link.state``.

Rules:
- Sans-I/O: ``link_request(seq)`` (an ``RTM_GETLINK`` dump) and ``parse_links(data)`` →
  ``{ifname: up}`` where up = ``IFF_UP`` and ``IFF_LOWER_UP`` (carrier). A malformed
  message raises ``RemoteProtocolError``.
- ``LinkWatcher`` owns one NETLINK_ROUTE socket per watched namespace, subscribed to
  ``RTMGRP_LINK``, read by one thread with ``select``; it dumps once at start, then
  follows events. It calls ``on_change(node, dev, up)`` only when an interface's state
  changes (the first reading counts as a change).
- The reconciler maps ``(node, dev)`` to a link key through its ``intents.nodes``
  binding; a link is up iff every watched end is up; it writes ``Link.state`` (actor
  ``srv6.linkwatch``), which re-plans like any topology change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Mapping

from controller.errors import RemoteProtocolError
from srv6.dataplane import rtnl

log = logging.getLogger("cpn.srv6.linkwatch")

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTMGRP_LINK = 1
IFLA_IFNAME = 3
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
_NLH = struct.Struct("=IHHII")
_IFI = struct.Struct("=BxHiII")


def link_request(seq: int) -> bytes:
    body = _IFI.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return _NLH.pack(_NLH.size + len(body), RTM_GETLINK, 0x1 | 0x300, seq, 0) + body


def parse_links(data: bytes) -> tuple[dict[str, bool], bool]:
    """``({ifname: up}, done)`` for the link messages in ``data``."""
    out: dict[str, bool] = {}
    off = 0
    try:
        while off + _NLH.size <= len(data):
            length, kind, _f, _s, _p = _NLH.unpack_from(data, off)
            if length < _NLH.size or off + length > len(data):
                raise RemoteProtocolError(f"netlink message length {length} at {off}")
            if kind == 3:  # NLMSG_DONE
                return out, True
            if kind in (RTM_NEWLINK, RTM_DELLINK):
                _fam, _type, _index, flags, _change = _IFI.unpack_from(data, off + _NLH.size)
                attrs = _attrs(data, off + _NLH.size + _IFI.size, off + length)
                name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode()
                if name:
                    out[name] = kind == RTM_NEWLINK and bool(flags & IFF_UP) and \
                        bool(flags & IFF_LOWER_UP)
            off += (length + 3) & ~3
    except (struct.error, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"malformed rtnetlink link message: {exc}") from exc
    return out, False


def _attrs(buf: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        length, kind = struct.unpack_from("=HH", buf, off)
        if length < 4 or off + length > end:
            raise RemoteProtocolError(f"rtattr length {length} at {off} overruns {end}")
        out[kind & 0x3FFF] = buf[off + 4:off + length]
        off += (length + 3) & ~3
    return out


OnChange = Callable[[str, str, bool], None]


class LinkWatcher:
    """Follows interface carrier in ``netns`` (node → namespace) for ``devs`` (node → the
    interface names that matter) and reports changes to ``on_change``."""

    def __init__(self, netns: Mapping[str, str | None], devs: Mapping[str, set[str]],
                 on_change: OnChange) -> None:
        self.devs = {n: set(d) for n, d in devs.items()}
        self.on_change = on_change
        self.state: dict[tuple[str, str], bool] = {}
        self._socks: dict[int, tuple[str, socket.socket]] = {}
        for node, ns in netns.items():
            s = rtnl.open_socket(ns, groups=RTMGRP_LINK)
            s.setblocking(False)
            self._socks[s.fileno()] = (node, s)
        self._r, self._w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="srv6-linkwatch",
                                        daemon=True)

    def start(self) -> None:
        for i, (_node, s) in enumerate(self._socks.values()):
            s.send(link_request(i + 1))
        self._thread.start()

    def stop(self) -> None:
        os.write(self._w, b"x")
        self._thread.join(5)
        for _node, s in self._socks.values():
            s.close()
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        fds = [*self._socks, self._r]
        while True:
            ready, _, _ = select.select(fds, [], [])
            if self._r in ready:
                return
            for fd in ready:
                node, s = self._socks[fd]
                try:
                    while True:
                        data = s.recv(1 << 16)
                        links, _ = parse_links(data)
                        self._report(node, links)
                except BlockingIOError:
                    pass
                except (OSError, RemoteProtocolError) as exc:
                    log.warning("link watch on %s: %s", node, exc)

    def _report(self, node: str, links: Mapping[str, bool]) -> None:
        for dev, up in links.items():
            if dev not in self.devs.get(node, ()):
                continue
            key = (node, dev)
            if self.state.get(key) != up:
                self.state[key] = up
                try:
                    self.on_change(node, dev, up)
                except Exception:
                    log.exception("link watch callback failed for %s %s", node, dev)
