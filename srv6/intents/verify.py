"""Verification of a programmed SR policy with probes (scapy): the probe goes through the
policy and is captured on the way and at the egress (GBA-6.4.3c; RFC 8754 SRH).

Rules:
- A probe is a plain UDP datagram (port 33434, payload ``CPNV`` + a 12-byte nonce) sent
  from the headend to an address of a steered prefix; the headend's own policy route
  encapsulates it (H.Encaps), exactly as client traffic.
- Capture is an ``AF_PACKET`` socket opened inside each watched node's namespace before
  the probe leaves; a frame counts when it carries the nonce. ``decode_frame`` (pure,
  scapy) returns what the frame shows: outer destination, Segments Left and the segment
  list in travel order (scapy lists SRH addresses in wire order, RFC 8754 §2: index 0 is
  the last segment).
- ``probe`` → ``ProbeResult``: ``ok`` iff the egress saw the probe with exactly the
  expected segment list; ``hops`` lists every watched node that saw it (``trace``),
  with the one-way time from send to capture (same host clock).
- Only nodes reachable as namespaces (netlink programmers with ``netns``) can be
  probed; anything else is a ``ValidationError`` naming the node.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.errors import ValidationError

MAGIC = b"CPNV"
PORT = 33434
ETH_P_ALL = 0x0003
_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True, slots=True)
class Seen:
    """One capture: ``node``, ``dev``, outer ``dst``, ``segleft`` (None: no SRH),
    ``segments`` (travel order), ``ms`` since the probe left."""

    node: str
    dev: str
    dst: str
    segleft: int | None
    segments: tuple[str, ...]
    ms: float


@dataclass
class ProbeResult:
    ok: bool
    expected: tuple[str, ...]
    egress: Seen | None = None
    hops: list[Seen] = field(default_factory=list)
    detail: str = ""


def decode_frame(frame: bytes, nonce: bytes) -> tuple[str, int | None, tuple[str, ...]] | None:
    """(outer dst, segments left, segments in travel order) if ``frame`` (Ethernet)
    carries the probe ``nonce``; None otherwise."""
    if MAGIC + nonce not in frame:
        return None
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
    from scapy.layers.l2 import Ether

    pkt = Ether(frame)
    ip6 = pkt.getlayer(IPv6)
    if ip6 is None:
        ip4 = pkt.getlayer(IP)
        return None if ip4 is None else (str(ip4.dst), None, ())
    srh = pkt.getlayer(IPv6ExtHdrSegmentRouting)
    if srh is None:
        return str(ip6.dst), None, ()
    return str(ip6.dst), int(srh.segleft), tuple(str(a) for a in reversed(srh.addresses))


def _in_netns(netns: str | None, fn: Any) -> Any:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            if netns:
                libc = ctypes.CDLL(None, use_errno=True)
                with open(f"/var/run/netns/{netns}", "rb") as fh:
                    if libc.setns(fh.fileno(), _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns({netns}) failed")
            out["v"] = fn()
        except OSError as exc:
            out["e"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["v"]


def _capture_socket(netns: str | None) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.setblocking(False)
        return s
    sock: socket.socket = _in_netns(netns, make)
    return sock


def _send(netns: str | None, dst: str, payload: bytes) -> None:
    def send() -> None:
        fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.sendto(payload, (dst, PORT))
    _in_netns(netns, send)


def probe(headend_netns: str | None, dst: str, expected: Sequence[str],
          watch: Sequence[tuple[str, str | None]], egress: str, timeout: float = 1.0
          ) -> ProbeResult:
    """Send one probe from the headend to ``dst``; capture it on every ``watch`` (node,
    netns); ``egress`` names the node that must see ``expected``."""
    nonce = os.urandom(12)
    socks: dict[int, tuple[str, socket.socket]] = {}
    try:
        for node, ns in watch:
            s = _capture_socket(ns)
            socks[s.fileno()] = (node, s)
        t0 = time.perf_counter()
        _send(headend_netns, dst, MAGIC + nonce)
        res = ProbeResult(False, tuple(expected))
        seen_nodes: set[str] = set()
        deadline = t0 + timeout
        while time.perf_counter() < deadline and egress not in seen_nodes:
            ready, _, _ = select.select(list(socks), [], [], max(0.0, deadline -
                                                                 time.perf_counter()))
            for fd in ready:
                node, s = socks[fd]
                with contextlib.suppress(BlockingIOError):
                    while True:
                        frame, addr = s.recvfrom(65535)
                        if addr[2] == socket.PACKET_OUTGOING:
                            continue  # count a frame where it arrives
                        got = decode_frame(frame, nonce)
                        if got is None or node in seen_nodes:
                            continue
                        seen_nodes.add(node)
                        hop = Seen(node, addr[0], got[0], got[1], got[2],
                                   round((time.perf_counter() - t0) * 1e3, 3))
                        res.hops.append(hop)
                        if node == egress:
                            res.egress = hop
        if res.egress is None:
            last = res.hops[-1].node if res.hops else "the headend"
            res.detail = (f"probe not seen at the egress {egress} within {timeout:g} s; "
                          f"last seen at {last}")
        elif res.egress.segments != res.expected:
            res.detail = (f"egress {egress} saw segments {list(res.egress.segments)}, "
                          f"expected {list(res.expected)}")
        else:
            res.ok = True
            res.detail = (f"captured at {egress} ({res.egress.dev}) after "
                          f"{res.egress.ms:g} ms with the computed segment list")
        return res
    finally:
        for _node, s in socks.values():
            s.close()


def probe_intent(rec: Any, key: str, *, trace: bool = False, timeout: float = 1.0
                 ) -> ProbeResult:
    """Probe intent ``key`` as the reconciler ``rec`` programmed it."""
    from srv6.intents.models import SrPolicyIntentStatus

    assert rec.rt is not None
    st = rec.rt.store.get(SrPolicyIntentStatus, key)
    if st is None or st.active is None:
        raise ValidationError.single("intent", f"intent {key!r} has no programmed path",
                                     "wait for state programmed (cpn srv6 intents show)")
    headend, _color, endpoint = key.split("~")
    nodes = rec.sec.nodes
    for n in (headend, endpoint):
        b = nodes.get(n)
        if b is None or b.programmer != "netlink" or not b.netns:
            raise ValidationError.single(
                f"intents.nodes.{n}", f"{n} is not a namespace this controller can probe",
                "probes need netlink programmers with netns")
    dst = probe_address(st.prefixes[0])
    watch = [(n, nodes[n].netns) for n in (st.active.hops[1:] if trace else [endpoint])
             if n in nodes and nodes[n].programmer == "netlink" and nodes[n].netns]
    return probe(nodes[headend].netns, dst, st.active.segments, watch, endpoint, timeout)


def probe_address(prefix: str) -> str:
    """The address probed in a steered prefix: its .2 (the lab's host) — any address of
    the prefix follows the same policy route."""
    import ipaddress

    net = ipaddress.ip_network(prefix)
    return str(net.network_address + 2) if net.num_addresses > 2 else str(net.network_address)
