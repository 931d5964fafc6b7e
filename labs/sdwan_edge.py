"""The SD-WAN edge lab: an edge with two underlays (ip-private ``ua``, internet ``ub``)
to a hub, an app stream, nftables counters and loss injection at the hub (issue 14).

Used by ``tests/srv6/test_sdwan_edge.py`` and the ``sdwan-failover`` bench.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from labs.optical.fixture import OpticalLab
    from optical.transport import OtnTransport


#: the on-demand OTN link under the edge's otn underlay (``optical.otn_links`` key)
OTN_LINK = "E~H"


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


def edge_lab(lab: Lab, otn: bool = False) -> tuple[Ns, Ns, SdwanEdgesSection]:
    """The edge ``E`` and hub ``H``; with ``otn`` a third underlay ``uo``/``ho``
    (10.83.0.0/24) of kind otn, carried by the on-demand OTN link ``OTN_LINK``."""
    e, h = lab.ns("e"), lab.ns("h")
    lab.link(e, h, "ua", "ha", ["10.81.0.1/24"], ["10.81.0.2/24"])
    lab.link(e, h, "ub", "hb", ["10.82.0.1/24"], ["10.82.0.2/24"])
    extra: dict[InterconnectKind, UnderlayBinding] = {}
    if otn:
        lab.link(e, h, "uo", "ho", ["10.83.0.1/24"], ["10.83.0.2/24"])
        extra[InterconnectKind.OTN] = UnderlayBinding(
            dev="uo", gateway="10.83.0.2", probe="10.83.0.2",  # type: ignore[arg-type]
            transport=OTN_LINK)
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
                                                       probe="10.82.0.2"), **extra})},
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




def shape(hub: Ns, dev: str = "ha", mbit: int = 4, queue_bytes: int = 30_000) -> None:
    """A narrow underlay: HTB at ``mbit`` on the hub's ``dev`` (toward the edge) with a
    byte FIFO of ``queue_bytes`` — a full queue delays what crosses it by up to
    ``queue_bytes * 8 / mbit`` µs (30 kB at 4 Mbit/s: 60 ms). This kernel has no netem:
    the delay is made by congestion, as on a real access link."""
    hub.run(["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb",
             "default", "10"])
    hub.run(["tc", "class", "replace", "dev", dev, "parent", "1:", "classid", "1:10", "htb",
             "rate", f"{mbit}mbit", "ceil", f"{mbit}mbit", "burst", "3k"])
    hub.run(["tc", "qdisc", "replace", "dev", dev, "parent", "1:10", "handle", "10:",
             "bfifo", "limit", str(queue_bytes)])


@contextmanager
def congest(edge: Ns, hub: Ns, mbit: int = 6, dst: str = "10.81.0.1") -> Iterator[None]:
    """An iperf3 UDP flood of ``mbit`` from the hub to the edge over the ip-private
    underlay (fills the shaped queue) for as long as the block runs."""
    import shutil
    import subprocess

    from labs.netns import free_port

    if shutil.which("iperf3") is None:
        raise RuntimeError("iperf3 is not installed (Debian iperf3, see scripts/bootstrap.sh)")
    port = free_port()
    server = edge.popen(["iperf3", "-s", "-p", str(port), "-B", dst], name="iperf3 server")
    try:
        wait_for(lambda: f":{port} " in edge.run(["ss", "-ltn"]).stdout, 10,
                 f"iperf3 server on {port}")
        client = hub.popen(["iperf3", "-c", dst, "-p", str(port), "-u", "-b", f"{mbit}M",
                            "-l", "1200", "-t", "60"], name="iperf3 flood",
                           stdout=subprocess.DEVNULL)
        try:
            yield
        finally:
            edge.lab.stop(client)
    finally:
        edge.lab.stop(server)


def delay_round(store: Store, edge: Ns, hub: Ns, key: str = "E~video",
                traffic: bool = False) -> tuple[float, float, SdwanEdgeStatus]:
    """Congest ip-private (flood started at t0) → the policy on the internet underlay:
    seconds until the status says so, or with ``traffic`` (an app stream running) until
    app packets arrive over the internet underlay; the status at the switch. Flood
    stopped → seconds until the policy is back on ip-private (the hysteresis included)."""
    before = _hb_packets(hub)
    with congest(edge, hub):
        t0 = time.monotonic()
        if traffic:
            wait_for(lambda: _hb_packets(hub) > before + 5, 10,
                     "app traffic on the internet underlay")
        else:
            wait_for(lambda: status(store, key).active == "internet", 10,
                     "failover away from the congested underlay")
        t_fail = time.monotonic() - t0
        wait_for(lambda: status(store, key).active == "internet", 10, "the switch status")
        away = status(store, key)
    t1 = time.monotonic()
    wait_for(lambda: status(store, key).active == "ip-private", 15,
             "fallback after the flood stopped")
    return t_fail, time.monotonic() - t1, away


def rx_packets(ns: Ns, dev: str) -> int:
    return int(ns.run(["cat", f"/sys/class/net/{dev}/statistics/rx_packets"]).stdout)


@contextmanager
def otn_transport(optical: OpticalLab, link: str = OTN_LINK, a: str = "ne0",
                  z: str = "ne2") -> Iterator[OtnTransport]:
    """The optical layer for ``link`` over the lab's netconfd NEs: an
    ``OpticalController`` on its own event loop (a thread), wrapped as the
    ``Transport`` the SD-WAN edges and the intent reconciler ask for OTN paths."""
    import asyncio

    from optical.config import OtnLinkSpec
    from optical.service import OpticalController
    from optical.transport import OtnTransport

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="optical-loop", daemon=True)
    thread.start()
    ctl = OpticalController(optical.devices())
    try:
        asyncio.run_coroutine_threadsafe(ctl.start(), loop).result(30)
        yield OtnTransport(ctl, {link: OtnLinkSpec(a=a, z=z)}, loop, wait_s=20)
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(ctl.stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def ne_xcs(optical: OpticalLab) -> dict[str, list[str]]:
    """Cross-connects on each NE, read by a NETCONF session of our own."""
    from labs.crosslayer import ne_xcs as read

    return read(optical)
