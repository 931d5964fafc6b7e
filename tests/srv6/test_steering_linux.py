"""Linux steering (CATS C-TC): 5-tuple ``ip rule``s into per-policy tables on the 5-router
lab, flow affinity when a service moves (RFC 10053), and rule/JSON round trips."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from controller.errors import ValidationError
from labs.netns import Lab, Ns
from labs.srv6lab import (
    DST_PREFIX,
    H2,
    PATH_A,
    PATH_B,
    ROUTERS,
    SrLab,
    build,
    desired,
    sid_of,
)
from srv6.dataplane import NodeState, Seg6Route
from srv6.dataplane.netlink import NetlinkProgrammer
from srv6.models import SteeringMatch
from srv6.steering.linux import Flow, IpRule, LinuxSteering, pin_flows, rule_for
from tests.conftest import needs_netns

TABLE_A, TABLE_B = 100, 101


def test_rule_for_5tuple_and_dscp_limits() -> None:
    m = SteeringMatch(src="10.1.0.0/24", dst="10.2.0.9", protocol="udp", dst_ports="9000-9010")
    r = rule_for(m, TABLE_B, 1000)
    assert r.args() == ["priority", "1000", "from", "10.1.0.0/24", "to", "10.2.0.9/32",
                        "ipproto", "udp", "dport", "9000-9010", "table", "101", "protocol",
                        "200"]
    assert rule_for(SteeringMatch(dscp=4), 1, 1).tos == 16
    with pytest.raises(ValidationError, match="DSCP 46"):
        rule_for(SteeringMatch(dscp=46), 1, 1)
    with pytest.raises(ValidationError, match="ports need protocol"):
        rule_for(SteeringMatch(dst_ports="80"), 1, 1)


def test_pins_only_without_migration() -> None:
    f = Flow("10.1.0.2", "10.2.0.2", "udp", 5001, 9000)
    assert pin_flows([f], TABLE_A, 10, allow_migration=True) == []
    (pin,) = pin_flows([f], TABLE_A, 10, allow_migration=False)
    assert (pin.src, pin.dst, pin.sport, pin.dport, pin.table) == (
        "10.1.0.2/32", "10.2.0.2/32", "5001", "9000", TABLE_A)


@pytest.fixture(scope="module")
def lab() -> Iterator[SrLab]:
    with Lab("stl") as raw:
        sr = build(raw)
        both = {n: desired(PATH_A).get(n, NodeState()).merged(desired(PATH_B).get(n, NodeState()))
                for n in ROUTERS}
        a_route = next(iter(desired(PATH_A)["r1"]))
        b_route = next(iter(desired(PATH_B)["r1"]))
        assert isinstance(a_route, Seg6Route) and isinstance(b_route, Seg6Route)
        both["r1"] = NodeState.of([
            a_route,  # main table: the default policy (path A)
            Seg6Route(dst=DST_PREFIX, segments=a_route.segments, dev="r2", table=TABLE_A),
            Seg6Route(dst=DST_PREFIX, segments=b_route.segments, dev="r4", table=TABLE_B)])
        for n in ROUTERS:
            p = NetlinkProgrammer(n, netns=sr.ns[n].name)
            p.load(both[n])
            assert not p.commit().failed
            p.close()
        yield sr


def rx(ns: Ns, dev: str) -> int:
    out = json.loads(ns.run(["ip", "-j", "-s", "link", "show", "dev", dev]).stdout)
    return int(out[0]["stats64"]["rx"]["packets"])


def send_udp(ns: Ns, sport: int, dport: int, n: int = 40) -> None:
    code = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            f"s.bind(('',{sport}))\nfor i in range({n}):\n"
            f"    s.sendto(b'x'*32,('{H2}',{dport})); time.sleep(0.001)\n")
    ns.run([sys.executable, "-c", code])


def path_of(sr: SrLab, sport: int, dport: int) -> str:
    """Which transit router carried a burst: r2 (path A) or r4 (path B)."""
    a0, b0 = rx(sr.ns["r2"], "r1"), rx(sr.ns["r4"], "r1")
    send_udp(sr.ns["h1"], sport, dport)
    da, db = rx(sr.ns["r2"], "r1") - a0, rx(sr.ns["r4"], "r1") - b0
    assert max(da, db) >= 40 and min(da, db) < 5, (da, db)
    return "A" if da > db else "B"


@needs_netns
@pytest.mark.lab
def test_five_tuple_rule_steers_only_matching_flow(lab: SrLab) -> None:
    st = LinuxSteering(lab.ns["r1"].name)
    rule = rule_for(SteeringMatch(dst=DST_PREFIX, protocol="udp", dst_ports="9001"),
                    TABLE_B, 1000)
    assert st.apply([rule]) == ([rule], [])
    assert st.read_actual() == {rule}
    assert st.apply([rule]) == ([], [])  # idempotent
    assert path_of(lab, 6001, 9001) == "B"
    assert path_of(lab, 6001, 9002) == "A"
    assert sid_of("r4") in lab.ns["r1"].run(f"ip route show table {TABLE_B}").stdout
    st.apply([])
    assert st.read_actual() == set()


@needs_netns
@pytest.mark.lab
def test_service_move_keeps_running_flow_unless_migration_allowed(lab: SrLab) -> None:
    st = LinuxSteering(lab.ns["r1"].name)
    svc = SteeringMatch(dst=DST_PREFIX, protocol="udp")
    st.apply([rule_for(svc, TABLE_A, 2000)])
    assert path_of(lab, 5001, 9000) == "A"  # the running flow, on instance/path A
    running = [Flow("10.1.0.2", H2, "udp", 5001, 9000)]
    moved = [rule_for(svc, TABLE_B, 2000), *pin_flows(running, TABLE_A, 1500, False)]
    added, removed = st.apply(moved)
    assert len(added) == 2 and len(removed) == 1
    assert path_of(lab, 5001, 9000) == "A"  # affinity: stays
    assert path_of(lab, 5002, 9000) == "B"  # new flows go to the new place
    st.apply([rule_for(svc, TABLE_B, 2000), *pin_flows(running, TABLE_A, 1500, True)])
    assert path_of(lab, 5001, 9000) == "B"  # migration allowed: it moves too
    st.apply([])


def test_rule_json_round_trip() -> None:
    from srv6.steering.linux import _from_json

    d = {"priority": 5, "src": "10.1.0.0", "srclen": 24, "ipproto": "udp",
         "sport_start": 5000, "sport_end": 5010, "table": "100", "protocol": "200"}
    assert _from_json(d, 4) == IpRule(priority=5, table=100, src="10.1.0.0/24",
                                      ipproto="udp", sport="5000-5010")
    assert _from_json({**d, "protocol": "kernel"}, 4) is None
