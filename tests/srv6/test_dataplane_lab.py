"""Five-router namespace lab: program an SR policy rendered from the model, carry ICMP
and UDP through it, check the SRH on the wire at a transit node, switch paths
make-before-break under a 1 kHz stream with 0 lost, reconcile after tampering
(GBA-6.4.3c; RFC 8754 SRH, RFC 8986 End / End.DX4)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labs.netns import Lab, Ns, wait_for
from labs.srv6lab import H2, PATH_A, PATH_B, ROUTERS, SrLab, build, desired, sid_of
from srv6.dataplane import mbb
from srv6.dataplane.netlink import NetlinkProgrammer
from srv6.dataplane.programmer import PolicyProgrammer
from srv6.dataplane.state import Seg6LocalRoute
from tests.conftest import needs_netns

pytestmark = [needs_netns, pytest.mark.lab]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[SrLab, dict[str, PolicyProgrammer]]]:
    with Lab("sr5") as raw:
        sr = build(raw)
        progs: dict[str, PolicyProgrammer] = {
            r: NetlinkProgrammer(r, netns=sr.ns[r].name) for r in ROUTERS}
        try:
            yield sr, progs
        finally:
            for p in progs.values():
                p.close()


def apply(progs: dict[str, PolicyProgrammer], path: tuple[str, ...]) -> None:
    for node, state in desired(path).items():
        progs[node].load(state)
        res = progs[node].commit()
        assert not res.failed, res.error


def ping(ns: Ns, dst: str = H2, count: int = 3) -> bool:
    return ns.run(["ping", "-c", str(count), "-i", "0.2", "-W", "1", dst],
                  check=False).returncode == 0


def traffic(ns: Ns, *args: str) -> list[str]:
    return ns.argv([sys.executable, "-m", "labs.traffic", *args])


def start_receiver(sr: SrLab, count: int) -> subprocess.Popen[bytes]:
    proc = sr.lab.popen(traffic(sr.ns["h2"], "recv", "9000", "--count", str(count),
                                "--idle", "2"), name="recv", stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline()) == {"listening": 9000}
    return proc


def finish(proc: subprocess.Popen[bytes]) -> dict[str, object]:
    out, _ = proc.communicate(timeout=30)
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def test_policy_carries_icmp_and_udp(lab: tuple[SrLab, dict[str, PolicyProgrammer]]) -> None:
    sr, progs = lab
    apply(progs, PATH_A)
    assert ping(sr.ns["h1"])
    recv = start_receiver(sr, 300)
    send = sr.ns["h1"].run([sys.executable, "-m", "labs.traffic", "send", H2, "9000",
                            "--rate", "1000", "--count", "300"], timeout=30)
    assert json.loads(send.stdout)["sent"] == 300
    summary = finish(recv)
    assert summary["lost"] == 0 and summary["unique"] == 300, summary
    # without the policy there is no IPv4 route from r1 to h2: the SR path carried it
    assert "10.2.0.0/24" not in sr.ns["r1"].run("ip route show proto static").stdout


def test_capture_at_transit_shows_computed_srh(
        lab: tuple[SrLab, dict[str, PolicyProgrammer]], tmp_path: Path) -> None:
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
    from scapy.utils import rdpcap

    sr, progs = lab
    apply(progs, PATH_A)
    pcap, log = tmp_path / "r3.pcap", tmp_path / "tcpdump.log"
    dump = sr.ns["r3"].popen(["tcpdump", "-i", "r2", "-U", "-c", "3", "-w", str(pcap), "ip6",
                              "and", "ip6[6] == 43"], log=log)
    wait_for(lambda: "listening" in log.read_text(), 10, "tcpdump to start")
    assert ping(sr.ns["h1"], count=3)
    dump.wait(timeout=10)
    srh = [p for p in rdpcap(str(pcap)) if p.haslayer(IPv6ExtHdrSegmentRouting)]
    assert len(srh) == 3
    computed = [sid_of(n) for n in PATH_A]
    for pkt in srh:
        h = pkt[IPv6ExtHdrSegmentRouting]
        on_wire = list(reversed([str(a) for a in h.addresses]))  # RFC 8754: [0] = last
        assert on_wire == computed
        assert h.segleft == 1 and pkt[IPv6].dst == sid_of("r3")  # r2 ran End


def test_make_before_break_switch_loses_nothing(
        lab: tuple[SrLab, dict[str, PolicyProgrammer]]) -> None:
    sr, progs = lab
    apply(progs, PATH_A)
    count = 2500
    recv = start_receiver(sr, count)
    send = sr.lab.popen(traffic(sr.ns["h1"], "send", H2, "9000", "--rate", "1000", "--count",
                                str(count)), name="send", stdout=subprocess.PIPE)
    time.sleep(0.8)  # let the stream run on path A before switching
    report = mbb.switch(progs, desired(PATH_B), headend="r1")
    assert report.ok, (report.failed_step, report.error)
    phases = [s.phase for s in report.steps]
    assert phases.index("make") < phases.index("verify") < phases.index("switch") \
        < phases.index("break")
    switch_step = next(s for s in report.steps if s.phase == "switch")
    assert switch_step.result is not None
    assert switch_step.result.diff.startswith("~ 10.2.0.0/24")  # one atomic replace
    send.communicate(timeout=30)
    summary = finish(recv)
    assert summary["lost"] == 0 and summary["unique"] == count, summary
    print("mbb", json.dumps({"switch_ms": report.switch_ms, "total_ms": report.elapsed_ms,
                             **summary}))
    assert progs["r2"].read_actual().routes == {}  # old path's SIDs removed
    assert progs["r3"].read_actual().routes == {}
    assert any(isinstance(r, Seg6LocalRoute) for r in progs["r4"].read_actual())


def test_reconcile_after_tampering_restores_forwarding(
        lab: tuple[SrLab, dict[str, PolicyProgrammer]]) -> None:
    sr, progs = lab
    apply(progs, PATH_B)
    assert ping(sr.ns["h1"], count=1)
    sr.ns["r4"].run(["ip", "-6", "route", "del", sid_of("r4")])
    assert not ping(sr.ns["h1"], count=1)
    target = desired(PATH_B)
    changed = []
    for node, state in target.items():
        progs[node].load(state)
        res = progs[node].commit()
        assert not res.failed
        if res.changed:
            changed.append((node, res.diff))
    assert changed == [("r4", f"+ {sid_of('r4')} seg6local action End dev r5")]
    assert ping(sr.ns["h1"], count=1)

