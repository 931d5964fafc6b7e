"""``cpn lab crosslayer``: an SR policy intent between two hubs rides an OTN path that
the controller provisions on netconfd NEs for it and releases after it (issue 14 item 4,
GBA-5.2 hub interconnect, GBA-6.4.2 optical-IP coordination, GBA-6.4.3e/f).

What runs (all real): hub routers ``HA`` and ``HB`` in namespaces with kernel SRv6 (seg6
lwtunnels or the eBPF dataplane), joined by the IP link ``HA~HB`` of kind ``otn``; a
client host behind HA, a host behind HB; four netconfd NEs (``labs.optical.fixture``,
ring ne0…ne3 with a chord) behind OpenSSH; the controller in this process (REST, the
intent reconciler over netlink, the optical component over NETCONF with
``optical.otn_links: {HA~HB: {a: ne0, z: ne2}}``). The scenario:

1. an operator creates ``HA~100~HB`` over REST; the reconciler sees its path cross the
   on-demand link, asks the optical layer for the OTN path, which is provisioned
   all-or-nothing on the NEs and read back; only then is the SRv6 path programmed;
2. an independent NETCONF session reads each NE: the cross-connects are there; the
   headend's kernel holds the steering route; a UDP stream client → host flows;
   the reconciler's probe through the policy is captured at HB (``verified``);
3. the intent is deleted: the SRv6 routes go from the routers first, then the OTN path
   is deleted on the NEs — read back again by an independent session;
4. the report (JSON) has the timings of each step.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from controller.errors import ConnectionError
from labs.intents.backbone import Backbone, build, config, srv6_supported
from labs.intents.scenario import Controller, _args, _wait_state
from labs.netns import Lab, LabError, Ns, wait_for
from labs.optical.fixture import OpticalLab

KEY = "HA~100~HB"
LINK = "HA~HB"
PORT = 5210


def hubs() -> Backbone:
    """Two hubs, one OTN link; HB serves 10.61.0.0/24 (colour 100); clients at HA."""
    return Backbone(["HA", "HB"], [("HA", "HB", 1.0, 10)],
                    endpoints={"HB": {"10.61.0.0/24": 100}},
                    sites={"HUB-A": "HA", "HUB-B": "HB"}, access={"HA": "10.60.0.0/24"})


def lab_config(bb: Backbone, netns: dict[str, str], optical: OpticalLab) -> dict[str, Any]:
    cfg = config(bb, "netlink", netns, readback_s=0.5)
    for site in cfg["sites"]:
        site["kind"] = "hub"
    for router in cfg["routers"]:
        for link in router["links"]:
            link["kind"] = "otn"
    cfg["optical"] = {
        "ne": [{"name": ne.name, "host": "127.0.0.1", "port": ne.port, "user": "root",
                "key": str(optical.key)} for ne in optical.nes],
        "otn_links": {LINK: {"a": "ne0", "z": "ne2", "rate": "rate-100G"}},
        "otn_wait_s": 20}
    return cfg


def ne_xcs(optical: OpticalLab) -> dict[str, list[str]]:
    """Cross-connects each NE holds, read by a NETCONF session of our own (not the
    controller's)."""
    async def one(ne: str) -> tuple[str, list[str]]:
        for attempt in range(3):  # a loaded machine may leave a reply late: ask again
            dev = optical.device(ne)
            try:
                snap = await dev.discover()
                return ne, sorted(snap.config.xcs)
            except ConnectionError:
                if attempt == 2:
                    raise
            finally:
                await dev.close()
        raise AssertionError("unreachable")

    async def every() -> list[tuple[str, list[str]]]:
        return list(await asyncio.gather(*(one(ne.name) for ne in optical.nes)))
    return {ne: x for ne, x in asyncio.run(every()) if x}


def steering(ns: Ns) -> list[str]:
    """The headend's CPN routes to the endpoint's prefix (``ip route``, proto 200)."""
    out = ns.run(["ip", "-4", "route", "show", "proto", "200"]).stdout
    return [ln.strip() for ln in out.splitlines() if ln.startswith("10.61.")]


def stream(client: Ns, host: Ns, rate: int = 500, seconds: float = 2.0) -> dict[str, Any]:
    count = int(rate * seconds)
    recv = host.popen(_args("recv", str(PORT), "--count", str(count), "--idle", "1.5"),
                      name="crosslayer receiver", stdout=subprocess.PIPE)
    time.sleep(0.3)
    send = client.popen(_args("send", "10.61.0.2", str(PORT), "--rate", str(rate),
                              "--count", str(count)), name="crosslayer sender",
                        stdout=subprocess.PIPE)
    send.communicate(timeout=30)
    r_out, _ = recv.communicate(timeout=30)
    got = json.loads(r_out.decode().strip().splitlines()[-1])
    return {"sent": count, "received": got.get("received"), "lost": got.get("lost")}


def _cli(ctl: Controller, args: list[str]) -> str:
    """What an operator sees: ``cpn …`` against the lab's controller."""
    from labs.intents.scenario import OP

    res = subprocess.run([sys.executable, "-m", "controller.cli.main", *args, "--api",
                          f"127.0.0.1:{ctl.api_port}", "--token", OP],
                         capture_output=True, text=True, timeout=60)
    return res.stdout + res.stderr


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1e3, 1)


def run(report: Path) -> dict[str, Any]:
    if not srv6_supported():
        raise LabError("this kernel can program no SRv6 (neither seg6 lwtunnels nor the "
                       "eBPF dataplane): run the lab on a kernel with IPv6 segment routing")
    report.mkdir(parents=True, exist_ok=True)
    bb = hubs()
    out: dict[str, Any] = {"lab": "crosslayer", "intent": KEY, "link": LINK}
    t_start = time.perf_counter()
    with Lab("xl", workdir=report) as lab, OpticalLab(4, base=report / "nes") as optical:
        w = build(lab, bb)
        ctl = Controller(report, lab_config(bb, {r: n.name for r, n in w.ns.items()},
                                            optical))
        try:
            wait_for(lambda: "srv6-transport" in ctl.rt.settings.extra, 20,
                     "the optical component to register its OTN transport")
            out["built_s"] = round(time.perf_counter() - t_start, 2)
            out["nes_before"] = ne_xcs(optical)
            t0 = time.perf_counter()
            ctl.rest("POST", "/api/v1/srv6/intents",
                     json={"headend": "HA", "endpoint": "HB", "color": 100})
            _wait_state(ctl, KEY, {"programmed", "verified"}, 40)
            out["programmed_ms"] = _ms(t0)
            # a scapy probe through the policy, captured at HB with the computed list
            st = _wait_state(ctl, KEY, {"verified"}, 20)
            out["verified_ms"] = _ms(t0)
            xl = ctl.reconciler.crosslayer
            up = next((e for e in xl.events if e.ok and e.link == LINK), None) if xl else None
            if up is None:
                raise LabError("the intent was programmed without the OTN path being "
                               "ensured (no cross-layer event)")
            out["otn_up"] = {"path": up.path, "nes": list(up.nes), "channel": up.channel,
                             "provisioned_and_read_back_ms": round(up.elapsed_ms, 1)}
            out["status"] = {k: st[k] for k in ("state", "active", "reason")}
            out["nes_with_intent"] = ne_xcs(optical)
            paths = ctl.rest("GET", "/api/v1/optical/paths")["items"]
            out["optical_paths"] = [{k: p[k] for k in ("id", "state", "route", "channel",
                                                       "ip-links")} for p in paths]
            out["otn_links"] = ctl.rest("GET", "/api/v1/srv6/otn-links")
            out["otn_links_cli"] = _cli(ctl, ["srv6", "intents", "otn-links"])
            out["headend_routes"] = steering(w.ns["HA"])
            out["traffic"] = stream(w.clients["HA"], w.hosts["HB"])
            assert xl is not None
            seen = len(xl.events)
            t0 = time.perf_counter()
            ctl.rest("DELETE", f"/api/v1/srv6/intents/{KEY}")
            wait_for(lambda: not steering(w.ns["HA"]), 20, "the steering route to go")
            out["routes_removed_ms"] = _ms(t0)
            wait_for(lambda: len(xl.events) > seen, 30, "the OTN path to be released")
            out["otn_released_ms"] = _ms(t0)
            gone = xl.events[seen]
            out["otn_release"] = {"ok": gone.ok, "reason": gone.reason,
                                  "deleted_and_read_back_ms": round(gone.elapsed_ms, 1)}
            out["optical_paths_after"] = ctl.rest("GET", "/api/v1/optical/paths")["items"]
            out["nes_after"] = ne_xcs(optical)
            out["headend_routes_after"] = steering(w.ns["HA"])
        finally:
            ctl.close()
    out["elapsed_s"] = round(time.perf_counter() - t_start, 2)
    (report / "crosslayer-report.json").write_text(json.dumps(out, indent=2, default=str))
    return out


def run_cli(report: Path) -> int:
    try:
        out = run(report)
    except LabError as exc:
        print(f"crosslayer lab failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"lab": "crosslayer", "programmed_ms": out["programmed_ms"],
                      "otn_up_ms": out["otn_up"]["provisioned_and_read_back_ms"],
                      "sent": out["traffic"]["sent"], "lost": out["traffic"]["lost"],
                      "routes_removed_ms": out["routes_removed_ms"],
                      "otn_released_ms": out["otn_released_ms"],
                      "report": str(report / "crosslayer-report.json")}))
    return 0
