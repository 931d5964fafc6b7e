"""Mininet topologies on top of ``labs.netns.Lab``: Mininet builds, the Lab tears down.

Rules:
- Mininet creates the hosts (each its own network namespace), the veth links and the
  Open vSwitch switches; every host's namespace is then *attached* under a Lab name
  (``ip netns attach``), so the rest of a lab uses the same ``Ns.run`` / ``Ns.popen``
  as a plain namespace lab, and ``Lab.close`` removes it like any other.
- Switches use the **userspace datapath** (``datapath='user'`` → ``datapath_type=netdev``):
  the kernel datapath is not available in this sandbox (LAB-NOTES). Each switch points
  at one OpenFlow controller (``tcp:127.0.0.1:PORT``, e.g. the os-ken steering app) in
  ``standalone`` fail mode, so it keeps forwarding (NORMAL) if the controller dies.
- Names: switch names (and so their root-namespace port names ``<sw>-ethN``) carry the
  Lab's unique number; host interface names are the ones the caller asks for (they live
  in the host's own namespace). Offloads are turned off on every switch-facing
  interface: the userspace datapath does not complete partial checksums.
- Teardown order on ``Lab.close`` (every exit path, Ctrl-C included): the Lab's own
  processes → ``Mininet.stop()`` (links, switches, host shells) → the attached names.
  Open vSwitch is started if it is not running, and stopped again only if this lab
  started it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from labs.netns import Lab, LabError, Ns

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
_ids = itertools.count(1)


def ovs_running() -> bool:
    return subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True,
                          check=False).returncode == 0


def ensure_ovs() -> bool:
    """Start Open vSwitch if needed; True when this call started it."""
    if shutil.which("ovs-vsctl") is None:
        raise LabError("Open vSwitch is not installed (apt-get install openvswitch-switch; "
                       "`make test` installs it)")
    if ovs_running():
        return False
    res = subprocess.run([OVS_CTL, "start", "--system-id=random"], capture_output=True,
                         text=True, check=False)
    if not ovs_running():
        raise LabError(f"cannot start Open vSwitch ({OVS_CTL} start): "
                       f"{(res.stderr or res.stdout).strip()[-300:]}")
    return True


def connected(bridge: str) -> bool:
    """Is ``bridge`` connected to (one of) its OpenFlow controller(s)?"""
    br = subprocess.run(["ovs-vsctl", "--timeout=3", "get-controller", bridge],
                        capture_output=True, text=True, check=False).stdout.split()
    if not br:
        return False
    out = subprocess.run(["ovs-vsctl", "--timeout=3", "--format=csv", "--data=bare",
                          "--no-headings", "--columns=target,is_connected", "list",
                          "Controller"], capture_output=True, text=True, check=False).stdout
    rows = [ln.split(",") for ln in out.splitlines() if ln.count(",") == 1]
    return any(tgt in br and conn == "true" for tgt, conn in rows)


class MininetTopo:
    """Declare hosts, switches and links, then ``start()``; see the module rules."""

    def __init__(self, lab: Lab) -> None:
        try:
            from mininet.log import setLogLevel
            from mininet.net import Mininet
        except ImportError as exc:  # pragma: no cover - dependency of the dev extra
            raise LabError(f"Mininet is not importable ({exc}); pip install mininet") from exc
        setLogLevel("warning")
        self.lab = lab
        self.uid = f"{os.getpid() % 1000}{next(_ids)}"
        self.net: Any = Mininet(build=False, controller=None, autoSetMacs=False,
                                autoStaticArp=False, waitConnected=False)
        self.hosts: dict[str, Any] = {}
        self.switches: dict[str, Any] = {}
        self.ns: dict[str, Ns] = {}
        # host-side interfaces: (host, ifname, addresses, faces a switch)
        self._intfs: list[tuple[str, str, list[str], bool]] = []
        self._started_ovs = False
        self._stopped = False
        lab.on_close(self.stop)

    def host(self, short: str) -> None:
        self.hosts[short] = self.net.addHost(f"h{self.uid}{short}"[:10], ip=None)

    def switch(self, short: str, of_port: int) -> str:
        """An OVS switch (userspace datapath) controlled from ``127.0.0.1:of_port``;
        returns its bridge name."""
        from mininet.node import OVSSwitch, RemoteController

        # Mininet's OVSSwitch checks ovsdb when the switch is declared, not at build
        if ensure_ovs():
            self._started_ovs = True
        n = len(self.switches) + 1
        name = f"s{self.uid}{n}"
        self.net.addController(f"c{self.uid}{n}", controller=RemoteController,
                               ip="127.0.0.1", port=of_port)
        self.switches[short] = self.net.addSwitch(
            name, cls=OVSSwitch, datapath="user", protocols="OpenFlow13",
            failMode="standalone", dpid=f"{int(self.uid) * 16 + n:016x}")
        return name

    def link(self, a: str, b: str, a_if: str | None = None, b_if: str | None = None,
             a_addrs: Sequence[str] = (), b_addrs: Sequence[str] = ()) -> None:
        """A link between hosts/switches (by short name); host interface names as given."""
        na = self.hosts.get(a) or self.switches[a]
        nb = self.hosts.get(b) or self.switches[b]
        params: dict[str, Any] = {}
        if a in self.hosts and a_if:
            params["intfName1"] = a_if
        if b in self.hosts and b_if:
            params["intfName2"] = b_if
        self.net.addLink(na, nb, **params)
        for short, ifname, addrs, other in ((a, a_if, a_addrs, b), (b, b_if, b_addrs, a)):
            if short in self.hosts and ifname:
                self._intfs.append((short, ifname, list(addrs), other in self.switches))

    def start(self) -> dict[str, Ns]:
        """Build and start the network (OVS was started when a switch was declared);
        returns short name → attached ``Ns``."""
        try:
            self.net.build()
            self.net.start()
        except Exception as exc:
            raise LabError(f"Mininet could not start the topology: {exc}") from exc
        for short, h in self.hosts.items():
            self.ns[short] = self.lab.attach(short, int(h.pid))
        for short, ifname, addrs, faces_switch in self._intfs:
            ns = self.ns[short]
            ns.run(["ip", "addr", "flush", "dev", ifname])
            ns.address(ifname, addrs)
            if faces_switch:
                ns.run(["ethtool", "-K", ifname, "tx", "off"], check=False)
        for sw in self.switches.values():
            for intf in sw.intfList():
                if intf.name != "lo":
                    subprocess.run(["ethtool", "-K", intf.name, "tx", "off"],
                                   capture_output=True, check=False)
        return self.ns

    def dump_flows(self, short: str) -> str:
        """OpenFlow flows of switch ``short`` with settled counters (datapath statistics
        reach OpenFlow rules on the revalidators' pass: wait for one first)."""
        name = self.switches[short].name
        subprocess.run(["ovs-appctl", "--timeout=5", "revalidator/wait"],
                       capture_output=True, check=False)
        return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", name],
                              capture_output=True, text=True, check=False).stdout

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            self.net.stop()
        for sw in self.switches.values():  # in case Mininet.stop failed half-way
            subprocess.run(["ovs-vsctl", "--timeout=5", "--if-exists", "del-br", sw.name],
                           capture_output=True, check=False)
        if self._started_ovs:
            subprocess.run([OVS_CTL, "stop"], capture_output=True, check=False)
