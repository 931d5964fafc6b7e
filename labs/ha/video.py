"""``cpn lab ha-video``: a steered video flow loses no frame while the leader changes
(issue 16, GBA-App.B on a cluster of controllers).

What runs (all real): the security-video data plane in namespaces — ``cam ─ R1 ─ R2 ─
MEC-1`` and ``R1 ─ R3 ─ MEC-2``, kernel SRv6 on R1–R3 (seg6 lwtunnels or the eBPF
dataplane, whichever this kernel has), the service anycast 198.51.100.10 on both MECs;
a three-member etcd (Debian etcd-server) and three ``cpn run`` processes on it, each
with the ``flows:`` steering loop and the SR policy intent reconciler (both
leader-only) bound to R1–R3 over netlink.

Rules:
- The leader places the video flow (MEC-1, the nearer site) and programs it: the
  End.DX4 SID at R2, R1's steering route for the anycast. A camera stream (30 frames/s,
  1,200-byte sequence-numbered frames, ``labs.traffic``) runs cam → anycast; MEC-1 and
  MEC-2 both count what they receive.
- Under the stream the leader is killed (``kill -9``). Headless dataplane: the routes
  are read back from the routers while nobody leads and after the new leader took over
  (``ip route show table all proto 200`` in every router) — they must be identical.
  The new leader's first reconciler pass must change nothing (its own log line
  ``first intent pass after start``, and ``cpn_srv6_intent_ops_total`` on its
  ``/metrics``). Frames lost across the leader change: goal 0.
- Then the new leader steers: MEC-1's metrics are written overloaded (REST, any
  replica), the flow moves to MEC-2 make-before-break under a second stream; its route
  ops and the status it writes carry the new epoch in the journal. Frames lost: goal 0.
- Then the leader is cut off from etcd under a third stream (an nftables rule on the
  loopback address only that controller uses for etcd): it must stop acting before
  the last controller is elected (their own logs), the routes stay, the new leader's
  first pass changes nothing, no frame is lost. Skipped, and said, without ``nft``.
- Failover time: from the kill (or the cut) to a new leader (higher epoch) whose ``/healthz`` shows
  ``flows`` and ``srv6-intents`` running. Goal ≤ 3 s.
- Everything started is stopped by pid; namespaces and temp dirs go with the ``Lab``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from labs.etcd import EtcdCluster
from labs.ha.run import GOAL_FAILOVER_S, Controller, key_time, nft, wait_controllers
from labs.netns import Lab, LabError, Ns, free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "security-video-lab.yaml"
ANYCAST = "198.51.100.10"
PORT = 5004
FPS = 30.0
FRAME = 1200
LEADER_COMPONENTS = ("flows", "srv6-intents")
ROUTERS = ("R1", "R2", "R3")


def build(lab: Lab) -> dict[str, Ns]:
    """The security-video data plane (``labs/security_video/topology.py``'s addresses
    and interface names) on plain namespaces: no access switch, no management net."""
    ns = {n: lab.ns(n) for n in ("cam", *ROUTERS, "mec1", "mec2")}
    lab.link(ns["cam"], ns["R1"], "eth0", "eth0", ["10.0.0.2/24"], ["10.0.0.1/24"])
    lab.link(ns["R1"], ns["R2"], "eth1", "eth0", ["fc00:12::1/64"], ["fc00:12::2/64"])
    lab.link(ns["R1"], ns["R3"], "eth2", "eth0", ["fc00:13::1/64"], ["fc00:13::3/64"])
    lab.link(ns["R2"], ns["mec1"], "eth1", "eth0", ["10.0.1.1/24"], ["10.0.1.10/24"])
    lab.link(ns["R3"], ns["mec2"], "eth1", "eth0", ["10.0.2.1/24"], ["10.0.2.10/24"])
    for r in ROUTERS:
        ns[r].enable_forwarding(srv6=True)
    for n in ns.values():
        n.sysctl("net.ipv4.conf.all.rp_filter", 0)
        n.sysctl("net.ipv4.conf.default.rp_filter", 0)
    ns["cam"].run("ip route add default via 10.0.0.1 dev eth0")
    for mec, gw in (("mec1", "10.0.1.1"), ("mec2", "10.0.2.1")):
        ns[mec].run(f"ip addr add {ANYCAST}/32 dev lo")
        ns[mec].run(f"ip route add default via {gw} dev eth0")
    ns["R1"].run("ip -6 route add fc00:0:2::/48 via fc00:12::2 dev eth1")
    ns["R1"].run("ip -6 route add fc00:0:3::/48 via fc00:13::3 dev eth2")
    ns["R2"].run("ip -6 route add fc00:0:1::/48 via fc00:12::1 dev eth0")
    ns["R3"].run("ip -6 route add fc00:0:1::/48 via fc00:13::1 dev eth0")
    for r in ROUTERS:  # seg6_enabled is per ingress interface (and "all")
        for dev in ns[r].run("ls /sys/class/net").stdout.split():
            ns[r].sysctl(f"net.ipv6.conf.{dev}.seg6_enabled", 1)
    return ns


def routes(ns: dict[str, Ns]) -> dict[str, list[str]]:
    """Every CPN-owned route of every router, as the kernel prints it (read-back)."""
    out: dict[str, list[str]] = {}
    for r in ROUTERS:
        lines: list[str] = []
        for fam in ("-4", "-6"):
            res = ns[r].run(["ip", fam, "route", "show", "table", "all", "proto", "200"],
                            check=False)
            lines += [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
        out[r] = sorted(lines)
    return out


def via(route_text: list[str]) -> str | None:
    """Which egress R1's anycast route encapsulates to: R2 / R3 (by locator)."""
    for ln in route_text:
        if ln.startswith(ANYCAST):
            m = re.search(r"fc00:0:([23]):", ln)
            return f"R{m.group(1)}" if m else ln
    return None


class Stream:
    """cam → anycast at ``FPS``; both MECs count frames (SIGTERM prints the summary)."""

    def __init__(self, ns: dict[str, Ns], seconds: float) -> None:
        self.count = int(FPS * seconds)
        self.recv = {m: ns[m].popen([sys.executable, "-m", "labs.traffic", "recv", str(PORT),
                                     "--idle", "600"], name=f"{m} receiver",
                                    stdout=subprocess.PIPE)
                     for m in ("mec1", "mec2")}
        for m, p in self.recv.items():  # a frame sent before the bind would be lost
            assert p.stdout is not None
            ready, _, _ = select.select([p.stdout], [], [], 15.0)
            line = p.stdout.readline() if ready else b""
            if b"listening" not in line:
                raise LabError(f"the {m} receiver did not start listening: {line!r}")
        self.send = ns["cam"].popen([sys.executable, "-m", "labs.traffic", "send", ANYCAST,
                                     str(PORT), "--rate", str(FPS), "--count",
                                     str(self.count), "--size", str(FRAME)],
                                    name="camera", stdout=subprocess.PIPE)
        self.t0 = time.monotonic()

    def finish(self) -> dict[str, Any]:
        s_out, _ = self.send.communicate(timeout=self.count / FPS + 60)
        time.sleep(0.5)  # the last frames in flight
        got: dict[str, Any] = {}
        for m, p in self.recv.items():
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=10)
            got[m] = json.loads(out.decode().strip().splitlines()[-1])
        sent = json.loads(s_out.decode().strip().splitlines()[-1])
        unique = sum(int(g["unique"]) for g in got.values())
        seen = [got[m] for m in ("mec1", "mec2") if got[m]["unique"]]
        return {"frames_sent": sent["sent"], "send_errors": sent.get("send_errors", 0),
                "received": {m: g["unique"] for m, g in got.items()},
                "frames_lost": sent["sent"] - unique,
                "duplicates": sum(int(g["duplicates"]) for g in got.values()),
                "max_gap_ms": {m: g["max_gap_ms"] for m, g in got.items()},
                # where the losses were (first missing sequence numbers, per receiver)
                "first_missing": {m: g["first_missing"] for m, g in got.items()
                                  if g in seen}}


class VideoLab:
    def __init__(self, work: Path, lab: Lab) -> None:
        self.work = work
        self.lab = lab
        # each controller reaches etcd through its own loopback address, so one of them
        # can be cut off by an nftables rule without touching the others
        self.hosts = ("127.0.31.1", "127.0.32.1", "127.0.33.1")
        self.etcd = EtcdCluster(3, client_hosts=self.hosts, root=work / "etcd")
        self.prefix = f"/hav-{os.getpid()}"
        self.token = f"cpn_lab_hav_{os.getpid()}_operator_token"
        self.ctls = [Controller(f"v{i}", h, free_port(), free_port(), work / f"v{i}")
                     for i, h in enumerate(self.hosts)]
        self.nft_table = f"cpnhav{os.getpid()}"
        self.config = work / "ha-video.yaml"
        self.http = httpx.Client(headers={"Authorization": f"Bearer {self.token}"})
        self.ns: dict[str, Ns] = {}

    def start(self) -> None:
        self.ns = build(self.lab)
        cfg = yaml.safe_load(CONFIG.read_text())
        cfg.pop("controller", None)
        cfg["auth"] = {"tokens": [{"name": "lab", "role": "operator", "token": self.token}]}
        for r in ROUTERS:
            cfg["intents"]["nodes"][r]["netns"] = self.ns[r].name
        self.config.write_text(yaml.safe_dump(cfg))
        self.etcd.start()
        for c in self.ctls:
            c.start(self.config, self.etcd.url(self.prefix, host=c.etcd_host))

    def cut(self, c: Controller) -> None:
        """Partition ``c`` from etcd (its own loopback address; the others keep theirs)."""
        ports = ", ".join(str(m.client_port) for m in self.etcd.members)
        nft(f"add table inet {self.nft_table}")
        nft(f"add chain inet {self.nft_table} out "
            "{ type filter hook output priority 0 ; policy accept ; }")
        nft(f"add rule inet {self.nft_table} out ip daddr {c.etcd_host} "
            f"tcp dport {{ {ports} }} drop")

    def heal(self) -> None:
        subprocess.run(["nft", "delete", "table", "inet", self.nft_table],
                       capture_output=True, timeout=5)

    def wait(self, pred: Any, timeout: float, what: str) -> Any:
        return wait_controllers(self.ctls, pred, timeout, what)

    def leader(self, timeout: float, newer_than: int = 0) -> tuple[Controller, int]:
        def find() -> tuple[Controller, int] | None:
            for c in self.ctls:
                h = c.health(self.http) if c.alive() else None
                cl = (h or {}).get("cluster") or {}
                running = set(cl.get("leader_components", []))
                if (cl.get("is_leader") and cl.get("acting") and cl["epoch"] > newer_than
                        and running.issuperset(LEADER_COMPONENTS)):
                    return c, int(cl["epoch"])
            return None
        found: tuple[Controller, int] = self.wait(find, timeout, "a leader running flows "
                                                  "and srv6-intents")
        return found

    def intent(self, c: Controller, endpoint: str) -> dict[str, Any] | None:
        """The programmed status of the video flow's intent towards ``endpoint``."""
        try:
            r = self.http.get(f"{c.base}/api/v1/srv6/intent-status", timeout=2.0)
            body = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        rows = body.get("items", []) if isinstance(body, dict) else body
        for st in rows:
            if (st.get("intent", "").endswith(f"~{endpoint}")
                    and st.get("state") in ("programmed", "verified")):
                return dict(st)
        return None

    def metric(self, c: Controller, name: str) -> float | None:
        try:
            text = self.http.get(f"{c.base}/metrics", timeout=2.0).text
        except httpx.HTTPError:
            return None
        for ln in text.splitlines():
            if ln.startswith(name + " "):
                return float(ln.split()[1])
        return None

    def overload(self, c: Controller, site: str) -> None:
        body = {"site": site, "service": "video", "l2": 1.0, "overloaded": True,
                "source": "lab", "l1": {"cpu_pct": 95.0}}
        r = self.http.put(f"{c.base}/api/v1/metrics/{site}/video", json=body, timeout=5.0)
        if r.status_code not in (200, 201):
            raise LabError(f"PUT metrics {site}/video on {c.member}: {r.status_code} "
                           f"{r.text}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.heal()
        for c in self.ctls:
            with contextlib.suppress(Exception):
                c.stop()
        with contextlib.suppress(Exception):
            self.etcd.close()
        self.http.close()


def first_pass(c: Controller) -> dict[str, Any] | None:
    """The new leader's ``first intent pass after start`` log record (its fields)."""
    path = c.state / "logs" / "cpn.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        if "first intent pass after start" in line:
            rec = json.loads(line)
            return dict(rec.get("fields") or {})
    return None


def journal_epochs(url: str, since: int) -> dict[str, Any]:
    """Who wrote the journal entries after ``since`` (seq), by epoch and kind."""
    from controller import plugins
    from controller.store import JournalQuery
    from controller.store.etcd import EtcdStore

    plugins.modules()
    st = EtcdStore.from_url(url)
    try:
        rows = st.journal(JournalQuery(since=since, limit=10_000))
    finally:
        st.close()
    out: dict[str, Any] = {}
    for e in rows:
        if e.epoch:
            key = f"{e.epoch}:{e.member}"
            out.setdefault(key, {}).setdefault(e.kind, 0)
            out[key][e.kind] += 1
    return out


def run_lab(work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    rep: dict[str, Any] = {"lab": "ha-video"}
    with Lab("hav", workdir=work) as netlab:
        lab = VideoLab(work, netlab)
        try:
            _scenario(lab, rep, t_start)
        finally:
            lab.close()
    lc, st = rep["leader_change"], rep["steer_after_failover"]
    first_ops = lc["new_leader_first_pass"].get("ops")
    rep.update({
        "failover_s": lc["failover_s"], "goal_failover_s": GOAL_FAILOVER_S,
        "frames_lost_leader_change": lc["frames_lost"],
        "frames_lost_steer": st["frames_lost"],
        "new_leader_first_pass_ops": first_ops,
        "elapsed_s": round(time.monotonic() - t_start, 2)})
    pt = rep.get("partition")
    if pt is not None:
        rep["failover_s_partition"] = pt["failover_s"]
        rep["frames_lost_partition"] = pt["frames_lost"]
    rep["met"] = bool(lc["failover_s"] <= GOAL_FAILOVER_S and lc["frames_lost"] == 0
                      and first_ops == 0 and lc["routes_unchanged_after_takeover"]
                      and st["frames_lost"] == 0
                      and (pt is None or (pt["frames_lost"] == 0
                                          and pt["failover_s"] <= GOAL_FAILOVER_S
                                          and pt["routes_unchanged_after_takeover"]
                                          and pt["new_leader_first_pass"].get("ops") == 0)))
    return rep


def _scenario(lab: VideoLab, rep: dict[str, Any], t_start: float) -> None:
    lab.start()
    old, epoch = lab.leader(90)
    placed = lab.wait(lambda: lab.intent(old, "R2"), 60, "the video flow programmed "
                      "towards MEC-1 (R2)")
    before = lab.wait(lambda: (r := routes(lab.ns)) and via(r["R1"]) == "R2" and r,
                      20, f"R1's steering route towards R2 (routes: {routes(lab.ns)})")
    rep["placed"] = {"leader": old.member, "epoch": epoch, "intent": placed["intent"],
                     "path": (placed.get("active") or {}).get("hops"),
                     "ready_s": round(time.monotonic() - t_start, 2)}
    seq_before = _last_seq(lab.etcd.url(lab.prefix))

    # -- the leader dies under the stream ----------------------------------------------
    stream = Stream(lab.ns, seconds=8.0)
    time.sleep(1.5)
    t0, wall0 = time.monotonic(), time.time()
    old.kill()
    time.sleep(0.3)
    headless = routes(lab.ns)
    new, new_epoch = lab.leader(20, newer_than=epoch)
    t1 = time.monotonic()
    fp = lab.wait(lambda: first_pass(new), 20, f"{new.member}'s first intent pass")
    after = routes(lab.ns)
    covered = time.monotonic() < stream.t0 + stream.count / FPS
    lost = stream.finish()
    rep["leader_change"] = {
        "old_leader": old.member, "old_epoch": epoch, "new_leader": new.member,
        "new_epoch": new_epoch, "failover_s": round(t1 - t0, 3),
        # from the new leader's own log: the kill → its election (the lease expiring
        # is most of it); the rest is starting the leader-only components
        "elected_s": round(up - wall0, 3) if (up := key_time(new, "elected leader",
                                                             new_epoch)) else None,
        "stream_spanned_takeover": covered, **lost,
        "routes_before": before, "routes_unchanged_while_headless": headless == before,
        "routes_unchanged_after_takeover": after == before,
        "new_leader_first_pass": fp,
        "new_leader_ops_total": lab.metric(new, "cpn_srv6_intent_ops_total")}

    # -- the new leader steers: MEC-1 overloaded, the flow moves to MEC-2 ---------------
    stream = Stream(lab.ns, seconds=6.0)
    time.sleep(1.5)
    writer = next(c for c in lab.ctls if c.alive() and c is not new)  # a follower
    t2 = time.monotonic()
    lab.overload(writer, "MEC-1")
    moved = lab.wait(lambda: lab.intent(new, "R3"), 20, "the flow moved to MEC-2 (R3)")
    t3 = time.monotonic()
    moved_routes = lab.wait(lambda: (r := routes(lab.ns)) and via(r["R1"]) == "R3" and r,
                            10, "R1's steering route towards R3")
    lost = stream.finish()
    rep["steer_after_failover"] = {
        "overload_written_on": writer.member, "leader": new.member,
        "moved_s": round(t3 - t2, 3), "path": (moved.get("active") or {}).get("hops"),
        **lost, "routes_after": moved_routes,
        "ops_total": lab.metric(new, "cpn_srv6_intent_ops_total")}
    rep["journal_by_epoch_member"] = journal_epochs(lab.etcd.url(lab.prefix), seq_before)

    # -- the new leader is cut off from etcd under the stream (nftables) ----------------
    if shutil.which("nft"):
        rep["partition"] = _partition(lab, new, new_epoch)


def _partition(lab: VideoLab, old: Controller, epoch: int) -> dict[str, Any]:
    """Cut the leader ``old`` off from etcd while the camera streams: it must stop
    acting (fencing) before the last controller is elected, the routes stay, the new
    leader's first pass changes nothing, no frame is lost."""
    before = routes(lab.ns)
    stream = Stream(lab.ns, seconds=8.0)
    time.sleep(1.5)
    t0, wall0 = time.monotonic(), time.time()
    lab.cut(old)
    try:
        time.sleep(0.3)
        headless = routes(lab.ns)
        new, new_epoch = lab.leader(20, newer_than=epoch)
        t1 = time.monotonic()
        fp = lab.wait(lambda: first_pass(new), 20, f"{new.member}'s first intent pass")
        after = routes(lab.ns)
        h = old.health(lab.http) or {}
        down = key_time(old, "stepped down", epoch)
        up = key_time(new, "elected leader", new_epoch)
    finally:
        lab.heal()
    covered = time.monotonic() < stream.t0 + stream.count / FPS
    lost = stream.finish()
    return {"old_leader": old.member, "old_epoch": epoch, "new_leader": new.member,
            "new_epoch": new_epoch, "failover_s": round(t1 - t0, 3),
            "elected_s": round(up - wall0, 3) if up else None,
            "old_leader_stepped_down": not (h.get("cluster") or {}).get("acting", True),
            "stepped_down_before_successor_s": round(up - down, 3) if up and down else None,
            "stream_spanned_takeover": covered, **lost,
            "routes_unchanged_while_headless": headless == before,
            "routes_unchanged_after_takeover": after == before,
            "new_leader_first_pass": fp}


def _last_seq(url: str) -> int:
    from controller.store.etcd import EtcdStore

    st = EtcdStore.from_url(url)
    try:
        return st.last_seq()
    finally:
        st.close()


def render(r: dict[str, Any]) -> str:
    lc, st, p = r["leader_change"], r["steer_after_failover"], r["placed"]
    return "\n".join([
        f"placed   {p['intent']} via {' -> '.join(p['path'] or [])} by {p['leader']} "
        f"(epoch {p['epoch']}), {p['ready_s']} s after start",
        f"kill -9  {lc['old_leader']} (epoch {lc['old_epoch']}) -> {lc['new_leader']} "
        f"(epoch {lc['new_epoch']}) in {lc['failover_s']} s (elected after "
        f"{lc['elected_s']} s); stream {lc['frames_sent']} "
        f"frames, lost {lc['frames_lost']}, max gap {lc['max_gap_ms']['mec1']} ms",
        f"headless routes unchanged while nobody led: {lc['routes_unchanged_while_headless']}"
        f"; after the takeover: {lc['routes_unchanged_after_takeover']}; new leader's first "
        f"pass {lc['new_leader_first_pass'].get('ops')} ops",
        f"steer    MEC-1 overloaded (written on {st['overload_written_on']}): moved to "
        f"{' -> '.join(st['path'] or [])} in {st['moved_s']} s by {st['leader']}; stream "
        f"{st['frames_sent']} frames, lost {st['frames_lost']} (MEC-1 "
        f"{st['received']['mec1']}, MEC-2 {st['received']['mec2']})",
        f"journal  entries after placement by epoch:member {r['journal_by_epoch_member']}",
        *([f"cut off  {pt['old_leader']} (epoch {pt['old_epoch']}) from etcd -> "
           f"{pt['new_leader']} (epoch {pt['new_epoch']}) in {pt['failover_s']} s; the "
           f"cut-off leader stopped acting {pt['stepped_down_before_successor_s']} s "
           f"before its successor was elected; stream {pt['frames_sent']} frames, lost "
           f"{pt['frames_lost']}; routes unchanged: "
           f"{pt['routes_unchanged_after_takeover']}; first pass "
           f"{pt['new_leader_first_pass'].get('ops')} ops"]
          if (pt := r.get("partition")) else ["cut off  skipped: no nft binary"]),
    ]) + "\n"


def run_cli(report: Path) -> int:
    try:
        out = run_lab(report)
    except LabError as exc:
        print(f"ha-video lab failed: {exc}", file=sys.stderr)
        return 1
    (report / "ha-video-report.json").write_text(json.dumps(out, indent=2, default=str))
    print(render(out), end="")
    print(json.dumps({"lab": "ha-video", "figure": out["failover_s"],
                      "goal": GOAL_FAILOVER_S, "met": out["met"],
                      "frames_lost_leader_change": out["frames_lost_leader_change"],
                      "frames_lost_steer": out["frames_lost_steer"],
                      "new_leader_first_pass_ops": out["new_leader_first_pass_ops"],
                      "failover_s_partition": out.get("failover_s_partition"),
                      "frames_lost_partition": out.get("frames_lost_partition")}))
    return 0 if out["met"] else 1
