"""``cpn lab intents``: SR policy intents programmed, verified and kept on a namespace
backbone (issue 13, GBA-6.4.3c) — with a measured report.

What runs (all real): 10 routers in namespaces with kernel SRv6 (8 core + the MEC-1 /
MEC-2 gateways), a camera host behind BJ, a host behind each MEC gateway; the
controller in this process (REST on 127.0.0.1, the NETCONF SSH server, the intent
reconciler programming every router over netlink). The scenario:

1. an operator creates ``BJ~100~M1`` over REST and ``BJ~200~M2`` over NETCONF
   (ncclient edit-config + commit);
2. both become ``verified``: a scapy probe through each policy is captured at the egress
   with the computed segment list; a trace captures it at every hop;
3. a 1 kHz sequence-numbered UDP stream runs camera → MEC-1 while the first link of the
   intent's path is cut (its far end goes down: carrier loss at BJ) — the pre-installed
   backup carries the traffic at the next packet, the link watcher writes the link down,
   the reconciler re-plans; lost frames, the longest gap and the time to the new status
   are measured;
4. the policy route is deleted by hand at BJ; the reconciler's read-back restores it
   (time to repair, ``cpn_srv6_intent_repairs_total``);
5. the controller is restarted on the same state under a stream: no frame may be lost
   and its first pass must change nothing (SIDs persisted, planning deterministic);
6. the report (JSON + text) goes to ``report/``.

A kernel without seg6 lwtunnel (``CONFIG_IPV6_SEG6_LWTUNNEL``) cannot run it: the lab
says so and stops before building anything.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from labs.intents.backbone import Wired, build, config, cut, mend, national, srv6_supported
from labs.netns import Lab, LabError, free_port, wait_for

OP = "op-token-intents-lab-0123"
STREAM_PORT = 5100


class Controller:
    """The controller (REST + NETCONF + intent reconciler) in a thread of this process."""

    def __init__(self, work: Path, cfg: dict[str, Any]) -> None:
        import asyncssh

        from controller.auth import digest
        from controller.config import parse_config
        from controller.runtime import Runtime, Settings

        key = asyncssh.generate_private_key("ssh-ed25519")
        self.key = work / "operator.key"
        key.write_private_key(str(self.key))
        self.nc_port, self.api_port = free_port(), free_port()
        cfg = dict(cfg)
        cfg["netconf"] = {"listen": f"127.0.0.1:{self.nc_port}", "users": [
            {"name": "noc", "role": "operator",
             "authorized_key": key.export_public_key().decode().strip()}]}
        text = yaml.safe_dump(cfg)
        (work / "cpn.yaml").write_text(text)
        self.rt = Runtime(parse_config(text, "intents-lab.yaml"),
                          Settings(api=("127.0.0.1", self.api_port),
                                   dns=("127.0.0.1", free_port()), state=work / "state"))
        self.rt.apply_config()
        if self.rt.store.find_token(digest(OP)) is None:  # a restart keeps the store
            self.rt.store.add_token(digest(OP), "noc", "operator", None)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise LabError(f"controller did not start: {self._error}")

    def _run(self) -> None:
        from controller.wiring import build as components

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.rt.start(components(self.rt))
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                raise
            self._ready.set()
            await self._stop.wait()
            await self.rt.stop()

        asyncio.run(main())

    @property
    def reconciler(self) -> Any:
        return self.rt.settings.extra["srv6-intents"]

    def rest(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, f"http://127.0.0.1:{self.api_port}{path}",
                          headers={"Authorization": f"Bearer {OP}"}, timeout=30, **kw)
        if r.status_code >= 400:
            raise LabError(f"{method} {path}: {r.status_code} {r.text}")
        return r.json() if r.text else None

    def status(self, key: str) -> dict[str, Any]:
        return dict(self.rest("GET", f"/api/v1/srv6/intents/{key}")["status"])

    def netconf_intent(self, headend: str, color: int, endpoint: str) -> float:
        from ncclient import manager

        nc = "urn:ietf:params:xml:ns:netconf:base:1.0"
        body = (f'<config xmlns="{nc}"><cpn xmlns="urn:cpn:yang:cpn"><sr-policy-intents>'
                f"<intent><headend>{headend}</headend><color>{color}</color>"
                f"<endpoint>{endpoint}</endpoint></intent></sr-policy-intents></cpn>"
                "</config>")
        with manager.connect(host="127.0.0.1", port=self.nc_port, username="noc",
                             key_filename=str(self.key), hostkey_verify=False,
                             allow_agent=False, look_for_keys=False, timeout=20) as m:
            t0 = time.perf_counter()
            m.edit_config(target="candidate", config=body)
            m.commit()
            return time.perf_counter() - t0

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        self.rt.store.close()


def _wait_state(ctl: Controller, key: str, states: set[str], timeout: float) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        st = ctl.status(key)
        return st if st.get("state") in states else None
    try:
        got: dict[str, Any] = wait_for(ok, timeout, f"intent {key} to be {'/'.join(states)}")
    except LabError:
        raise LabError(f"intent {key} is {ctl.status(key)}") from None
    return got


def _args(*args: str) -> list[str]:
    return [sys.executable, "-m", "labs.traffic", *args]


def _stream_with_cut(w: Wired, ctl: Controller, key: str, link_key: str, a: str, b: str,
                     rate: int, seconds: float, cut_at: float) -> dict[str, Any]:
    """Camera → MEC-1 at ``rate`` Hz for ``seconds``; the link a–b is cut at
    ``cut_at`` s. Returns the receiver's accounting and the controller's timings."""
    count = int(rate * seconds)
    host = w.hosts[key.split("~")[2]]
    recv = host.popen(_args("recv", str(STREAM_PORT), "--count", str(count), "--idle", "2"),
                      name="stream receiver", stdout=subprocess.PIPE)
    time.sleep(0.3)
    dst = next(iter(ctl.status(key)["prefixes"])).rsplit(".", 1)[0] + ".2"
    send = w.clients["BJ"].popen(_args("send", dst, str(STREAM_PORT), "--rate", str(rate),
                                       "--count", str(count)),
                                 name="stream sender", stdout=subprocess.PIPE)
    before = ctl.status(key)
    seen: dict[str, float] = {}

    def on_commit(changes: list[Any]) -> None:  # controller-side times, in its threads
        now = time.perf_counter()
        for ch in changes:
            v = ch.value
            if ch.kind == "link" and ch.key == link_key and v is not None and \
                    str(v.state) == "down":
                seen.setdefault("down", now)
            if ch.kind == "sr-policy-intent-status" and ch.key == key and v is not None \
                    and v.active is not None and v.active.hops != before["active"]["hops"] \
                    and str(v.state) in ("programmed", "verified"):
                seen.setdefault("new", now)
    unsub = ctl.rt.store.subscribe(on_commit)
    time.sleep(cut_at)
    t_cut = time.perf_counter()
    cut(w, a, b)
    try:
        wait_for(lambda: "new" in seen, 10, f"{key} re-pathed after the cut of {link_key}")
    except LabError:
        pass  # reported as None below
    finally:
        unsub()
    t_down, t_new = seen.get("down"), seen.get("new")
    after = ctl.status(key)
    s_out, _ = send.communicate(timeout=seconds + 20)
    r_out, _ = recv.communicate(timeout=seconds + 20)
    sent = json.loads(s_out.decode().strip().splitlines()[-1])
    got = json.loads(r_out.decode().strip().splitlines()[-1])
    return {"rate_hz": rate, "sent": sent.get("sent", count), "receiver": got,
            "cut_link": link_key, "path_before": before["active"]["hops"],
            "path_after": after["active"]["hops"] if after.get("active") else None,
            "backup_before": (before.get("backup") or {}).get("hops"),
            "link_down_written_ms": round((t_down - t_cut) * 1e3, 1) if t_down else None,
            "repathed_status_ms": round((t_new - t_cut) * 1e3, 1) if t_new else None,
            "replan_ms": round((t_new - t_down) * 1e3, 1) if t_new and t_down else None,
            "state_after": after["state"]}


def _repair(w: Wired, ctl: Controller, key: str) -> dict[str, Any]:
    from srv6.dataplane.netlink import NetlinkProgrammer

    prefix = ctl.status(key)["prefixes"][0]
    bj = w.ns["BJ"]
    prog = NetlinkProgrammer("BJ", netns=bj.name)
    try:
        want = [r for r in prog.read_actual() if getattr(r, "dst", None) == prefix
                and not getattr(r, "backup", False)]
        before = ctl.reconciler.repairs_total
        t0 = time.perf_counter()
        res = bj.run(["ip", "route", "del", prefix, "proto", "200"], check=False)
        if res.returncode != 0:
            raise LabError(f"could not delete {prefix} at BJ: {res.stderr.strip()}")

        def back() -> bool:
            return [r for r in prog.read_actual() if getattr(r, "dst", None) == prefix
                    and not getattr(r, "backup", False)] == want
        wait_for(back, 10, f"{prefix} restored at BJ", interval=0.005)
        t = time.perf_counter() - t0
    finally:
        prog.close()
    metrics = httpx.get(f"http://127.0.0.1:{ctl.api_port}/metrics").text
    line = next((ln for ln in metrics.splitlines()
                 if ln.startswith("cpn_srv6_intent_repairs_total ")), "")
    return {"deleted": f"{prefix} (proto 200) at BJ", "restored_ms": round(t * 1e3, 1),
            "repairs_counted": ctl.reconciler.repairs_total - before,
            "metrics_line": line}


def _restart(w: Wired, ctl: Controller, work: Path, cfg: dict[str, Any], key: str,
             rate: int) -> tuple[Controller, dict[str, Any]]:
    """Stop the controller and start a new one on the same state under a stream: the
    working paths must stay (no frame lost) and its first pass must change nothing."""
    host = w.hosts[key.split("~")[2]]
    dst = ctl.status(key)["prefixes"][0].rsplit(".", 1)[0] + ".2"
    count = rate * 3
    recv = host.popen(_args("recv", str(STREAM_PORT + 1), "--count", str(count), "--idle",
                            "2"), name="restart receiver", stdout=subprocess.PIPE)
    time.sleep(0.3)
    send = w.clients["BJ"].popen(_args("send", dst, str(STREAM_PORT + 1), "--rate",
                                       str(rate), "--count", str(count)),
                                 name="restart sender", stdout=subprocess.PIPE)
    time.sleep(0.5)
    t0 = time.perf_counter()
    ctl.close()
    new = Controller(work, cfg)
    first = new.reconciler.first
    took = time.perf_counter() - t0
    send.communicate(timeout=30)
    r_out, _ = recv.communicate(timeout=30)
    got = json.loads(r_out.decode().strip().splitlines()[-1])
    return new, {"restart_s": round(took, 2), "first_pass_ops": first.ops if first else None,
                 "stream": {"sent": count, "received": got.get("received"),
                            "lost": got.get("lost")},
                 "state_after": new.status(key)["state"]}


def run(report: Path, rate: int = 1000, seconds: float = 4.0) -> dict[str, Any]:
    if not srv6_supported():
        raise LabError("this kernel has no seg6 lwtunnel (CONFIG_IPV6_SEG6_LWTUNNEL is not "
                       "set): SRv6 routes cannot be programmed here. Run the lab on a "
                       "kernel with IPv6 segment routing.")
    report.mkdir(parents=True, exist_ok=True)
    bb = national()
    out: dict[str, Any] = {"lab": "intents", "routers": len(bb.routers),
                           "links": len(bb.links), "sites": sorted(bb.sites)}
    t_start = time.perf_counter()
    with Lab("intn", workdir=report) as lab:
        w = build(lab, bb)
        cfg = config(bb, "netlink", {r: n.name for r, n in w.ns.items()}, readback_s=0.5)
        ctl = Controller(report, cfg)
        try:
            out["built_s"] = round(time.perf_counter() - t_start, 2)
            t0 = time.perf_counter()
            ctl.rest("POST", "/api/v1/srv6/intents",
                     json={"headend": "BJ", "endpoint": "M1", "color": 100})
            rest = _wait_state(ctl, "BJ~100~M1", {"verified"}, 20)
            out["rest_intent"] = {"key": "BJ~100~M1", "verified_s":
                                  round(time.perf_counter() - t0, 3), "status": rest}
            t0 = time.perf_counter()
            commit_s = ctl.netconf_intent("BJ", 200, "M2")
            nc = _wait_state(ctl, "BJ~200~M2", {"verified"}, 20)
            out["netconf_intent"] = {"key": "BJ~200~M2", "commit_s": round(commit_s, 3),
                                     "verified_s": round(time.perf_counter() - t0, 3),
                                     "status": nc}
            traced = ctl.rest("POST", "/api/v1/srv6/intents-probe/BJ~100~M1",
                              params={"trace": "true"})
            out["capture"] = {"egress_segments": traced["egress"]["segments"]
                              if traced["egress"] else None,
                              "computed_segments": rest["active"]["segments"],
                              "equal": traced["ok"], "hops": traced["hops"]}
            first = rest["active"]["hops"][:2]
            out["cut"] = _stream_with_cut(w, ctl, "BJ~100~M1", rest["active"]["links"][0],
                                          first[0], first[1], rate, seconds,
                                          cut_at=seconds / 3)
            mend(w, first[0], first[1])
            out["repair"] = _repair(w, ctl, "BJ~100~M1")
            ctl, out["restart"] = _restart(w, ctl, report, cfg, "BJ~100~M1", rate)
            out["final"] = {k: ctl.status(k)["state"] for k in ("BJ~100~M1", "BJ~200~M2")}
        finally:
            ctl.close()
    out["elapsed_s"] = round(time.perf_counter() - t_start, 2)
    (report / "intents-report.json").write_text(json.dumps(out, indent=2, default=str))
    text = render(out)
    (report / "intents-report.txt").write_text(text)
    return out


def render(r: dict[str, Any]) -> str:
    c, rep, cap = r["cut"], r["repair"], r["capture"]
    g = c["receiver"]
    lines = [
        f"intents lab: {r['routers']} routers, {r['links']} links, sites "
        f"{', '.join(r['sites'])} (built in {r['built_s']} s, total {r['elapsed_s']} s)",
        f"REST     BJ~100~M1 verified in {r['rest_intent']['verified_s']} s: "
        f"{' -> '.join(r['rest_intent']['status']['active']['hops'])}",
        f"NETCONF  BJ~200~M2 committed in {r['netconf_intent']['commit_s']} s, verified in "
        f"{r['netconf_intent']['verified_s']} s: "
        f"{' -> '.join(r['netconf_intent']['status']['active']['hops'])}",
        f"capture  egress SRH {cap['egress_segments']} == computed: {cap['equal']} "
        f"(seen at {', '.join(h['node'] for h in cap['hops'])})",
        f"cut      {c['cut_link']} under {c['rate_hz']} Hz: sent {c['sent']}, received "
        f"{g.get('received')}, lost {g.get('lost')}, reordered {g.get('reordered')}, max gap "
        f"{g.get('max_gap_ms')} ms; link down in store {c['link_down_written_ms']} ms after "
        f"the cut, new path programmed + read back {c['replan_ms']} ms later: "
        f"{' -> '.join(c['path_after'] or [])} (backup was "
        f"{' -> '.join(c['backup_before'] or [])})",
        f"repair   {rep['deleted']} restored in {rep['restored_ms']} ms; repairs counted "
        f"{rep['repairs_counted']} ({rep['metrics_line']})",
        f"restart  controller restarted in {r['restart']['restart_s']} s under a "
        f"{rate_of(r)} Hz stream: lost {r['restart']['stream']['lost']}, first pass "
        f"changed {r['restart']['first_pass_ops']} routes",
        f"final    {r['final']}",
    ]
    return "\n".join(lines) + "\n"


def rate_of(r: dict[str, Any]) -> int:
    return int(r["cut"]["rate_hz"])


def run_cli(report: Path, rate: int, seconds: float) -> int:
    try:
        out = run(report, rate, seconds)
    except LabError as exc:
        print(f"intents lab failed: {exc}", file=sys.stderr)
        return 1
    print(render(out), end="")
    print(json.dumps({"lab": "intents", "lost": out["cut"]["receiver"].get("lost"),
                      "capture_equal": out["capture"]["equal"],
                      "repaired_ms": out["repair"]["restored_ms"]}))
    return 0
