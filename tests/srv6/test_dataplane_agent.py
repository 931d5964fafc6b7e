"""The ``PolicyProgrammer`` contract through the node agent (GBA-6.4.3c).

The agent (``python -m srv6.dataplane.agent`` = ``cpn node-agent``) runs in the router
namespace; the controller side (``AgentProgrammer``) connects over HTTPS with mutual TLS
from a management namespace, with certificates from ``telemetry.pki``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.errors import ConnectionError
from labs.netns import Lab
from srv6.dataplane import PolicyProgrammer, Seg6Route
from srv6.dataplane.agent import AgentProgrammer
from srv6.dataplane.state import RTPROT_CPN, Route
from telemetry.pki import CertificateAuthority
from tests.conftest import needs_netns
from tests.srv6.test_dataplane_netlink import add_by_intruder, ip_args, kernel_dataplanes, node_ns
from tests.srv6.test_programmer_contract import ProgrammerContract

AGENT = [sys.executable, "-m", "srv6.dataplane.agent"]


@needs_netns
@pytest.mark.lab
class TestAgent(ProgrammerContract):
    #: the agent programs with the best dataplane its kernel has (NetlinkProgrammer)
    inline = kernel_dataplanes()[-1] == "lwtunnel"
    @pytest.fixture(autouse=True)
    def _lab(self, tmp_path: Path) -> Iterator[None]:
        ca = CertificateAuthority(tmp_path / "ca")
        ca.init(server_names=("10.99.0.1",))
        self.client = ca.issue("controller")
        self.ca = ca
        with Lab("ag") as lab:
            self.ns = node_ns(lab)
            self.mgmt = lab.ns("mgmt")
            lab.link(self.ns, self.mgmt, "mgmt", "eth0", ["10.99.0.1/24"], ["10.99.0.2/24"])
            agent = self.ns.popen([*AGENT, "--listen", "10.99.0.1:7443",
                                   "--node", "r1", "--cert", str(ca.dir / "server.pem"),
                                   "--key", str(ca.dir / "server.key"),
                                   "--ca", str(ca.cert_path)], stdout=subprocess.PIPE)
            assert agent.stdout is not None
            first = agent.stdout.readline().decode()
            assert first.startswith("{"), first  # the agent's first line is its JSON banner
            assert json.loads(first)["listening"] == "10.99.0.1:7443"
            yield

    def make(self) -> PolicyProgrammer:
        return AgentProgrammer("r1", "10.99.0.1:7443", self.client,
                               self.client.with_suffix(".key"), self.ca.cert_path,
                               netns=self.mgmt.name)

    def tamper_delete(self, prog: PolicyProgrammer, route: Route) -> None:
        dst = route.dst if isinstance(route, Seg6Route) else route.sid
        self.ns.run(["ip", "-6", "route", "del", dst])

    def tamper_add(self, prog: PolicyProgrammer, route: Route) -> None:
        if not self.inline:  # the eBPF dataplane: `ip` cannot spell it
            add_by_intruder(self.ns, route)
            return
        args = ip_args(route)
        self.ns.run(["ip", "-6", "route", "add", *args[3:], "proto", str(RTPROT_CPN)])

    def bad_route(self, prog: PolicyProgrammer) -> Route:
        return Seg6Route(dst="10.99.9.0/24", segments=("fc00:9::1",), dev="nosuchdev")

    def test_client_without_certificate_is_refused(self, tmp_path: Path) -> None:
        other = CertificateAuthority(tmp_path / "other")
        other.init()
        rogue = other.issue("rogue")
        prog = AgentProgrammer("r1", "10.99.0.1:7443", rogue, rogue.with_suffix(".key"),
                               self.ca.cert_path, netns=self.mgmt.name)
        with pytest.raises(ConnectionError):
            prog.read_actual()
        prog.close()
