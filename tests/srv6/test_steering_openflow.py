"""OpenFlow steering (CATS C-TC): the os-ken app in its own process drives a real Open
vSwitch bridge (userspace datapath) between namespaces — marking (DSCP 46 set by the
switch, seen by the receiver) and redirecting a flow from MEC-1 to MEC-2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.errors import ConnectionError, ValidationError
from labs.mn import OVS_CTL, ensure_ovs
from labs.netns import Lab, Ns, free_port, wait_for
from srv6.models import SteeringMatch
from srv6.steering.openflow import OpenFlowSteering, of_rule
from tests.conftest import have, needs_netns

RECV = """
import socket, sys, json
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
s.bind(("", int(sys.argv[1]))); s.settimeout(3)
print(json.dumps({"ready": True}), flush=True)
tos = []
try:
    while len(tos) < int(sys.argv[2]):
        data, anc, _f, _a = s.recvmsg(2048, socket.CMSG_SPACE(4))
        tos.append(anc[0][2][0] if anc else -1)
except TimeoutError:
    pass
print(json.dumps({"tos": tos}), flush=True)
"""


def test_of_rule_rendering() -> None:
    r = of_rule(SteeringMatch(dst="10.0.0.2/32", protocol="udp", dst_ports="9000", dscp=0),
                priority=200, set_dscp=46)
    assert r == {"priority": 200, "output": "normal", "set_dscp": 46,
                 "match": {"eth_type": 0x0800, "ipv4_dst": "10.0.0.2", "ip_proto": 17,
                           "udp_dst": 9000, "ip_dscp": 0}}
    with pytest.raises(ValidationError, match="one port"):
        of_rule(SteeringMatch(protocol="udp", dst_ports="1-2"))



def _host(lab: Lab, name: str, br: str, addr: str) -> tuple[Ns, str]:
    ns = lab.ns(name)
    root_if = f"{lab.prefix[-8:]}{name}"[-15:]
    subprocess.run(["ip", "link", "add", root_if, "type", "veth", "peer", "name", "eth0",
                    "netns", ns.name], check=True)
    subprocess.run(["ip", "link", "set", root_if, "up"], check=True)
    subprocess.run(["ovs-vsctl", "add-port", br, root_if], check=True)
    ns.run(["ip", "addr", "add", addr, "dev", "eth0"])
    ns.run("ip link set eth0 up")
    ns.run("ethtool -K eth0 tx off")  # userspace datapath: no checksum offload
    subprocess.run(["ethtool", "-K", root_if, "tx", "off"], capture_output=True)
    return ns, root_if


@needs_netns
@pytest.mark.lab
@pytest.mark.skipif(not have("ovs-vsctl"), reason="needs openvswitch-switch")
def test_osken_app_marks_and_redirects_on_ovs(tmp_path: Path) -> None:
    br = f"cpnof{os.getpid() % 10000}"
    of_port, api_port = free_port(), free_port()
    with Lab("of") as lab:
        if ensure_ovs():  # started here: stopped again when the lab closes
            lab.on_close(lambda: subprocess.run([OVS_CTL, "stop"], capture_output=True,
                                                check=False))
        try:
            subprocess.run(["ovs-vsctl", "add-br", br, "--", "set", "bridge", br,
                            "datapath_type=netdev", "protocols=OpenFlow13", "--",
                            "set-fail-mode", br, "secure", "--", "set-controller", br,
                            f"tcp:127.0.0.1:{of_port}"], check=True)
            app = lab.popen([sys.executable, "-m", "srv6.steering.openflow_app", "--of-port",
                             str(of_port), "--api-port", str(api_port)], name="os-ken",
                            log=tmp_path / "osken.log")
            h1, _ = _host(lab, "h1", br, "10.0.0.1/24")
            mec1, _ = _host(lab, "mec1", br, "10.0.0.2/24")
            mec2, mec2_if = _host(lab, "mec2", br, "10.0.0.3/24")
            drv = OpenFlowSteering(api_port)

            def connected() -> bool:
                assert app.poll() is None, (tmp_path / "osken.log").read_text()
                try:
                    return bool(drv.datapaths())
                except ConnectionError:
                    return False
            wait_for(connected, 30, "OVS to connect to the os-ken app")
            assert h1.run("ping -c 2 -W 2 10.0.0.2", check=False).returncode == 0

            mec2_mac = json.loads(mec2.run("ip -j link show eth0").stdout)[0]["address"]
            mec2_port = int(subprocess.run(["ovs-vsctl", "get", "Interface", mec2_if,
                                            "ofport"], capture_output=True, text=True,
                                           check=True).stdout)
            rules = [
                of_rule(SteeringMatch(dst="10.0.0.2/32", protocol="udp", dst_ports="9000"),
                        priority=200, set_dscp=46),
                of_rule(SteeringMatch(dst="10.0.0.2/32", protocol="udp", dst_ports="9001"),
                        priority=200, output=mec2_port, set_eth_dst=mec2_mac,
                        set_ipv4_dst="10.0.0.3"),
            ]
            assert drv.apply(rules) == 2
            flows = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", br],
                                   capture_output=True, text=True).stdout
            assert flows.count("cookie=0xc0ffee00") == 2 and "tp_dst=9001" in flows, flows

            def receiver(ns: Ns, port: int, n: int) -> subprocess.Popen[bytes]:
                p = lab.popen(ns.argv([sys.executable, "-c", RECV, str(port), str(n)]),
                              name=f"recv{port}", stdout=subprocess.PIPE)
                assert p.stdout is not None and b"ready" in p.stdout.readline()
                return p

            marked = receiver(mec1, 9000, 5)
            redirected = receiver(mec2, 9001, 5)
            send = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                    "for i in range(5):\n"
                    "    s.sendto(b'a',('10.0.0.2',9000)); s.sendto(b'b',('10.0.0.2',9001))\n"
                    "    time.sleep(0.02)\n")
            h1.run([sys.executable, "-c", send])
            tos_marked = json.loads(marked.communicate(timeout=10)[0].splitlines()[-1])["tos"]
            tos_redir = json.loads(redirected.communicate(timeout=10)[0].splitlines()[-1])["tos"]
            assert tos_marked == [0xB8] * 5  # DSCP 46 set by the switch, sender sent 0
            assert len(tos_redir) == 5  # the MEC-1 flow landed on MEC-2
        finally:
            subprocess.run(["ovs-vsctl", "--if-exists", "del-br", br], capture_output=True)
