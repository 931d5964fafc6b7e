"""Run the GBA multi-centre lab: the real controller on loopback, everything via REST.

Rules:
- Starts ``cpn run`` (``controller.cli.main``) as a subprocess with the generated config
  (``examples/gba.yaml`` + ``scheduler:`` profiles + an operator token) on free loopback
  ports and a fresh state dir; stops it BY PID in ``finally`` (terminate, then kill).
- A controller that exits early or never answers is a ``LabError`` naming it, with the
  tail of its log.
- Seeds site metrics (``PUT /api/v1/metrics/<site>/*``), submits one job per policy
  (``POST /api/v1/jobs``), waits for the scheduler component to place each one, reads
  each job's journal (``GET /api/v1/events?kind=job&key=<id>``), computes the SR path
  from the client to the chosen site (``labs.gba.steer``, on links/sites read through
  REST) and returns the report dict.
- Where namespaces and kernel SRv6 are available (root), every site is a kernel SRv6
  router in a namespace (``labs.gba.dataplane``) and the controller gets an
  ``intents:`` section: a job placed with a network requirement (the ``network`` jobs'
  delay bound, from the client ``MEC-GZ1``) becomes a ``place:job:<id>`` SR policy intent
  the reconciler programs and verifies; the report shows each placement's programmed
  path from the stored entities (the decision's ``intent`` and ``network`` part, the
  intent's status: state, hops, segments) and the route read back from the headend's
  kernel. Otherwise the report says why no dataplane ran.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from controller.models import Link, Site
from labs.gba import report as R
from labs.gba import scenario as S
from labs.gba.steer import delays_from, steer
from labs.netns import Lab, LabError, free_port
from labs.optical.fixture import OpticalLab


def _tail(path: Path, n: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


class Controller:
    """The controller subprocess: ``start`` waits until REST answers; ``stop`` by pid."""

    def __init__(self, workdir: Path, extra: dict[str, Any] | None = None) -> None:
        self.dir = workdir
        self.extra = extra or {}
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "controller.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.argv: list[str] = []

    def start(self, timeout: float = 30.0) -> None:
        state = self.dir / "state"
        doc = S.build_config(state, self.token)
        doc.update(self.extra)
        cfg = self.dir / "controller.yaml"
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        os.chmod(cfg, 0o600)  # holds the lab's token
        self.start_with(cfg, timeout)

    def start_with(self, cfg: Path, timeout: float = 30.0) -> None:
        """Start ``cpn run`` on the config file ``cfg``; wait until REST answers."""
        state = self.dir / "state"
        self.argv = [sys.executable, "-m", "controller.cli.main", "run", "--config", str(cfg),
                     "--api", f"127.0.0.1:{self.port}", "--dns", f"127.0.0.1:{free_port()}",
                     "--state", str(state)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                if self.proc.poll() is not None:
                    raise LabError(f"controller exited with {self.proc.returncode} while "
                                   f"starting; log {self.log}:\n{_tail(self.log)}")
                try:
                    if c.get("/api/v1/whoami").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise LabError(f"controller REST on {self.url} did not answer in "
                                   f"{timeout:g} s; log {self.log}:\n{_tail(self.log)}")
                time.sleep(0.1)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0,
                            headers={"Authorization": f"Bearer {self.token}",
                                     "X-CPN-Reason": "gba lab"})

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.terminate()  # by pid: Popen.terminate signals exactly this process
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def _ok(r: httpx.Response, what: str) -> Any:
    if r.status_code >= 300:
        raise LabError(f"{what}: HTTP {r.status_code}: {r.text[:500]}")
    return r.json()


def _all(c: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = _ok(c.get(path, params={**params, "limit": 1000, "offset": offset}),
                   f"GET {path}")
        items += page["items"]
        if page.get("next_offset") is None:
            return items
        offset = page["next_offset"]


def wait_placed(c: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = _ok(c.get(f"/api/v1/jobs/{job_id}"), f"GET job {job_id}")
        if job["state"] in ("running", "failed", "finished", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise LabError(f"job {job_id} not placed within {timeout:g} s: state "
                           f"{job['state']}, reason {job.get('reason')!r}")
        time.sleep(0.1)


def run_lab(workdir: Path, place_timeout: float = 20.0,
            optical: bool | None = None, dataplane: bool | None = None) -> dict[str, Any]:
    """Run the lab once in ``workdir``; returns the report dict. ``optical``: carry the
    hubs' OTN links on lab NETCONF NEs (default: when netconfd is installed);
    ``dataplane``: program the placements' paths on namespace routers (default: when
    root with kernel SRv6)."""
    from controller.config import load_config
    from labs.gba import dataplane as D
    from labs.gba import otn

    workdir.mkdir(parents=True, exist_ok=True)
    # a fresh controller state each run: jobs and metrics of an earlier run must not leak
    shutil.rmtree(workdir / "state", ignore_errors=True)
    use_optical = otn.available() if optical is None else optical
    why_no_dp = D.available() if dataplane is not False else "not asked for"
    with contextlib.ExitStack() as stack:
        olab = stack.enter_context(OpticalLab(6)) if use_optical else None
        extra: dict[str, Any] = {"optical": otn.section(olab)} if olab else {}
        wired = None
        if why_no_dp is None:
            ents = load_config(S.EXAMPLE).entities
            lab = stack.enter_context(Lab("gbad", workdir=workdir))
            wired = D.build(lab, [e for e in ents if isinstance(e, Site)],
                            [e for e in ents if isinstance(e, Link)])
            extra["intents"] = D.section(wired)
        elif dataplane:
            raise LabError(f"the SRv6 dataplane cannot run here: {why_no_dp}")
        ctl = Controller(workdir, extra or None)
        stack.callback(ctl.stop)
        rep = _run(ctl, olab, place_timeout, wired)
        rep["dataplane"] = ({"used": True, "sites": sorted(wired.ns),
                             "programmer": "netlink (kernel SRv6 in namespaces)"}
                            if wired is not None else {"used": False, "why": why_no_dp})
        return rep


def programmed_path(c: httpx.Client, wired: Any, key: str,
                    timeout: float) -> dict[str, Any]:
    """The placement ``key``'s network part as stored: the decision's ``intent`` and
    ``network`` fields, the intent's status (state, hops, segments), and the steering
    route read back from the headend's kernel. Waits until the intent is verified or
    failed (a programmed one is taken at the timeout)."""
    from labs.gba import dataplane as D

    deadline = time.monotonic() + timeout
    while True:
        d = _ok(c.get(f"/api/v1/scheduler/decisions/{key}"), f"GET decision {key}")
        net = d.get("network") or {}
        if not d.get("bounds"):
            return {"needed": False, "why": "no delay or bandwidth requirement"}
        done = net.get("state") in ("verified", "failed")
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out: dict[str, Any] = {"needed": True, "intent": d.get("intent"), "network": net}
    if d.get("intent"):
        st = _ok(c.get(f"/api/v1/srv6/intents/{d['intent']}"), "GET intent")["status"]
        act = st.get("active") or {}
        out.update({"state": st["state"], "hops": act.get("hops", []),
                    "links": act.get("links", []),
                    "segments": act.get("segments", []), "delay_ms": act.get("delay_ms"),
                    "reason": st.get("reason", "")})
        head, _, end = d["intent"].split("~")
        if wired is not None and end in wired.prefix:
            kern = D.read_back(wired, head, wired.prefix[end])
            out["kernel_route"] = kern
            out["kernel_equals_status"] = kern is not None and \
                kern["segments"] == out["segments"]
    return out


def _run(ctl: Controller, olab: OpticalLab | None, place_timeout: float,
         wired: Any = None) -> dict[str, Any]:
    from labs.gba import otn

    workdir = ctl.dir
    optical: dict[str, Any] = {"used": False, "why": "netconfd not installed"}
    ctl.start()
    with ctl.client() as c:
        if olab is not None:
            optical = {"used": True, **otn.provision(
                c, _all(c, "/api/v1/links"), len(olab.nes))}
        for body in S.metrics_bodies():
            _ok(c.put(f"/api/v1/metrics/{body['site']}/*", json=body),
                f"seed metrics of {body['site']}")
        sites = [Site.model_validate(s) for s in _all(c, "/api/v1/sites")]
        links = [Link.model_validate(x) for x in _all(c, "/api/v1/links")]
        delays, ranks = delays_from(links, sites, S.CLIENT)
        doc = S.build_config(workdir / "state", "-")
        submitted = []
        for case in S.CASES:
            job = _ok(c.post("/api/v1/jobs", json=S.job_body(case)),
                      f"submit job {case.name}")
            submitted.append((case, job["id"]))
        rows = []
        for case, jid in submitted:
            job = wait_placed(c, jid, place_timeout)
            journal = _all(c, "/api/v1/events", kind="job", key=jid)
            got = c.get(f"/api/v1/scheduler/decisions/job:{jid}")
            decision = got.json() if got.status_code == 200 else None
            path = (steer(links, sites, S.CLIENT, job["site"]) if job.get("site")
                    else {"ok": False, "local": False, "reason": "not placed"})
            rows.append(R.job_row({"name": case.name, "policy": case.policy,
                                   "why": case.why}, job, journal, decision,
                                  S.expected_site(case, doc, delays, ranks), path))
        for r in rows:
            r["programmed"] = (programmed_path(c, wired, f"job:{r['job']}", 30.0)
                               if wired is not None and r["decision"] is not None else None)
        metrics = _all(c, "/api/v1/metrics")
    kind = {s.name: s.kind.value for s in sites}
    return {
        "controller": {"argv": shlex.join(ctl.argv), "url": ctl.url,
                       "log": str(ctl.log)},
        "placement_by": "the scheduler component (scheduler.registration) inside the "
                        "controller, "
                        "profiles from the scheduler: section; jobs only submitted via REST",
        "flows_by": f"SRv6 CSPF (srv6.paths.compute_path) from {S.CLIENT}, GBA-5.2 "
                    "interconnect tiers (computed); placements with a network requirement "
                    "are programmed as SR policy intents (see programmed)",
        "client": S.CLIENT,
        "delays_from_client_ms": delays,
        "gba52_rank_from_client": ranks,
        "metrics": [{"site": m["site"], "kind": kind.get(m["site"], "?"), "l0": m["l0"],
                     "l2": m["l2"]} for m in metrics if m["service"] == "*"],
        "jobs": rows,
        "optical": optical,
        "summary": {"jobs": len(rows),
                    "as_expected": sum(1 for r in rows if r["as_expected"]),
                    "journaled": sum(1 for r in rows if r["decision"] is not None
                                     and r["decision"]["seq"] is not None),
                    "distinct_sites": len({r["site"] for r in rows})},
    }


def run_cli(out: Path) -> int:
    try:
        rep = run_lab(out)
    except LabError as exc:
        print(f"gba lab failed: {exc}", file=sys.stderr)
        return 1
    R.write(rep, out)
    s = rep["summary"]
    for j in rep["jobs"]:
        print(f"{j['name']:<11} {j['policy']:<14} -> {j['site']!s:<9} "
              f"(expected {j['expected_site']}) {'ok' if j['as_expected'] else 'UNEXPECTED'}")
    print(f"report: {out / 'report.md'}  ({s['as_expected']}/{s['jobs']} as expected, "
          f"{s['journaled']}/{s['jobs']} journaled)")
    return 0 if s["as_expected"] == s["jobs"] and s["journaled"] == s["jobs"] else 1
