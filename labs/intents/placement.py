"""``cpn lab placement``: a placement becomes a programmed path and a DNS answer, and
both follow it when it moves and when it ends (issue 14 item 3, GBA-6.4.3c, GBA-6.5h).

What runs (all real): the national backbone of ``cpn lab intents`` (8 core routers and
the MEC-1 / MEC-2 gateways in namespaces, kernel SRv6 — seg6 lwtunnels or the eBPF
dataplane), a camera host behind BJ and a host behind each MEC gateway that owns the
``video`` service's instance (MEC-1 10.1.3.2, MEC-2 10.2.3.2, both in the gateways'
colour-300 prefixes); the controller in this process (REST, the embedded DNS
responder, the scheduler with the joint placement, the placement-intents component
and the intent reconciler programming every router over netlink). There is no IPv4
route from BJ to the MEC prefixes other than an SR policy: a datagram that arrives went
through the programmed path. The scenario:

1. the DNS answer for ``video.svc`` asked from the camera's subnet (ECS 10.0.0.0/24,
   dnspython) before anything is placed: the ranking's;
2. a flow ``cam-1`` (service ``video``, origin BJ, 20 Mbit/s, ≤ 12 ms) is submitted
   through ``POST /api/v1/scheduler/placement``; the joint placement puts it at a MEC;
   its decision becomes the intent ``place:flow:cam-1`` (``BJ~300~<gateway>``), the
   reconciler programs it: the route at BJ is read back from the kernel with the
   status's segments, a scapy probe through it is captured at the egress with the same
   SRH, a UDP stream from the camera to the answered address is received at the MEC, and
   the DNS answer (and ``cam-1.flow.place``) names the placed instance;
3. the flow moves (``allowed_sites`` = the other MEC): new path programmed, the old
   route gone from BJ, the answer moves, the stream arrives at the other MEC;
4. the flow ends (``DELETE /api/v1/scheduler/placement/cam-1``): the intent is released,
   the route removed from BJ, traffic to the last address no longer arrives, the answer
   is the ranking's again and ``cam-1.flow.place`` is NXDOMAIN;
5. bad input: a flow whose delay bound no site meets is refused by the placement with
   ``delay-bound`` per site; nothing is programmed and no answer moves;
6. the report (JSON + text) goes to ``report/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from labs.intents.backbone import Backbone, Wired, build, config, national, srv6_supported
from labs.intents.scenario import Controller
from labs.netns import Lab, LabError, wait_for
from labs.srv6lab import kernel_steering_route

COLOR = 300
SERVICE = "video"
CLIENT_SUBNET = "10.0.0.0/24"
INSTANCES = {"MEC-1": "10.1.3.2", "MEC-2": "10.2.3.2"}
PORT = 5300


def backbone() -> Backbone:
    """``national()`` with a colour-300 prefix at each MEC gateway (placements' colour)."""
    bb = national()
    bb.endpoints["M1"]["10.1.3.0/24"] = COLOR
    bb.endpoints["M2"]["10.2.3.0/24"] = COLOR
    return bb


def lab_config(bb: Backbone, netns: dict[str, str]) -> dict[str, Any]:
    cfg = config(bb, "netlink", netns, readback_s=0.5, placement_color=COLOR)
    for s in cfg["sites"]:
        short = s["name"].lower().replace("-", "")
        s["nodes"] = [{"name": f"{short}-srv", "resources": [
            {"name": f"{short}-cpu", "description": "edge cores", "type": "cpu",
             "value": 8, "unit": "cores"}]}]
    cfg["services"] = [{"name": SERVICE, "anycast": ["198.51.100.10"], "port": PORT,
                        "protocol": "udp",
                        "instances": [{"site": s, "address": a}
                                      for s, a in INSTANCES.items()]}]
    cfg["dns"] = {"ttl_s": 1, "client_subnets": [{"prefix": CLIENT_SUBNET, "node": "BJ"}]}
    return cfg


def resolve(port: int, name: str, subnet: str | None = CLIENT_SUBNET) -> dict[str, Any]:
    """Ask the embedded responder (UDP, dnspython) with an ECS option for ``subnet``."""
    import dns.edns
    import dns.message
    import dns.query
    import dns.rcode

    opts: list[dns.edns.Option] = []
    if subnet:
        addr, plen = subnet.split("/")
        opts = [dns.edns.ECSOption(addr, int(plen))]
    q = dns.message.make_query(name, "A", use_edns=0, options=opts)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
    addrs = sorted(rd.address for rrset in r.answer for rd in rrset
                   if rrset.rdtype == dns.rdatatype.A)
    return {"name": name, "rcode": dns.rcode.to_text(r.rcode()), "a": addrs}


def _route_at(w: Wired, node: str, prefix: str) -> dict[str, Any] | None:
    """The CPN-owned steering route for ``prefix`` read back from ``node``'s kernel."""
    return kernel_steering_route(node, w.ns[node].name, prefix)


def _routes_at(w: Wired, node: str) -> list[str]:
    """Every CPN-owned route at ``node`` (steering prefixes and SIDs), read back."""
    from srv6.dataplane.netlink import NetlinkProgrammer

    prog = NetlinkProgrammer(node, netns=w.ns[node].name)
    try:
        return sorted(str(getattr(r, "dst", None) or getattr(r, "sid", None))
                      for r in prog.read_actual())
    finally:
        prog.close()


def _stream(w: Wired, host: str, dst: str, port: int, count: int = 200,
            rate: int = 500) -> dict[str, Any]:
    """``count`` datagrams camera → ``dst``; what the host behind ``host`` received."""
    args = [sys.executable, "-m", "labs.traffic"]
    recv = w.hosts[host].popen([*args, "recv", str(port), "--count", str(count), "--idle",
                                "1"], name="placement receiver", stdout=subprocess.PIPE)
    time.sleep(0.3)
    send = w.clients["BJ"].popen([*args, "send", dst, str(port), "--rate", str(rate),
                                  "--count", str(count)], name="placement sender",
                                 stdout=subprocess.PIPE)
    send.communicate(timeout=30)
    try:
        r_out, _ = recv.communicate(timeout=3 + count / rate)
    except subprocess.TimeoutExpired:  # nothing arrived: the receiver waits for a first
        recv.terminate()  # datagram; SIGTERM makes it print its (empty) accounting
        r_out, _ = recv.communicate(timeout=10)
    got = json.loads(r_out.decode().strip().splitlines()[-1])
    return {"dst": dst, "at": host, "sent": count, "received": got.get("received", 0),
            "lost": got.get("lost")}


class Scenario:
    """The controller, the wired lab and the helpers the steps share."""

    def __init__(self, w: Wired, ctl: Controller) -> None:
        self.w, self.ctl = w, ctl
        self.dns_port = ctl.rt.settings.dns[1]
        self.gw = {s: r for s, r in backbone().sites.items()}

    def answer(self) -> dict[str, Any]:
        return {"service": resolve(self.dns_port, f"{SERVICE}.svc.cpn.example"),
                "placement_name": resolve(self.dns_port, "cam-1.flow.place.cpn.example",
                                          None)}

    def wait_answer(self, want: list[str] | None, timeout: float = 10) -> dict[str, Any]:
        def ok() -> dict[str, Any] | None:
            got = self.answer()
            svc, name = got["service"]["a"], got["placement_name"]
            if want is None:
                return got if name["rcode"] == "NXDOMAIN" else None
            return got if svc == want and name["a"] == want else None
        try:
            found: dict[str, Any] = wait_for(ok, timeout, f"DNS answer {want}")
        except LabError:
            raise LabError(f"DNS answer is {self.answer()}, expected {want}") from None
        return found

    def wait_answer_ready(self) -> dict[str, Any]:
        """The first answer once the responder serves the zone (ranking: nothing placed)."""
        def ok() -> dict[str, Any] | None:
            try:
                got = self.answer()
            except Exception:  # the responder is still starting
                return None
            return got if got["service"]["a"] else None
        found: dict[str, Any] = wait_for(ok, 10, "the DNS responder to answer")
        return found

    def infeasible(self) -> dict[str, Any]:
        """A flow no site can take within its delay bound: refused per site with
        ``delay-bound``, nothing programmed, the answer unchanged."""
        before = _routes_at(self.w, "BJ")
        plan = self.place(id="cam-9", max_delay_ms=0.5)
        time.sleep(1.0)  # give the placement-intents component and the reconciler a pass
        dec = self.decision("flow:cam-9")
        intents = [i["name"] for i in self.ctl.rest("GET", "/api/v1/srv6/intents")["items"]
                   if i["name"].startswith("place:")]
        ans = self.answer()
        self.ctl.rest("DELETE", "/api/v1/scheduler/placement/cam-9")
        return {"unplaced": plan["unplaced"], "code": dec["code"], "intent": dec["intent"],
                "not_chosen": [(c["site"], c["constraint"], c["reason"])
                               for c in dec["candidates"]],
                "place_intents": intents, "dns_after": ans["service"]["a"],
                "routes_at_BJ_unchanged": _routes_at(self.w, "BJ") == before}

    def place(self, **flow: Any) -> dict[str, Any]:
        body = {"id": "cam-1", "origin": "BJ", "service": SERVICE, "cpu": 1,
                "bandwidth_mbps": 20, "max_delay_ms": 12, **flow}
        out: dict[str, Any] = self.ctl.rest("POST", "/api/v1/scheduler/placement",
                                            json={"flows": [body]})
        return out

    def decision(self, key: str = "flow:cam-1") -> dict[str, Any]:
        got: dict[str, Any] = self.ctl.rest("GET", f"/api/v1/scheduler/decisions/{key}")
        return got

    def programmed(self, site: str, t0: float) -> dict[str, Any]:
        """Wait until the placement at ``site`` is a verified path; read it back."""
        key = f"BJ~{COLOR}~{self.gw[site]}"

        def ready() -> dict[str, Any] | None:
            d = self.decision()
            net = d.get("network") or {}
            if net.get("state") == "failed":
                raise LabError(f"placement at {site} failed: {net}")
            if d.get("intent") == key and net.get("state") == "verified":
                return d
            return None
        dec = wait_for(ready, 25, f"place:flow:cam-1 verified as {key}")
        took = time.perf_counter() - t0
        st = self.ctl.status(key)
        prefix = f"{INSTANCES[site].rsplit('.', 1)[0]}.0/24"
        kernel = _route_at(self.w, "BJ", prefix)
        probe = self.ctl.rest("POST", f"/api/v1/srv6/intents-probe/{key}")
        return {"intent": key, "intent_name": f"place:{dec['subject_kind']}:cam-1",
                "decision_network": dec["network"], "state": st["state"],
                "hops": st["active"]["hops"], "segments": st["active"]["segments"],
                "delay_ms": st["active"]["delay_ms"], "verified_s": round(took, 3),
                "kernel_route_at_BJ": kernel,
                "kernel_equals_status": kernel is not None and kernel["segments"] ==
                st["active"]["segments"],
                "probe_egress_segments": (probe.get("egress") or {}).get("segments"),
                "probe_ok": probe.get("ok")}


def run(report: Path) -> dict[str, Any]:
    if not srv6_supported():
        raise LabError("this kernel cannot program SRv6 (no seg6 lwtunnel and no eBPF "
                       "lwt support): run the lab on a kernel with IPv6 segment routing")
    report.mkdir(parents=True, exist_ok=True)
    # a fresh controller state each run: decisions of an earlier run must not leak in
    shutil.rmtree(report / "state", ignore_errors=True)
    bb = backbone()
    out: dict[str, Any] = {"lab": "placement", "routers": len(bb.routers),
                           "service": SERVICE, "instances": INSTANCES,
                           "client_subnet": CLIENT_SUBNET}
    t_start = time.perf_counter()
    with Lab("plce", workdir=report) as lab:
        w = build(lab, bb)
        ctl = Controller(report, lab_config(bb, {r: n.name for r, n in w.ns.items()}))
        try:
            s = Scenario(w, ctl)
            out["built_s"] = round(time.perf_counter() - t_start, 2)
            before = s.wait_answer_ready()
            out["before"] = before
            ranking = before["service"]["a"]
            # 2. placed where the joint placement chooses
            t0 = time.perf_counter()
            plan = s.place()
            first = plan["assign"]["cam-1"]["site"]
            placed = s.programmed(first, t0)
            placed["site"] = first
            placed["dns"] = s.wait_answer([INSTANCES[first]])
            placed["dns_s"] = round(time.perf_counter() - t0, 3)
            placed["stream"] = _stream(w, s.gw[first], INSTANCES[first], PORT)
            out["placed"] = placed
            # 3. moved to the other MEC
            other = next(x for x in INSTANCES if x != first)
            t0 = time.perf_counter()
            plan = s.place(allowed_sites=[other])
            if plan["assign"]["cam-1"] is None or plan["assign"]["cam-1"]["site"] != other:
                raise LabError(f"the flow did not move to {other}: {plan['assign']}")
            moved = s.programmed(other, t0)
            moved["site"] = other
            moved["dns"] = s.wait_answer([INSTANCES[other]])
            moved["dns_s"] = round(time.perf_counter() - t0, 3)
            old_prefix = f"{INSTANCES[first].rsplit('.', 1)[0]}.0/24"
            moved["old_route_at_BJ"] = _route_at(w, "BJ", old_prefix)
            moved["stream"] = _stream(w, s.gw[other], INSTANCES[other], PORT + 1)
            out["moved"] = moved
            # 4. the flow ends
            t0 = time.perf_counter()
            rel = ctl.rest("DELETE", "/api/v1/scheduler/placement/cam-1")
            prefix = f"{INSTANCES[other].rsplit('.', 1)[0]}.0/24"
            wait_for(lambda: _route_at(w, "BJ", prefix) is None, 15,
                     f"{prefix} removed from BJ")
            released: dict[str, Any] = {"response": rel,
                                        "route_removed_s": round(time.perf_counter() - t0, 3)}
            released["dns"] = s.wait_answer(None)
            released["dns_equals_ranking"] = released["dns"]["service"]["a"] == ranking
            released["intents_left"] = [i["name"] for i in ctl.rest(
                "GET", "/api/v1/srv6/intents")["items"] if i["name"].startswith("place:")]
            released["stream"] = _stream(w, s.gw[other], INSTANCES[other], PORT + 2)
            out["released"] = released
            # 5. bad input: no site within the delay bound
            out["infeasible"] = s.infeasible()
        finally:
            ctl.close()
    out["elapsed_s"] = round(time.perf_counter() - t_start, 2)
    (report / "placement-report.json").write_text(json.dumps(out, indent=2, default=str))
    (report / "placement-report.txt").write_text(render(out))
    return out


def render(r: dict[str, Any]) -> str:
    p, m, rel, bad = r["placed"], r["moved"], r["released"], r["infeasible"]

    def path(x: dict[str, Any]) -> str:
        return (f"{x['intent']} {x['state']}: {' -> '.join(x['hops'])} "
                f"[{', '.join(x['segments'])}] {x['delay_ms']:g} ms; kernel route at BJ "
                f"{'== status' if x['kernel_equals_status'] else '!= status'}, probe SRH "
                f"at egress {x['probe_egress_segments']}")
    lines = [
        f"placement lab: {r['routers']} routers (built in {r['built_s']} s, total "
        f"{r['elapsed_s']} s); service {r['service']} at {r['instances']}",
        f"before   {r['service']}.svc from {r['client_subnet']}: "
        f"{r['before']['service']['a']} (ranking)",
        f"placed   cam-1 -> {p['site']} in {p['verified_s']} s: {path(p)}",
        f"         DNS {p['dns']['service']['a']} (cam-1.flow.place "
        f"{p['dns']['placement_name']['a']}); stream {p['stream']['received']}/"
        f"{p['stream']['sent']} received at {p['stream']['at']}",
        f"moved    cam-1 -> {m['site']} in {m['verified_s']} s: {path(m)}",
        f"         old route at BJ: {m['old_route_at_BJ']}; DNS {m['dns']['service']['a']}; "
        f"stream {m['stream']['received']}/{m['stream']['sent']} received at "
        f"{m['stream']['at']}",
        f"released route removed from BJ in {rel['route_removed_s']} s; place: intents left "
        f"{rel['intents_left']}; DNS {rel['dns']['service']['a']} (ranking again: "
        f"{rel['dns_equals_ranking']}), cam-1.flow.place "
        f"{rel['dns']['placement_name']['rcode']}; stream to the old address "
        f"{rel['stream']['received']}/{rel['stream']['sent']} received",
        f"bad      cam-9 max_delay_ms 0.5: {bad['code']}, unplaced {bad['unplaced']}, "
        f"intent {bad['intent']}; "
        + "; ".join(f"{s} {c}" for s, c, _ in bad["not_chosen"]),
    ]
    return "\n".join(lines) + "\n"


def run_cli(report: Path) -> int:
    try:
        out = run(report)
    except LabError as exc:
        print(f"placement lab failed: {exc}", file=sys.stderr)
        return 1
    print(render(out), end="")
    print(json.dumps({"lab": "placement", "placed": out["placed"]["site"],
                      "moved": out["moved"]["site"],
                      "released_dns_is_ranking": out["released"]["dns_equals_ranking"]}))
    return 0
