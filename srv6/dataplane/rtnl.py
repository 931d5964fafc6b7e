"""Minimal rtnetlink for SRv6 routes: sans-I/O codec + one raw socket.

Why: reading back and writing are on the make-before-break critical path (every commit
re-reads the node, a switch writes a SID, its next-hop table and the headend route);
pyroute2 0.9.7 spends ~0.6–1 ms of Python per request, a raw request a few tens of µs.
Raw writes cover what the eBPF dataplane (``seg6bpf``) and every delete need; seg6
lwtunnel encodings stay on pyroute2.

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
- ``route_request``/``rule_request`` → bytes: ``RTM_NEWROUTE`` (add: create + exclusive,
  replace: create + replace, atomic in the kernel) / ``RTM_DELROUTE``, and
  ``RTM_NEWRULE``/``RTM_DELRULE`` for fwmark rules; an eBPF encap carries, per hook,
  the program fd and the route name. ``request`` sends one and waits for its ACK; a
  refusal raises ``OSError`` with the errno and the kernel's extended-ACK message.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from controller.errors import RemoteProtocolError

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWRULE, RTM_DELRULE = 32, 33
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # on an NLMSG_ERROR answer
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED = 0x8000
RTN_UNICAST, RTN_LOCAL = 1, 2
RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE = 0, 255
RT_TABLE_COMPAT = 252
LWT_BPF_PROG_FD, LWT_BPF_PROG_NAME = 1, 2
LWT_BPF_HOOK_IDS = {"in": 1, "out": 2, "xmit": 3}
FR_ACT_TO_TBL = 1
FRA_PRIORITY, FRA_FWMARK, FRA_TABLE = 6, 10, 15
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
RTA_ENCAP_TYPE, RTA_ENCAP = 21, 22
LWT_SEG6, LWT_BPF, LWT_SEG6LOCAL = 5, 6, 7
LWT_BPF_HOOKS = {1: "in", 2: "out", 3: "xmit"}  # LWT_BPF_IN/OUT/XMIT; name = attr 2
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
_NLH = struct.Struct("=IHHII")
_RTM = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")
_FRH = struct.Struct("=BBBBBBBBI")
_FLAGS = {"add": NLM_F_CREATE | NLM_F_EXCL, "replace": NLM_F_CREATE | NLM_F_REPLACE,
          "del": 0}


def dump_request(family: int, seq: int, protocol: int) -> bytes:
    body = _RTM.pack(family, 0, 0, 0, 0, protocol, 0, 0, 0)
    return _NLH.pack(_NLH.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq,
                     0) + body


def _rta(kind: int, payload: bytes) -> bytes:
    length = _RTA.size + len(payload)
    return _RTA.pack(length, kind) + payload + b"\0" * (-length % 4)


def _u32(kind: int, value: int) -> bytes:
    return _rta(kind, struct.pack("=I", value))


def _message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _NLH.pack(_NLH.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq,
                     0) + body


def route_request(cmd: str, seq: int, *, dst: str, table: int, protocol: int,
                  oif: int | None = None, priority: int | None = None,
                  gateway: str | None = None, local: bool = False,
                  bpf: dict[str, tuple[int, str]] | None = None) -> bytes:
    """``RTM_NEWROUTE`` (``cmd`` add | replace) or ``RTM_DELROUTE`` (del) for ``dst``
    (``a/len``); ``local``: a ``local`` route (the IPv6 core runs a SID's SRH);
    ``bpf``: hook (in | out | xmit) → (program fd, route name). A delete names the
    route by dst, table, protocol and priority (scope nowhere: any scope, as ``ip``)."""
    net = ipaddress.ip_interface(dst)  # the address as given: the kernel judges it
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    delete = cmd == "del"
    rtype = 0 if delete else RTN_LOCAL if local else RTN_UNICAST
    scope = RT_SCOPE_NOWHERE if delete else RT_SCOPE_UNIVERSE
    body = _RTM.pack(family, net.network.prefixlen, 0, 0, table if table < 256 else RT_TABLE_COMPAT,
                     protocol, scope, rtype, 0)
    body += _u32(RTA_TABLE, table) + _rta(RTA_DST, net.ip.packed)
    if oif is not None:
        body += _u32(RTA_OIF, oif)
    if priority:
        body += _u32(RTA_PRIORITY, priority)
    if gateway is not None:
        body += _rta(RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
    if bpf:
        hooks = b"".join(_rta(NLA_F_NESTED | LWT_BPF_HOOK_IDS[hook],
                              _u32(LWT_BPF_PROG_FD, fd) +
                              _rta(LWT_BPF_PROG_NAME, name.encode() + b"\0"))
                         for hook, (fd, name) in bpf.items())
        body += _rta(RTA_ENCAP_TYPE, struct.pack("=H", LWT_BPF))
        body += _rta(NLA_F_NESTED | RTA_ENCAP, hooks)
    return _message(RTM_DELROUTE if delete else RTM_NEWROUTE, _FLAGS[cmd], seq, body)


def rule_request(cmd: str, seq: int, *, family: int, fwmark: int, table: int,
                 priority: int) -> bytes:
    """``RTM_NEWRULE`` (``cmd`` add: exclusive, an identical rule → ``EEXIST``) or
    ``RTM_DELRULE`` (del): ``fwmark`` → lookup ``table``, at ``priority``."""
    body = _FRH.pack(family, 0, 0, 0, table if table < 256 else 0, 0, 0, FR_ACT_TO_TBL, 0)
    body += _u32(FRA_PRIORITY, priority) + _u32(FRA_FWMARK, fwmark) + _u32(FRA_TABLE, table)
    return _message(RTM_DELRULE if cmd == "del" else RTM_NEWRULE,
                    NLM_F_CREATE | NLM_F_EXCL if cmd == "add" else 0, seq, body)


def parse_ack(data: bytes, seq: int) -> bool:
    """Whether ``data`` holds the ACK of request ``seq`` (other messages are skipped);
    a refusal raises ``OSError`` (errno, and the kernel's extended-ACK text if any)."""
    off = 0
    while off + _NLH.size <= len(data):
        length, kind, flags, mseq, _pid = _NLH.unpack_from(data, off)
        if length < _NLH.size or off + length > len(data):
            raise RemoteProtocolError(f"netlink message length {length} at {off} overruns")
        if kind == NLMSG_ERROR and mseq == seq:
            code = struct.unpack_from("=i", data, off + _NLH.size)[0]
            if code == 0:
                return True
            why = ""
            if flags & NLM_F_ACK_TLVS:
                inner = off + _NLH.size + 4
                olen = _NLH.unpack_from(data, inner)[0]
                start = inner + (_NLH.size if flags & NLM_F_CAPPED else (olen + 3) & ~3)
                raw = _attrs(data, start, off + length).get(NLMSGERR_ATTR_MSG, b"")
                why = raw.split(b"\0", 1)[0].decode(errors="replace")
            raise OSError(-code, os.strerror(-code) + (f" ({why})" if why else ""))
        off += (length + 3) & ~3
    return False


def request(sock: socket.socket, msg: bytes) -> None:
    """Send ``msg`` (one request built above) and wait for its ACK."""
    seq = _NLH.unpack_from(msg, 0)[3]
    sock.send(msg)
    while not parse_ack(sock.recv(1 << 16), seq):
        pass


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
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):  # short ACKs with the reason
            s.setsockopt(SOL_NETLINK, opt, 1)
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
