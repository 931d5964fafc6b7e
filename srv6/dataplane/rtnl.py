"""Minimal rtnetlink route dump for SRv6 routes: sans-I/O codec + one raw socket.

Why: reading back is on the make-before-break critical path (every commit re-reads the
node); pyroute2 0.9.7 spends ~0.6 ms of Python per dump request, a raw request with a
kernel-side filter costs a few tens of µs. Writes stay on pyroute2.

Rules:
- ``dump_request(family, seq, protocol)`` → bytes: ``RTM_GETROUTE`` + ``NLM_F_DUMP``
  with ``rtm_protocol`` set; on a socket with ``NETLINK_GET_STRICT_CHK`` the kernel
  returns only routes of that protocol (all tables).
- ``parse(data)`` → ``(routes, done)``: decodes ``RTM_NEWROUTE`` messages into plain
  dicts (dst, dst_len, family, table, oif, priority, protocol, type, gateway, encap) — seg6
  segments in SRH wire order (index 0 = last segment), seg6local action/nh4/nh6, and an
  eBPF encap's route name per hook (``{"type": "bpf", "xmit": name}``). Unknown attributes
  are skipped; a truncated or malformed message raises ``RemoteProtocolError``; an
  ``NLMSG_ERROR`` with a non-zero code raises ``OSError``.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from controller.errors import RemoteProtocolError

RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
RTA_ENCAP_TYPE, RTA_ENCAP = 21, 22
LWT_SEG6, LWT_BPF, LWT_SEG6LOCAL = 5, 6, 7
LWT_BPF_HOOKS = {1: "in", 2: "out", 3: "xmit"}  # LWT_BPF_IN/OUT/XMIT; name = attr 2
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
_NLH = struct.Struct("=IHHII")
_RTM = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")


def dump_request(family: int, seq: int, protocol: int) -> bytes:
    body = _RTM.pack(family, 0, 0, 0, 0, protocol, 0, 0, 0)
    return _NLH.pack(_NLH.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq,
                     0) + body


def _attrs(buf: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + _RTA.size <= end:
        length, kind = _RTA.unpack_from(buf, off)
        if length < _RTA.size or off + length > end:
            raise RemoteProtocolError(f"rtattr length {length} at {off} overruns {end}")
        out[kind & 0x3FFF] = buf[off + _RTA.size:off + length]
        off += (length + 3) & ~3
    return out


def _encap(etype: int, raw: bytes) -> dict[str, Any]:
    nested = _attrs(raw, 0, len(raw))
    if etype == LWT_SEG6 and 1 in nested:
        srh = nested[1]
        mode = struct.unpack_from("=i", srh, 0)[0]
        first = srh[4 + 4]
        segs = [str(ipaddress.IPv6Address(srh[12 + 16 * i:28 + 16 * i]))
                for i in range(first + 1)]
        return {"type": "seg6", "mode": {0: "inline", 1: "encap"}.get(mode, str(mode)),
                "segs": segs}
    if etype == LWT_SEG6LOCAL:
        out: dict[str, Any] = {"type": "seg6local",
                               "action": struct.unpack("=I", nested[1])[0] if 1 in nested
                               else 0}
        if 4 in nested:
            out["nh4"] = str(ipaddress.IPv4Address(nested[4]))
        if 5 in nested:
            out["nh6"] = str(ipaddress.IPv6Address(nested[5]))
        return out
    if etype == LWT_BPF:
        # the name the route was given (LWT_BPF_PROG_NAME), per hook: CPN spells what it
        # programmed there (seg6bpf.py)
        bpf: dict[str, Any] = {"type": "bpf"}
        for hook, raw_hook in nested.items():
            if hook in LWT_BPF_HOOKS:
                name = _attrs(raw_hook, 0, len(raw_hook)).get(2, b"")
                bpf[LWT_BPF_HOOKS[hook]] = name.split(b"\0", 1)[0].decode(errors="replace")
        return bpf
    return {"type": etype}


def parse(data: bytes) -> tuple[list[dict[str, Any]], bool]:
    try:
        return _parse(data)
    except (struct.error, IndexError, ValueError, KeyError) as exc:
        raise RemoteProtocolError(f"malformed rtnetlink route message: {exc}") from exc


def _parse(data: bytes) -> tuple[list[dict[str, Any]], bool]:
    routes: list[dict[str, Any]] = []
    off = 0
    while off + _NLH.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLH.unpack_from(data, off)
        if length < _NLH.size or off + length > len(data):
            raise RemoteProtocolError(f"netlink message length {length} at {off} overruns")
        if kind == NLMSG_DONE:
            return routes, True
        if kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", data, off + _NLH.size)[0]
            if code:
                raise OSError(-code, f"netlink dump failed: errno {-code}")
        elif kind == RTM_NEWROUTE:
            fam, dst_len, _s, _t, table, proto, _sc, rtype, _fl = _RTM.unpack_from(
                data, off + _NLH.size)
            at = _attrs(data, off + _NLH.size + _RTM.size, off + length)
            r: dict[str, Any] = {"family": fam, "dst_len": dst_len, "protocol": proto,
                                 "type": rtype,
                                 "table": struct.unpack("=I", at[RTA_TABLE])[0]
                                 if RTA_TABLE in at else table,
                                 "oif": struct.unpack("=i", at[RTA_OIF])[0]
                                 if RTA_OIF in at else 0,
                                 "priority": struct.unpack("=I", at[RTA_PRIORITY])[0]
                                 if RTA_PRIORITY in at else 0}
            if RTA_DST in at:
                r["dst"] = str(ipaddress.ip_address(at[RTA_DST]))
            if RTA_GATEWAY in at:
                r["gateway"] = str(ipaddress.ip_address(at[RTA_GATEWAY]))
            if RTA_ENCAP_TYPE in at and RTA_ENCAP in at:
                r["encap"] = _encap(struct.unpack("=H", at[RTA_ENCAP_TYPE][:2])[0],
                                    at[RTA_ENCAP])
            routes.append(r)
        off += (length + 3) & ~3
    return routes, False


T = TypeVar("T")


def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a short-lived thread that entered ``netns`` (``None`` = this one):
    setns changes only that thread, sockets and /proc/sys/net files it opens stay bound
    to ``netns``."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            if netns:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                with open(f"/var/run/netns/{netns}", "rb") as fh:
                    if libc.setns(fh.fileno(), 0x40000000) != 0:
                        raise OSError(ctypes.get_errno(), f"setns({netns}) failed")
            out["v"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            out["e"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    value: T = out["v"]
    return value


def open_socket(netns: str | None, groups: int = 0) -> socket.socket:
    """A NETLINK_ROUTE socket (strict dump checking on), created inside ``netns``,
    subscribed to the multicast ``groups`` (e.g. ``RTMGRP_LINK``)."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        s.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        s.bind((0, groups))
        return s

    return in_netns(netns, make)


def dump(sock: socket.socket, family: int, protocol: int, seq: int) -> list[dict[str, Any]]:
    sock.send(dump_request(family, seq, protocol))
    routes: list[dict[str, Any]] = []
    while True:
        got, done = parse(sock.recv(1 << 18))
        routes.extend(r for r in got if r["protocol"] == protocol)
        if done:
            return routes
