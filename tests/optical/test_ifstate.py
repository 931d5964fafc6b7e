"""IP link state over NETCONF: yuma123 ietf-interfaces (NMDA) in a namespace, real kernel."""

from __future__ import annotations

import asyncio
import time

import pytest

from labs.netns import Lab, wait_for
from labs.optical.ne import IF_ARGS, IF_ENV, IF_MODULES, LabNe, make_keys
from optical.ifstate import IfState, diff, parse_interfaces
from optical.netconf import NetconfDevice
from tests.conftest import have, needs_netns

REPLY = """<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><data
 xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"><interfaces
 xmlns="urn:ietf:params:xml:ns:yang:ietf-interfaces"><interface><name>eth0</name>
<oper-status>up</oper-status><statistics><in-octets>1000</in-octets>
<out-octets>500</out-octets></statistics></interface><interface><name>bad</name>
<oper-status>up</oper-status><statistics><in-octets>x</in-octets></statistics></interface>
</interfaces></data></rpc-reply>"""


def test_parse_skips_bad_interface_keeps_rest() -> None:
    got = parse_interfaces("r1", REPLY)
    assert got == {"eth0": IfState("eth0", "up", 1000, 500)}


def test_diff_gives_down_and_utilisation() -> None:
    a = {"eth0": IfState("eth0", "up", 0, 0)}
    b = {"eth0": IfState("eth0", "down", 1_250_000, 0)}
    ev = diff("r1", a, b, 1.0, speed_mbps=100)
    assert [(e.kind, e.value) for e in ev] == [("down", 0.0), ("utilisation", 10.0)]


@needs_netns
@pytest.mark.lab
@pytest.mark.skipif(not have("netconfd"), reason="needs netconfd")
def test_real_interface_state_over_netconf(tmp_path: object) -> None:
    with Lab("ifs") as lab:
        r1, r2 = lab.ns("r1"), lab.ns("r2")
        lab.link(r1, r2, "eth0", "eth0", ["10.9.0.1/24"], ["10.9.0.2/24"])
        from pathlib import Path
        base = Path(str(tmp_path))
        key, host = make_keys(base)
        ne = LabNe("r1", base, key, host, modules=IF_MODULES, args=IF_ARGS, netns=r1.name,
                   env=IF_ENV)
        try:
            ne.start()
            ne.wait_ready()
            dev = NetconfDevice("r1", "127.0.0.1", ne.port, "root", str(key))

            async def read() -> dict[str, IfState]:
                return await dev.interfaces()
            first = asyncio.run(read())
            assert first["eth0"].oper_status == "up"
            t0 = time.monotonic()
            r1.run("ping -c 20 -i 0.01 -s 1000 -q 10.9.0.2")
            second = wait_for(lambda: (s := asyncio.run(read()))["eth0"].out_octets
                              > first["eth0"].out_octets and s, 10, "eth0 counters to move")
            ev = diff("r1", first, second, time.monotonic() - t0, speed_mbps=10)
            util = [e for e in ev if e.interface == "eth0" and e.kind == "utilisation"]
            assert util and util[0].value > 0
            assert second["eth0"].out_octets - first["eth0"].out_octets >= 20 * 1000
            r2.run("ip link set eth0 down")
            third = wait_for(lambda: (s := asyncio.run(read()))["eth0"].oper_status != "up"
                             and s, 10, "eth0 oper-status down")
            assert any(e.kind == "down" and e.interface == "eth0"
                       for e in diff("r1", second, third, 1.0))
            asyncio.run(dev.close())
        finally:
            ne.stop()
