"""OpenFlow 1.3 steering app for Open vSwitch access switches (os-ken, own process).

Rules:
- Runs as its own process (``python -m srv6.steering.openflow_app --of-port P --api-port
  Q``): os-ken is eventlet-based and must not share the asyncio controller process
  (LAB-NOTES). Started with ``AppManager`` (there is no ``osken-manager`` command).
- Every switch that connects gets a table-miss flow (priority 0 → ``NORMAL``: plain L2
  forwarding) and then the current CPN rule set. CPN flows carry ``COOKIE``; applying a
  rule set deletes CPN-cookie flows and installs the new ones (reconcile), other flows
  are left alone.
- A rule = ``priority``, ``match`` (OFPMatch fields: ``in_port``, ``eth_type``,
  ``ip_proto``, ``ipv4_src``/``ipv4_dst``, ``udp_dst``/``tcp_dst``…, ``ip_dscp``) and
  actions: ``set_dscp`` (marking), ``set_eth_dst``/``set_ipv4_dst`` (redirect to another
  instance), ``output`` (port number or ``"normal"``).
- Control API: one JSON object per line over TCP on 127.0.0.1 (``--api-port``) or, with
  ``--api-unix PATH``, over a Unix socket (reachable from a controller in another
  network namespace, where 127.0.0.1 is not this process's):
  ``{"op": "status"}`` → connected datapath ids; ``{"op": "apply", "rules": [...]}``
  → ``{"ok", "installed", "datapaths"}`` (an unchanged rule set is not re-installed:
  ``installed`` 0, ``unchanged`` true, flow counters keep counting);
  errors → ``{"ok": false, "error"}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

COOKIE = 0xC0FFEE00


def actions(parser: Any, ofp: Any, rule: dict[str, Any]) -> list[Any]:
    acts: list[Any] = []
    if "set_dscp" in rule:
        acts.append(parser.OFPActionSetField(ip_dscp=int(rule["set_dscp"])))
    if "set_eth_dst" in rule:
        acts.append(parser.OFPActionSetField(eth_dst=str(rule["set_eth_dst"])))
    if "set_ipv4_dst" in rule:
        acts.append(parser.OFPActionSetField(ipv4_dst=str(rule["set_ipv4_dst"])))
    out = rule.get("output", "normal")
    port = ofp.OFPP_NORMAL if out == "normal" else int(out)
    acts.append(parser.OFPActionOutput(port))
    return acts


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - runs in its own process
    import argparse

    ap = argparse.ArgumentParser(prog="python -m srv6.steering.openflow_app")
    ap.add_argument("--of-port", type=int, default=6653)
    ap.add_argument("--api-port", type=int, default=6699)
    ap.add_argument("--api-unix", default="", help="serve the control API on this Unix "
                    "socket path instead of 127.0.0.1:--api-port")
    a = ap.parse_args(argv)

    import os

    from os_ken import cfg
    from os_ken.base import app_manager
    from os_ken.lib import hub

    os.environ["CPN_OF_API_PORT"] = str(a.api_port)
    os.environ["CPN_OF_API_UNIX"] = a.api_unix
    cfg.CONF(args=["--ofp-tcp-listen-port", str(a.of_port),
                   "--ofp-listen-host", "127.0.0.1"], project="os_ken")
    mgr = app_manager.AppManager.get_instance()
    mgr.load_apps(["srv6.steering._osken_app", "os_ken.controller.ofp_handler"])
    contexts = mgr.create_contexts()
    services = mgr.instantiate_apps(**contexts)
    print(json.dumps({"openflow": a.of_port, "api": a.api_unix or a.api_port}), flush=True)
    hub.joinall(services)
    return 0


if __name__ == "__main__":
    sys.exit(main())
