"""The os-ken application class behind ``srv6.steering.openflow_app`` (imported only in
that process: it pulls in eventlet). Rules are in ``openflow_app``'s docstring."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from srv6.steering.openflow_app import COOKIE, actions


class CpnSteering(app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datapaths: dict[int, Any] = {}
        self.rules: list[dict[str, Any]] = []
        self.api_port = int(os.environ.get("CPN_OF_API_PORT", "6699"))
        self.api_unix = os.environ.get("CPN_OF_API_UNIX", "")
        hub.spawn(self._serve_api)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)  # type: ignore[misc,untyped-decorator]
    def _features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        miss = parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                            [parser.OFPActionOutput(ofp.OFPP_NORMAL)])
        dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=0, match=parser.OFPMatch(),
                                      instructions=[miss]))
        self.datapaths[dp.id] = dp
        self._install(dp, self.rules)

    def _install(self, dp: Any, rules: list[dict[str, Any]]) -> int:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(parser.OFPFlowMod(datapath=dp, cookie=COOKIE, cookie_mask=0xFFFFFFFF,
                                      table_id=ofp.OFPTT_ALL, command=ofp.OFPFC_DELETE,
                                      out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                                      match=parser.OFPMatch()))
        for r in rules:
            inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                                 actions(parser, ofp, r))]
            dp.send_msg(parser.OFPFlowMod(datapath=dp, cookie=COOKIE,
                                          priority=int(r.get("priority", 100)),
                                          match=parser.OFPMatch(**r["match"]),
                                          instructions=inst))
        dp.send_msg(parser.OFPBarrierRequest(dp))
        return len(rules)

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("op") == "status":
            return {"ok": True, "datapaths": sorted(self.datapaths)}
        if req.get("op") == "apply":
            rules = req.get("rules")
            if not isinstance(rules, list) or not all(
                    isinstance(r, dict) and "match" in r for r in rules):
                return {"ok": False, "error": "rules: a list of {match, …} is required"}
            if rules == self.rules:  # reconcile without churn: counters keep counting
                return {"ok": True, "installed": 0, "unchanged": True,
                        "datapaths": sorted(self.datapaths)}
            self.rules = rules
            n = sum(self._install(dp, rules) for dp in self.datapaths.values())
            return {"ok": True, "installed": n, "datapaths": sorted(self.datapaths)}
        return {"ok": False, "error": f"unknown op {req.get('op')!r}"}

    def _serve_api(self) -> None:
        def conn(sock: Any, _addr: Any) -> None:
            f = sock.makefile("rwb")
            for line in f:
                try:
                    reply = self.handle(json.loads(line))
                except Exception as exc:  # reported to the caller
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                f.write(json.dumps(reply).encode() + b"\n")
                f.flush()

        if self.api_unix:  # reachable from other network namespaces (a file, not a port)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.api_unix)
            hub.StreamServer((self.api_unix, None), conn).serve_forever()
        else:
            hub.StreamServer(("127.0.0.1", self.api_port), conn).serve_forever()
