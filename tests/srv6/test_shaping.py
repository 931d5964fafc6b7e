"""Slice HTB shaping (GBA-6.4.3f): plan checks, and a namespace link where the slice's
DSCP traffic lands in its class and is held to its rate (tc statistics show it)."""

from __future__ import annotations

import sys

import pytest

from controller.errors import ValidationError
from labs.netns import Lab
from srv6.models import HtbClass
from srv6.shaping import DEFAULT_CLASS, apply, parse_tc_classes, plan_htb, read_classes
from tests.conftest import needs_netns


def video(rate: float = 5, classid: str = "1:10") -> HtbClass:
    return HtbClass(node="r1", peer="r2", link="r1-r2", classid=classid, rate_mbps=rate,
                    ceil_mbps=rate, slice="video", color=200, dscp=46)


def test_overbooked_link_refused() -> None:
    with pytest.raises(ValidationError, match="guarantee 120 Mbit/s on a 100"):
        plan_htb("eth0", 100, [video(60), video(60, "1:11")])


def test_plan_matches_ipv4_dscp_and_outer_ipv6_traffic_class() -> None:
    cmds = [" ".join(c) for c in plan_htb("eth0", 100, [video()])]
    assert "ip dsfield 0xb8 0xfc flowid 1:10" in cmds[-2]
    assert "ip6 priority 0xb8 0xfc flowid 1:10" in cmds[-1]


def test_plan_serves_delay_bound_classes_first_and_the_default_class_last() -> None:
    bounded = video().model_copy(update={"prio": 0})
    cmds = [" ".join(c) for c in plan_htb("eth0", 100, [bounded, video(2, "1:11")])]
    assert any("classid 1:10 htb" in c and c.endswith("prio 0") for c in cmds)
    assert any("classid 1:11 htb" in c and c.endswith("prio 1") for c in cmds)
    assert any(f"classid {DEFAULT_CLASS} htb" in c and c.endswith("prio 7") for c in cmds)
    text = ("class htb 1:20 parent 1:1 leaf 8002: prio 0 rate 4Mbit ceil 10Mbit burst 1600b\n"
            " Sent 1200 bytes 1 pkt (dropped 0, overlimits 0 requeues 0)\n"
            "class htb 1:1 root rate 10Mbit ceil 10Mbit burst 1600b cburst 1600b\n")
    got = parse_tc_classes(text)
    assert got["1:20"]["prio"] == 0 and got["1:20"]["packets"] == 1
    assert "prio" not in got["1:1"] and got["1:1"]["rate"] == "10Mbit"


@needs_netns
@pytest.mark.lab
def test_slice_class_gets_its_traffic_and_is_shaped() -> None:
    with Lab("shp") as lab:
        a, b = lab.ns("a"), lab.ns("b")
        lab.link(a, b, "eth0", "eth0", ["10.5.0.1/24"], ["10.5.0.2/24"])
        apply("eth0", 100, [video(5), video(2, "1:11")], netns=a.name)
        # re-apply with one slice fewer: the stale class is removed, the rest stays
        assert apply("eth0", 100, [video(5)], netns=a.name) == ["1:11"]
        code = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "s.setsockopt(socket.IPPROTO_IP,socket.IP_TOS,0xb8)\n"
                "o=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "end=time.time()+0.5\n"
                "while time.time()<end:\n"
                "    s.sendto(b'v'*1200,('10.5.0.2',9)); o.sendto(b'o'*100,('10.5.0.2',9))\n")
        a.run([sys.executable, "-c", code])
        classes = read_classes("eth0", a.name)
        slice_cls, default = classes["1:10"], classes[DEFAULT_CLASS]
        assert slice_cls["rate"] == "5Mbit" and slice_cls["ceil"] == "5Mbit"
        assert int(slice_cls["packets"]) > 0 and int(default["packets"]) > 0
        # offered far above 5 Mbit/s: the slice class had to hold packets back
        assert int(slice_cls["overlimits"]) > 0 or int(slice_cls["drops"]) > 0
        assert set(classes) == {"1:1", "1:10", DEFAULT_CLASS}
