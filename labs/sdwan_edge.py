"""The SD-WAN edge lab: an edge with two underlays (ip-private ``ua``, internet ``ub``)
to a hub, an app stream, nftables counters and loss injection at the hub (issue 14).

Used by ``tests/srv6/test_sdwan_edge.py`` and the ``sdwan-failover`` bench.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from controller.models import InterconnectKind
from controller.store import Store
from labs.netns import Lab, Ns, wait_for
from srv6.dataplane.rtnl import in_netns
from srv6.sdwan_edge import (
    EdgeBinding,
    SdwanEdges,
    SdwanEdgesSection,
    SdwanEdgeStatus,
    UnderlayBinding,
)


def _nft(ns: Ns, script: str) -> None:
    ns.run(["nft", "-f", "-"], input=script)


def _hb_packets(hub: Ns) -> int:
    out = json.loads(hub.run(["nft", "-j", "list", "table", "inet", "cnt"]).stdout)
    for item in out["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment") == "via-b":
            for e in rule["expr"]:
                if "counter" in e:
                    return int(e["counter"]["packets"])
    return 0


@contextmanager
def sender(edge: Ns, rate: int = 500) -> Iterator[None]:
    stop = threading.Event()
    sock = in_netns(edge.name, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    def run() -> None:
        while not stop.is_set():
            try:
                sock.sendto(b"x" * 100, ("10.90.0.1", 5004))
            except OSError:
                pass
            time.sleep(1 / rate)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(2)
        sock.close()


def edge_lab(lab: Lab) -> tuple[Ns, Ns, SdwanEdgesSection]:
    e, h = lab.ns("e"), lab.ns("h")
    lab.link(e, h, "ua", "ha", ["10.81.0.1/24"], ["10.81.0.2/24"])
    lab.link(e, h, "ub", "hb", ["10.82.0.1/24"], ["10.82.0.2/24"])
    h.run(["ip", "addr", "add", "10.90.0.1/32", "dev", "lo"])
    h.run(["ip", "link", "set", "lo", "up"])
    e.run(["ip", "route", "add", "default", "via", "10.81.0.2"])
    _nft(h, 'table inet cnt { chain pre { type filter hook prerouting priority -300;\n'
            'iifname "hb" udp dport 5004 counter comment "via-b"\n}\n'
            'chain loss { type filter hook prerouting priority -290; }\n}\n')
    sec = SdwanEdgesSection(
        edges={"E": EdgeBinding(netns=e.name, underlays={
            InterconnectKind.IP_PRIVATE: UnderlayBinding(dev="ua", gateway="10.81.0.2",
                                                         probe="10.81.0.2"),
            InterconnectKind.INTERNET: UnderlayBinding(dev="ub", gateway="10.82.0.2",
                                                       probe="10.82.0.2")})},
        probe_interval_s=0.1, window=10, probe_timeout_s=0.25, recover_s=1.0)
    return e, h, sec


def status(store: Store, key: str = "E~video") -> SdwanEdgeStatus:
    st = store.get(SdwanEdgeStatus, key)
    assert st is not None
    return st


def inject_loss(hub: Ns, pct: int) -> None:
    hub.run(["nft", "flush", "chain", "inet", "cnt", "loss"])
    if pct:
        hub.run(["nft", "add", "rule", "inet", "cnt", "loss", "iifname", "ha", "numgen",
                 "random", "mod", "100", "<", str(pct), "drop"])


def failover_round(store: Store, hub: Ns, pct: int = 50) -> tuple[float, float]:
    """Loss on ip-private → app traffic seen on the internet underlay (s); loss cleared
    → back on ip-private (s)."""
    before = _hb_packets(hub)
    t0 = time.monotonic()
    inject_loss(hub, pct)
    wait_for(lambda: _hb_packets(hub) > before + 5, 5, "app traffic on the internet underlay")
    t_fail = time.monotonic() - t0
    inject_loss(hub, 0)
    t1 = time.monotonic()
    wait_for(lambda: status(store).active == "ip-private", 10, "fallback to ip-private")
    return t_fail, time.monotonic() - t1


def run_edges(store: Store, sec: SdwanEdgesSection) -> SdwanEdges:
    comp = SdwanEdges(sec)
    comp.sync(store)
    return comp


