"""Slices enforced on the routers of their paths (issue 14, GBA-6.4.3f): whole or not at
all, status written back; in namespaces under iperf3, a slice keeps its guarantee while
another saturates the link, and its delay bound holds (measured one-way under load)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from controller.models import Link, Router
from controller.store import SqliteStore
from labs.netns import Lab, Ns, free_port, wait_for
from srv6.intents.models import IntentsSection, IntentState, NodeBinding
from srv6.models import Slice, SliceFlow
from srv6.paths import Topology
from srv6.shaping import read_classes
from srv6.slices_enforce import SliceEnforcer, SliceStatus, enforce_plan
from tests.conftest import needs_netns


def routers() -> list[Router]:
    return [Router(name=f"R{i}", locator=f"fc00:0:{i:x}::/48") for i in (1, 2, 3)]


LINKS = [Link(a="R1", b="R2", capacity_mbps=20), Link(a="R2", b="R3", capacity_mbps=20)]
NODES = {"R1": NodeBinding(devs={"R1~R2": "e12"}),
         "R2": NodeBinding(devs={"R1~R2": "e21", "R2~R3": "e23"}),
         "R3": NodeBinding(devs={"R2~R3": "e32"})}


def sl(name: str, color: int, mbps: float, dscp: int | None = 10,
       pairs: tuple[tuple[str, str], ...] = (("R1", "R3"),)) -> Slice:
    return Slice(name=name, color=color, guaranteed_mbps=mbps, dscp=dscp,
                 flows=[SliceFlow(headend=a, endpoint=b) for a, b in pairs])


def test_every_router_of_the_path_gets_the_class() -> None:
    topo = Topology.build(LINKS, routers())
    devices, st = enforce_plan(topo, [sl("gold", 0x20, 8, 46)], NODES)
    assert st["gold"].state is IntentState.PROGRAMMED and st["gold"].paths == [
        ["R1", "R2", "R3"]]
    assert set(devices) == {("R1", "e12"), ("R2", "e23")}
    assert all(c.classid == "1:20" and c.rate_mbps == 8 for _, cs in devices.values()
               for c in cs)


def test_over_capacity_slice_fails_whole_and_the_others_keep_their_classes() -> None:
    topo = Topology.build(LINKS, routers())
    before, _ = enforce_plan(topo, [sl("gold", 0x20, 8, 46)], NODES)
    devices, st = enforce_plan(topo, [sl("gold", 0x20, 8, 46), sl("huge", 0x30, 15)],
                               NODES, programmed={"gold"})
    assert st["huge"].state is IntentState.FAILED
    assert st["huge"].constraint == "min_bandwidth_mbps" and "R1~R2" in st["huge"].reason
    assert devices == before and not st["huge"].classes  # nothing of it installed
    # no DSCP: nothing to classify by; an unbound interface: named, nothing half-applied
    _, st = enforce_plan(topo, [sl("nodscp", 0x40, 1, None)], NODES)
    assert st["nodscp"].constraint == "dscp" and "dscp" in st["nodscp"].fix
    nodes = {**NODES, "R2": NodeBinding(devs={"R1~R2": "e21"})}
    devices, st = enforce_plan(topo, [sl("gold", 0x20, 8, 46)], nodes)
    assert st["gold"].constraint == "device" and st["gold"].device == "R2"
    assert "intents.nodes.R2.devs" in st["gold"].fix and devices == {}


def test_slice_over_a_node_the_controller_cannot_shape_is_degraded(
        store: SqliteStore) -> None:
    with store.transaction("test", "topology") as txn:
        for obj in [*routers(), *LINKS, sl("gold", 0x20, 8, 46)]:
            txn.put(obj)
    nodes = {**NODES, "R2": NodeBinding(programmer="agent", url="https://r2:7443",
                                        cert="c", key="k", ca="a",
                                        devs={"R1~R2": "e21", "R2~R3": "e23"}),
             "R1": NodeBinding(programmer="memory", devs={"R1~R2": "e12"})}
    st = SliceEnforcer(IntentsSection(nodes=nodes)).sync(store)["gold"]
    assert st.state is IntentState.DEGRADED and st.device == "R2"
    assert "netlink" in st.fix
    got = store.get(SliceStatus, "gold")
    assert got is not None and got.state is IntentState.DEGRADED


def test_slice_status_over_rest(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from controller.api.app import create_app
    from tests.conftest import example_runtime

    with example_runtime(tmp_path, "gba.yaml",
                         ("op-token-0123456789", "ops", "operator", None)) as rt:
        st = SliceStatus(slice="gold", state=IntentState.FAILED,
                         constraint="min_bandwidth_mbps", reason="over capacity")
        rt.writer.put(st, actor="slices", reason="status")
        c = TestClient(create_app(rt))
        h = {"Authorization": "Bearer op-token-0123456789"}
        got = c.get("/api/v1/srv6/slice-status/gold", headers=h).json()
        assert got["state"] == "failed" and got["constraint"] == "min_bandwidth_mbps"
        assert c.get("/api/v1/srv6/slice-status/none", headers=h).status_code == 404


def _udp(ns: Ns, port: int, mbps: int, tos: int, secs: int) -> subprocess.Popen[bytes]:
    return ns.popen(["iperf3", "-c", "10.77.0.2", "-p", str(port), "-u", "-b", f"{mbps}M",
                     "-S", str(tos), "-t", str(secs), "-l", "1200", "-J",
                     "--get-server-output"], stdout=subprocess.PIPE)


def _received_mbps(proc: subprocess.Popen[bytes]) -> float:
    out, _ = proc.communicate(timeout=30)
    # the receiver's own figure: bytes it got over its own interval
    rep = json.loads(out)
    srv = rep["server_output_json"]["end"]
    s = srv.get("sum_received") or srv["sum"]
    return float(s["bits_per_second"]) / 1e6


def _under_load(h1: Ns, r2: Ns) -> tuple[float, float, dict[str, Any]]:
    """bulk floods (30 Mbit/s, DSCP 10) and gold sends its 4 Mbit/s (DSCP 46) for 5 s;
    meanwhile a timestamped probe in gold's DSCP (200/s for 3 s, from 1 s in) measures
    the one-way delay h1 → r2 (namespaces share the host clock). Returns gold and bulk
    Mbit/s as received, and the probe's accounting."""
    ports = [free_port(), free_port()]
    for p in ports:
        r2.popen(["iperf3", "-s", "-1", "-J", "-p", str(p)], name=f"iperf3-s-{p}")
    for p in ports:
        wait_for(lambda p=p: f":{p} " in r2.run(["ss", "-ltn"]).stdout, 10,
                 f"iperf3 server on {p}")
    probe_port = free_port()
    traffic = [sys.executable, "-m", "labs.traffic"]
    recv = r2.popen([*traffic, "recv", str(probe_port), "--count", "600", "--idle", "3"],
                    name="gold delay probe receiver", stdout=subprocess.PIPE)
    assert recv.stdout is not None
    assert b"listening" in recv.stdout.readline()
    bulk = _udp(h1, ports[0], 30, 10 << 2, 5)  # saturates: 30 Mbit/s offered on 10
    gold = _udp(h1, ports[1], 4, 46 << 2, 5)   # exactly its guarantee
    time.sleep(1.0)  # the bulk queue has filled
    h1.run([*traffic, "send", "10.77.0.2", str(probe_port), "--rate", "200", "--count",
            "600", "--tos", f"{46 << 2:#x}"], timeout=20)
    got_gold, got_bulk = _received_mbps(gold), _received_mbps(bulk)
    out, _ = recv.communicate(timeout=20)
    probe: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return got_gold, got_bulk, probe


BOUND_MS = 20.0  # gold's max_delay_ms: admission checked the links' 1 ms each


@needs_netns
@pytest.mark.lab
@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3 (Debian iperf3)")
def test_guaranteed_slice_holds_its_rate_and_delay_bound_while_another_saturates(
        store: SqliteStore) -> None:
    with Lab("sle") as lab:
        # the sender sits behind R1 so R1 forwards (and drops) its packets: locally
        # sent traffic would be flow-controlled by the socket instead
        h1, r1, r2 = lab.ns("h1"), lab.ns("r1"), lab.ns("r2")
        lab.link(h1, r1, "e0", "eh", ["10.76.0.2/24"], ["10.76.0.1/24"])
        lab.link(r1, r2, "e12", "e21", ["10.77.0.1/24"], ["10.77.0.2/24"])
        r1.enable_forwarding()
        h1.run(["ip", "route", "add", "default", "via", "10.76.0.1"])
        r2.run(["ip", "route", "add", "10.76.0.0/24", "via", "10.77.0.1"])
        link = Link(a="R1", b="R2", capacity_mbps=10)
        gold_slice = sl("gold", 0x20, 4, 46, (("R1", "R2"),)).model_copy(
            update={"max_delay_ms": BOUND_MS})
        for obj in [*routers()[:2], link, gold_slice,
                    sl("bulk", 0x30, 3, 10, (("R1", "R2"),)),
                    sl("greedy", 0x40, 8, 12, (("R1", "R2"),))]:
            with store.transaction("test", "slices") as txn:
                txn.put(obj)
        sec = IntentsSection(nodes={"R1": NodeBinding(netns=r1.name, devs={"R1~R2": "e12"}),
                                    "R2": NodeBinding(netns=r2.name, devs={"R1~R2": "e21"})})
        enf = SliceEnforcer(sec)
        st = enf.sync(store)
        assert st["gold"].state is IntentState.PROGRAMMED
        assert st["bulk"].state is IntentState.PROGRAMMED
        # 4 + 3 + 8 > 10: the last one admitted is refused, named, not installed
        assert st["greedy"].state is IntentState.FAILED
        assert st["greedy"].constraint == "min_bandwidth_mbps"
        stored = store.get(SliceStatus, "greedy")
        assert stored is not None and stored.state is IntentState.FAILED
        cls = read_classes("e12", r1.name)
        assert {"1:20", "1:30"} <= set(cls) and "1:40" not in cls
        # gold has a delay bound: its class is served first; bulk next; the rest last
        assert (cls["1:20"]["prio"], cls["1:30"]["prio"], cls["1:fff"]["prio"]) == (0, 1, 7)
        assert enf.sync(store) == st  # a second pass changes nothing
        t0 = time.monotonic()
        got_gold, got_bulk, probe = _under_load(h1, r2)
        report = {"lab": "slices-enforced", "gold_mbps": round(got_gold, 2),
                  "guaranteed_mbps": 4, "bulk_mbps": round(got_bulk, 2),
                  "delay_p50_ms": probe["latency_ms_p50"],
                  "delay_p99_ms": probe["latency_ms_p99"], "bound_ms": BOUND_MS,
                  "probe_lost": probe["lost"], "loadavg": Path("/proc/loadavg").read_text()
                  .split()[0]}
        report["met"] = (got_gold >= 0.95 * 4 and probe["latency_ms_p99"] is not None
                         and probe["latency_ms_p99"] <= BOUND_MS)
        print(json.dumps(report))
        assert time.monotonic() - t0 < 30
        assert got_gold >= 0.95 * 4, report
        assert got_bulk > 4.5, report  # bulk filled the rest of the link
        assert probe["lost"] == 0 and probe["latency_ms_p99"] <= BOUND_MS, (report, probe)
        stats = read_classes("e12", r1.name)
        assert int(stats["1:20"]["packets"]) > 0 and int(stats["1:30"]["packets"]) > 0
        # control: slices deleted → the device goes back to the default class only (same
        # 10 Mbit/s bottleneck); the same streams now share one queue and gold loses both
        # rate and delay bound
        with store.transaction("test", "delete slices") as txn:
            for name in ("gold", "bulk", "greedy"):
                txn.delete(Slice, name)
        assert enf.sync(store) == {} and store.list(SliceStatus) == []
        assert set(read_classes("e12", r1.name)) == {"1:1", "1:fff"}
        un_gold, un_bulk, un_probe = _under_load(h1, r2)
        control = {"lab": "slices-not-enforced", "gold_mbps": round(un_gold, 2),
                   "bulk_mbps": round(un_bulk, 2),
                   "delay_p50_ms": un_probe["latency_ms_p50"],
                   "delay_p99_ms": un_probe["latency_ms_p99"], "bound_ms": BOUND_MS,
                   "probe_lost": un_probe["lost"]}
        print(json.dumps(control))
        # payload figures: 1200-byte datagrams fill at most ~9.66 of the 10 Mbit/s on the wire
        if un_gold + un_bulk >= 9.0:  # the bottleneck was full (not always so on a busy host)
            assert un_gold < 0.95 * 4, control
            assert (un_probe["latency_ms_p99"] or 0) > BOUND_MS, control
