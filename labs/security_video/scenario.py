"""Run one security-video scenario (with or without CPN steering) and collect its data.

Rules:
- Order: the os-ken steering app (root namespace: Open vSwitch connects to it over
  127.0.0.1; its control API is a Unix socket the controller reaches from ``ctl``) →
  topology (Mininet; the access switch connects to the app) → controller (``cpn run``
  in ``ctl``; it installs the egress SIDs, the initial steering route and the access
  switch's classification rule) → analytics services at both MECs → camera (DNS, then
  frames) → after ``before_s`` the load generator on MEC-1 → camera finishes → drain.
- A process that exits or is not ready in time stops the run with ``LabError`` naming
  it and the tail of its log; the ``Lab`` tears everything down on every exit path.
- Collected: the camera's frames/results, each process's JSON event lines and the
  controller's ``flows.jsonl`` decisions — raw data for ``report.py``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from labs.mn import connected
from labs.netns import Lab, LabError, Ns, free_port, wait_for
from labs.security_video import sites as S
from labs.security_video import topology as T

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
BASE_CONFIG = ROOT / "examples" / "security-video-lab.yaml"
VIDEO_DSCP = 34  # AF41: the access switch marks the camera's flow (RFC 4594 video)


@dataclass(frozen=True)
class Params:
    steer: bool = True
    before_s: float = 4.0
    after_s: float = 6.0
    fps: float = 30.0
    frame_size: int = 1200
    frame_work_ms: float = 8.0
    load_util: float = 0.9
    load_job_ms: float = 20.0
    high_pct: float = 80.0
    low_pct: float = 60.0
    #: watch the web console in headless Chromium inside the controller's namespace
    #: through the run, writing ``console.json`` and screenshots here (off by default:
    #: the browser competes for the lab's CPU)
    console_dir: str | None = None
    #: the controller's store durability (``controller.store_sync``: full | normal)
    store_sync: str = "full"
    #: the core the controller is pinned to: 1 (default) = on MEC-1's saturated core,
    #: so that after the move it never takes CPU from MEC-2 (the frames' latency after
    #: the move is compared with before); 0 = beside MEC-2, idle until the move (the
    #: controller stands for another machine: the handover bench's placement); None =
    #: not pinned
    controller_cpu: int | None = 1
    #: the controller's nice value when beside MEC-2 (``controller_cpu`` 0): it yields
    #: to MEC-2's service and the camera after the move
    controller_nice: int = 5


class ProcessDied(LabError):
    """A lab process exited while the lab needed it."""


def _events(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _tail(path: Path, n: int = 15) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


class Run:
    def __init__(self, lab: Lab, workdir: Path, params: Params) -> None:
        self.lab = lab
        self.dir = workdir
        self.p = params
        self.procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self, ns: Ns | None, name: str, argv: list[str],
              cpu: int | None = None, nice: int = 0) -> subprocess.Popen[bytes]:
        """Start a lab process in ``ns`` (None: the root namespace); ``cpu`` pins it to
        one core (when the machine has it); ``nice`` < 0 raises its priority."""
        if cpu is not None and cpu < (os.cpu_count() or 1) and shutil.which("taskset"):
            argv = ["taskset", "-c", str(cpu), *argv]
        if nice:
            argv = ["nice", "-n", str(nice), *argv]
        log = self.dir / f"{name}.log"
        env = {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        proc = (ns.popen(argv, name=name, log=log, env=env) if ns is not None else
                self.lab.popen(argv, name=name, log=log, env=env))
        self.procs[name] = (proc, log)
        return proc

    def check_alive(self) -> None:
        for name, (proc, log) in self.procs.items():
            if name in ("camera", "loadgen", "console"):
                continue
            if proc.poll() is not None:
                raise ProcessDied(f"lab process {name!r} exited with {proc.returncode}; "
                               f"log {log}:\n{_tail(log)}")

    def wait(self, pred: Any, timeout: float, what: str, name: str) -> Any:
        def check() -> Any:
            self.check_alive()
            return pred()
        try:
            return wait_for(check, timeout, what)
        except ProcessDied:
            raise
        except LabError as exc:
            log = self.procs[name][1] if name in self.procs else None
            raise LabError(f"{name}: {exc}" + (f"; log {log}:\n{_tail(log)}" if log else "")) \
                from None

    def config(self, t: T.Topology, ca: Path, of_api: Path) -> Path:
        doc = yaml.safe_load(BASE_CONFIG.read_text())
        doc.update(S.controller_sections(ca, self.p.high_pct, self.p.low_pct))
        doc["flows"]["access"] = {"api": str(of_api), "mark": {"video": VIDEO_DSCP}}
        doc["controller"]["state"] = str(self.dir / "state")
        doc["controller"]["store_sync"] = self.p.store_sync
        doc["flows"]["steer"] = self.p.steer
        for router, ns in (("R1", t.r1), ("R2", t.r2), ("R3", t.r3)):
            doc["intents"]["nodes"][router]["netns"] = ns.name
        # the camera's flow must keep one service address across the handover: the
        # network (R1) steers it; new answers show the choice in SVCB priorities
        doc["dns"] = {"services": {"video": {"anycast": True}}}
        path = self.dir / "controller.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path


def run_scenario(workdir: Path, params: Params) -> dict[str, Any]:
    """Run the scenario once; returns the raw data (see module rules)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.log"):
        old.unlink()
    flows_log = workdir / "state" / "flows.jsonl"
    # a fresh controller state each run: metrics of an earlier run must not leak in
    shutil.rmtree(workdir / "state", ignore_errors=True)
    p = params
    with Lab("svid") as lab:
        run = Run(lab, workdir, p)
        of_port, of_api = free_port(), workdir / "openflow.sock"
        run.start(None, "openflow", [PY, "-m", "srv6.steering.openflow_app", "--of-port",
                                     str(of_port), "--api-unix", str(of_api)])
        run.wait(lambda: of_api.exists() and _listening(of_port), 20,
                 "the os-ken steering app's OpenFlow port and control socket", "openflow")
        t = T.build(lab, of_port)
        run.wait(lambda: connected(t.access), 20,
                 "the access switch to connect to the os-ken steering app", "openflow")
        ca = S.make_ca(workdir)
        cfg = run.config(t, ca, of_api)
        cpn = [PY, "-m", "controller.cli.main", "run", "--config", str(cfg),
               "--api", "0.0.0.0:8080", "--dns", "0.0.0.0:5353",
               "--state", str(workdir / "state")]
        # The controller shares MEC-1's loaded core by default: it never steals CPU
        # from the MEC the flow moves to (``Params.controller_cpu``, ``controller_nice``).
        run.start(t.ctl, "controller", cpn, cpu=p.controller_cpu,
                  nice=p.controller_nice if p.controller_cpu == 0 else 0)
        run.wait(lambda: T.ANYCAST in T.steering_route(t.r1), 30,
                 "the controller to program R1's initial steering route", "controller")
        # Each MEC is its own edge server: MEC-1 (and the load driven into it) on one
        # core, MEC-2 on the other, so the still-loaded MEC-1 does not steal MEC-2's CPU
        # after the handover on a 2-core machine.
        # Each site's own daemons: GoBGP announcing the anycast with compute metadata
        # (ExaBGP in the controller dials them), the site agent (mTLS to the ingest).
        for site, ns, cpu in (("MEC-1", t.mec1, 1), ("MEC-2", t.mec2, 0)):
            run.start(ns, f"gobgpd-{site}", ["gobgpd", "-f", str(S.gobgp_conf(site, workdir)),
                                             "--api-hosts", "127.0.0.1:50051"], cpu=cpu)
            run.start(ns, f"agent-{site}", [
                PY, "-m", "controller.cli.main", "agent", "--config",
                str(S.agent_conf(site, ca, workdir, p.high_pct, p.low_pct))], cpu=cpu)
        for site, ns in (("MEC-1", t.mec1), ("MEC-2", t.mec2)):
            run.wait(lambda ns=ns: ns.run(["gobgp", "global"], check=False).returncode == 0,
                     20, f"GoBGP at {site} to serve its API", f"gobgpd-{site}")
            ns.run(S.announce(site))
        db = workdir / "state" / "state.db"
        for site in ("MEC-1", "MEC-2"):
            run.wait(lambda site=site: _route_up(db, site), 40,
                     f"{site}'s BGP route with compute metadata in the controller",
                     f"gobgpd-{site}")
        for site, ns, cpu in (("MEC-1", t.mec1, 1), ("MEC-2", t.mec2, 0)):
            run.start(ns, site, [
                PY, "-m", "labs.security_video.service", "--site", site,
                "--frame-work-ms", str(p.frame_work_ms), "--high", str(p.high_pct),
                "--low", str(p.low_pct), "--agent-udp", str(S.AGENT_UDP),
                "--workdir", str(workdir)], cpu=cpu)
        for site in ("MEC-1", "MEC-2"):
            log = run.procs[site][1]
            run.wait(lambda log=log: '"ready"' in log.read_text(errors="replace")
                     if log.exists() else False, 20, f"{site} service ready", site)
        for site in ("MEC-1", "MEC-2"):  # the agent's first report carries the service
            run.wait(lambda site=site: _agent_seen(db, site), 20,
                     f"{site}'s agent report of the service in the controller",
                     f"agent-{site}")
        duration = p.before_s + p.after_s
        cdir = Path(p.console_dir) / ("cpn" if p.steer else "baseline") \
            if p.console_dir else None
        if cdir is not None:
            run.start(t.ctl, "console", [
                PY, "-m", "labs.console_watch", "--url", "http://127.0.0.1:8080",
                "--token-file", str(workdir / "state" / "admin.token"),
                "--out", str(cdir), "--duration", str(duration + 8)])
            first = cdir / "console-1-start.png"
            run.wait(first.exists, 60, "the console watcher to log in and draw", "console")
        # The camera is the measuring instrument: on the core of the MEC the flow moves to
        # (idle before the move; the loaded core would delay its receive timestamps), at a
        # higher priority so its timestamps are taken when the packets arrive.
        cam = run.start(t.cam, "camera", [
            PY, "-m", "labs.security_video.camera", "--name", "video.svc.cpn.example",
            "--dns", f"{T.CTL_FOR['cam']}:5353", "--fps", str(p.fps),
            "--size", str(p.frame_size), "--duration", str(duration),
            "--out", str(workdir / "camera.json")], cpu=0, nice=-5)
        cam_log = run.procs["camera"][1]
        run.wait(lambda: _streaming(cam, cam_log),
                 20, "camera to resolve the service and start streaming", "camera")
        time.sleep(p.before_s)
        run.start(t.mec1, "loadgen", [
            PY, "-m", "labs.security_video.loadgen", "--target",
            f"{T.MEC_ADDR['MEC-1']}:5004", "--util", str(p.load_util),
            "--job-ms", str(p.load_job_ms)], cpu=1)
        run.wait(lambda: '"sent_all"' in cam_log.read_text(errors="replace"),
                 duration + 20, "camera to send all frames", "camera")
        lab.stop(run.procs["loadgen"][0])
        try:
            cam.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise LabError(f"camera did not finish; log:\n{_tail(cam_log)}") from None
        if cam.returncode != 0:
            raise LabError(f"camera failed ({cam.returncode}):\n{_tail(cam_log)}")
        dns_after = t.cam.run(
            [PY, "-c", "import json,sys; from labs.security_video.camera import resolve; "
             f"print(json.dumps(resolve('video.svc.cpn.example', '{T.CTL_FOR['cam']}', 5353)))"],
            check=False)
        route_after = T.steering_route(t.r1)
        if cdir is not None:
            try:
                run.procs["console"][0].wait(timeout=30)
            except subprocess.TimeoutExpired:
                lab.stop(run.procs["console"][0])
        access = _access_counters(t.mn.dump_flows("s1"))
    data: dict[str, Any] = json.loads((workdir / "camera.json").read_text())
    data["events"] = {name: _events(workdir / f"{name}.log")
                      for name in ("MEC-1", "MEC-2", "loadgen", "camera")}
    data["decisions"] = _events(flows_log)
    data["dns_after"] = (json.loads(dns_after.stdout) if dns_after.returncode == 0
                         else {"error": dns_after.stderr.strip()[-300:]})
    data["route_after"] = route_after
    data["access_switch"] = {"bridge": t.access, **access}
    data["params"] = p.__dict__
    if cdir is not None and (cdir / "console.json").exists():
        data["console"] = json.loads((cdir / "console.json").read_text())
    data["argv"] = {k: shlex.join(v[0].args) if isinstance(v[0].args, list) else ""
                    for k, v in run.procs.items()}
    return data


def _streaming(cam: subprocess.Popen[bytes], log: Path) -> bool:
    text = log.read_text(errors="replace") if log.exists() else ""
    if '"streaming"' in text:
        return True
    if cam.poll() is not None:
        raise LabError(f"camera exited ({cam.returncode}) before streaming:\n{_tail(log)}")
    return False


def _access_counters(dump: str) -> dict[str, Any]:
    """The access switch's CPN classification flows (cookie 0xc0ffee00) and counters."""
    import re

    flows = [ln.strip() for ln in dump.splitlines() if "cookie=0xc0ffee00" in ln]
    packets = sum(int(m.group(1)) for ln in flows if (m := re.search(r"n_packets=(\d+)", ln)))
    marks = sorted({int(m.group(1)) for ln in flows
                    if (m := re.search(r"set_field:(\d+)->ip_dscp", ln))})
    return {"cpn_flows": flows, "classified_packets": packets, "dscp": marks}


def _route_up(db: Path, site: str) -> bool:
    rec = S.stored_metrics(db, f"{site}/video")
    return bool(rec and rec.get("l0", {}).get("route_up") == 1.0 and rec.get("available"))


def _agent_seen(db: Path, site: str) -> bool:
    rec = S.stored_metrics(db, f"{site}/video")
    return bool(rec and "service_up" in rec.get("l0", {}) and "route_up" in rec["l0"])


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
