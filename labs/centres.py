"""``cpn lab centres``: two real Slurm clusters as two compute centres, driven by the real
controller (GBA-6.3 adaptation, GBA-6.5g dispatch, GBA-6.6 results).

What happens (all measured, nothing assumed):
1. Two Slurm clusters start (``labs.slurm``: own munged, slurmctld, slurmd each). DC-A
   is cheap, DC-B dear; a local user of DC-A already holds 3 of its 4 cores (a job
   submitted with plain ``sbatch``), so CPN jobs sent there wait in its queue.
2. ``cpn run`` starts with both as centres (``centres:`` config section).
3. Jobs are submitted over REST: each sums 1..N with awk and writes ``result.txt``.
   The scheduler prefers DC-A (price), then DC-B.
4. A dataset is uploaded with the transfer cut halfway (the upload stops; the
   server keeps what arrived), then resumed from the offset the server reports and
   checked by SHA-256. One job reads it; the dispatcher stages it first.
5. Once jobs wait in DC-A's queue, DC-A's slurmctld is stopped: the dispatcher marks
   DC-A down and requeues its waiting jobs, which the scheduler places on DC-B.
   DC-A's slurmctld comes back later and its running job's end is read back.
6. Every job's ``result.txt`` is fetched over REST and compared with the expected sum;
   a job that exits 3 at DC-B ends ``failed`` with that exit code and its stderr.
Before step 5 the controller is restarted on the same state: it adopts what it had
submitted; the centres are asked at the end whether any CPN job ran twice.
The report: jobs per centre, queue wait (dispatched → running at the centre) and run
time from the centres' own timestamps, results verified, jobs moved, data moved.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from labs.gba.run import Controller, _ok
from labs.netns import LabError
from labs.slurm import SlurmCluster, available

JOBS = 10
SECONDS = 3  # each job sleeps this long after its sum, so DC-A's queue builds up


def expected(n: int) -> str:
    return f"{n * (n + 1) // 2}\n"


def _command(n: int, dataset: str | None = None) -> str:
    # a small CPU workload: sum 1..n, write it, keep the core a little
    body = f"seq 1 {n} | awk '{{s+=$1}} END {{printf \"%.0f\\n\", s}}' > result.txt\n"
    if dataset:
        body += f"sha256sum {dataset} | cut -d' ' -f1 > input.sha256\n"
    return body + f"sleep {SECONDS}\necho done {n}\n"


def config(work: Path, token: str, a: SlurmCluster, b: SlurmCluster) -> dict[str, Any]:
    return {
        "zone": "cpn.example",
        "auth": {"tokens": [{"name": "centres-lab", "role": "operator", "token": token}]},
        "sites": [
            {"name": "DC-A", "kind": "compute-centre", "region": "a", "price_per_hour": 1.0,
             "links": [{"to": "DC-B", "kind": "ip-private", "delay_ms": 2,
                        "capacity_mbps": 10000}]},
            {"name": "DC-B", "kind": "compute-centre", "region": "b", "price_per_hour": 3.0},
        ],
        "centres": {
            "poll_s": 0.5, "report_s": 2.0, "lost_after_s": 60,
            "sites": {
                "DC-A": {"backend": "slurm", "conf": str(a.conf), "workdir": str(a.workdir),
                         "jobcomp": str(a.jobcomp), "price_per_hour": 1.0},
                "DC-B": {"backend": "slurm", "conf": str(b.conf), "workdir": str(b.workdir),
                         "jobcomp": str(b.jobcomp), "price_per_hour": 3.0},
            }},
        "datasets": {"root": str(work / "datasets"), "bandwidth_mbps": 80},
        "scheduler": {"interval_s": 0.5, "profiles": {"default": {
            "plugins": ["manual", "node-resources-fit", "price-aware", "resources",
                        "default-binder"],
            "weights": {"price-aware": 1.0}}}},
    }


class LabController(Controller):
    """The GBA lab's controller subprocess with this lab's config."""

    def __init__(self, workdir: Path, doc: dict[str, Any]) -> None:
        super().__init__(workdir)
        self.doc = doc

    def start(self, timeout: float = 30.0) -> None:
        cfg = self.dir / "controller.yaml"
        self.doc["auth"]["tokens"][0]["token"] = self.token
        cfg.write_text(yaml.safe_dump(self.doc, sort_keys=False))
        os.chmod(cfg, 0o600)
        self.start_with(cfg, timeout)


def _cut_chunk(url: str, token: str, name: str, data: bytes, off: int, size: int,
               sent: int) -> None:
    """Send one chunk's headers and only ``sent`` of its ``size`` bytes, then close the
    connection: the transfer is cut mid-chunk, as a dropped line would."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    head = (f"PUT /api/v1/datasets/{name}/data HTTP/1.1\r\nHost: {u.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {size}\r\n"
            f"Content-Range: bytes {off}-{off + size - 1}/{len(data)}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n")
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=10) as s:
        s.sendall(head.encode() + data[off:off + sent])
        time.sleep(0.3)  # let the server write what arrived


def _put(c: httpx.Client, name: str, data: bytes, off: int, chunk: int) -> dict[str, Any]:
    part = data[off:off + chunk]
    out: dict[str, Any] = _ok(c.put(
        f"/api/v1/datasets/{name}/data", content=part,
        headers={"Content-Range": f"bytes {off}-{off + len(part) - 1}/{len(data)}"}),
        "upload chunk")
    return out


def upload_interrupted(c: httpx.Client, url: str, token: str, name: str,
                       data: bytes) -> dict[str, Any]:
    """Upload ``data`` in 256 KiB chunks; the connection is cut in the middle of a chunk
    near halfway; then the upload resumes from the byte count the server reports."""
    digest = hashlib.sha256(data).hexdigest()
    _ok(c.post("/api/v1/datasets", json={"name": name, "size": len(data),
                                         "sha256": digest}), "register dataset")
    chunk = 256 << 10
    t0 = time.monotonic()
    off = 0
    while off + chunk <= len(data) // 2:  # first session
        off = _put(c, name, data, off, chunk)["received"]
    _cut_chunk(url, token, name, data, off, chunk, chunk // 3)
    cut_at = off + chunk // 3
    status = _ok(c.get(f"/api/v1/datasets/{name}"), "dataset status")
    resumed_at = int(status["received"])
    off = resumed_at
    while off < len(data):  # second session: from where the server says it stopped
        last = _put(c, name, data, off, chunk)
        off = last["received"]
    took = time.monotonic() - t0
    final = _ok(c.get(f"/api/v1/datasets/{name}"), "dataset status")
    got = c.get(f"/api/v1/datasets/{name}/data", headers={"Range": f"bytes={cut_at}-"})
    return {"size": len(data), "cut_at": cut_at, "state_after_cut": status["state"],
            "resumed_at": resumed_at, "state": final["state"],
            "sha256_ok": final["state"] == "ready" and final["sha256"] == digest,
            "range_download_ok": got.status_code == 206 and got.content == data[cut_at:],
            "upload_s": round(took, 2),
            "upload_mbps": round(len(data) * 8 / took / 1e6, 1)}


def wait_jobs(c: httpx.Client, ids: list[str], pred: Any, timeout: float,
              what: str) -> list[dict[str, Any]]:
    end = time.monotonic() + timeout
    while True:
        jobs = [_ok(c.get(f"/api/v1/jobs/{i}"), "get job") for i in ids]
        if pred(jobs):
            return jobs
        if time.monotonic() > end:
            raise LabError(f"{what} not reached in {timeout:g} s: "
                           f"{[(j['id'], j['state'], j['site'], j['reason']) for j in jobs]}")
        time.sleep(0.2)


def run_lab(work: Path) -> dict[str, Any]:
    why = available()
    if why:
        raise LabError(f"the centres lab cannot run here: {why}")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    a = SlurmCluster("dca", work / "dc-a", cpus=4)
    b = SlurmCluster("dcb", work / "dc-b", cpus=4)
    ctl: LabController | None = None
    restarted = False
    try:
        a.start()
        b.start()
        started = time.monotonic() - t0
        # DC-A's own users hold 3 of its 4 cores for the whole run
        hog = subprocess.run(["sbatch", "--parsable", "--cpus-per-task=3", "--time=5",
                              f"--chdir={a.root}", "--output=/dev/null", "--wrap", "sleep 300"],
                             env=a.env, capture_output=True, text=True, check=True, timeout=20)
        ctl = LabController(work, config(work, "", a, b))
        ctl.start()
        with ctl.client() as c:
            data = os.urandom(3 << 20)
            upload = upload_interrupted(c, ctl.url, ctl.token, "calib.bin", data)
            sums = [20_000 + 1_000 * i for i in range(JOBS)]
            ids = []
            for i, n in enumerate(sums):
                spec: dict[str, Any] = {
                    "name": f"sum-{n}", "requirements": {"cpu_cores": 1},
                    "command": _command(n, "calib.bin" if i == 0 else None),
                    "outputs": ["result.txt"] + (["input.sha256"] if i == 0 else []),
                    "walltime_s": 120}
                if i == 0:
                    spec["datasets"] = ["calib.bin"]
                job = _ok(c.post("/api/v1/jobs", json={"spec": spec}), "submit job")
                ids.append(job["id"])
            bad = _ok(c.post("/api/v1/jobs", json={"spec": {
                "name": "fails", "requirements": {"cpu_cores": 1}, "walltime_s": 60,
                "command": "echo 'cannot open input' >&2\nexit 3", "site": "DC-B"}}),
                "submit failing job")["id"]
            # the controller restarts mid-run on the same state: it adopts what it
            # submitted (idempotent by job id), submits nothing twice
            wait_jobs(c, ids, lambda js: any((j.get("run") or {}).get("centre_job_id")
                                             for j in js), 60, "first submissions")
            ctl.stop()
            ctl.start_with(ctl.dir / "controller.yaml")
            restarted = True
            # jobs waiting in DC-A's queue (dispatched, not running): stop its scheduler
            wait_jobs(c, ids, lambda js: sum(1 for j in js if j["state"] == "dispatched"
                                             and j["site"] == "DC-A"
                                             and (j.get("run") or {}).get("centre_job_id"))
                      >= 2 and any(j["state"] == "running" for j in js), 60,
                      "jobs waiting in DC-A's queue")
            snapshot = {j["id"]: j for j in
                        [_ok(c.get(f"/api/v1/jobs/{i}"), "get job") for i in ids]}
            waiting_at_a = [i for i, j in snapshot.items() if j["state"] == "dispatched"
                            and j["site"] == "DC-A"]
            a.stop_controller()  # returns once slurmctld has exited (it may start a
            stopped_wall = time.time()  # waiting job while shutting down)
            stopped_at = time.monotonic()
            # each either moves, or had started at DC-A before its scheduler stopped
            wait_jobs(c, waiting_at_a, lambda js: all(
                j["site"] != "DC-A" or j["state"] in ("running", "finished") for j in js), 60,
                "DC-A's waiting jobs moved")
            moved_after = time.monotonic() - stopped_at
            centre_a = _ok(c.get("/api/v1/centres/DC-A"), "centre DC-A")
            # DC-A's own user's job is cancelled while its scheduler is down? No: it
            # comes back, and its running CPN job's end is read from it
            time.sleep(2.0)
            a.start_controller()
            subprocess.run(["scancel", hog.stdout.strip().split(";")[0]], env=a.env,
                           capture_output=True, timeout=30, check=False)
            final = wait_jobs(c, ids, lambda js: all(j["state"] in ("finished", "failed",
                                                                    "cancelled")
                                                      for j in js), 120, "every job ended")
            failed = wait_jobs(c, [bad], lambda js: js[0]["state"] in ("finished", "failed"),
                               60, "the failing job ended")[0]
            failed_err = _ok(c.get(f"/api/v1/jobs/{bad}/logs", params={"stream": "stderr"}),
                             "stderr")["text"]
            results = []
            for j, n in zip(final, sums, strict=True):
                r = c.get(f"/api/v1/jobs/{j['id']}/results/result.txt")
                results.append({"id": j["id"], "site": j["site"], "state": j["state"],
                                "exit_code": (j.get("run") or {}).get("exit_code"),
                                "ok": r.status_code == 200 and r.text == expected(n),
                                "attempts": len(j.get("attempts", [])) + 1})
            staged_ok = None
            first = final[0]
            r = c.get(f"/api/v1/jobs/{first['id']}/results/input.sha256")
            if r.status_code == 200:
                staged_ok = r.text.strip() == hashlib.sha256(data).hexdigest()
            logs = _ok(c.get(f"/api/v1/jobs/{ids[1]}/logs"), "logs")
            centres = _ok(c.get("/api/v1/centres"), "centres")["items"]
        dup = asyncio.run(_ran_twice([a, b]))
        rep = report(final, results, upload, staged_ok, logs, centres, waiting_at_a,
                     moved_after, centre_a, started, time.monotonic() - t0)
        # a waiting job that did not move must have started at DC-A before the stop
        stayed = [j for j in final if j["id"] in waiting_at_a and j["site"] == "DC-A"]
        rep["centre_down"]["stayed_started_before_stop"] = all(
            (_iso((j.get("run") or {}).get("started_at")) or 1e18) <= stopped_wall + 1.0
            for j in stayed)
        rep.update({"controller_restarted": restarted, "ran_twice": dup,
                    "failing_job": {"state": failed["state"], "reason": failed["reason"],
                                    "exit_code": (failed.get("run") or {}).get("exit_code"),
                                    "stderr": failed_err.strip()}})
        return rep
    finally:
        if ctl is not None:
            ctl.stop()
        a.stop()
        b.stop()


async def _ran_twice(clusters: list[SlurmCluster]) -> int:
    """CPN jobs that ran (not cancelled) more than once, counted at the centres."""
    from scheduler.centres.base import CentreJobState
    from scheduler.centres.slurm import SlurmCentre

    ran: dict[str, int] = {}
    for cl in clusters:
        for st in await SlurmCentre(cl.name, cl.conf, cl.workdir).jobs():
            if st.state is not CentreJobState.CANCELLED:
                jid = st.key.rsplit(".", 1)[0]
                ran[jid] = ran.get(jid, 0) + 1
    return sum(1 for n in ran.values() if n > 1)


def _iso(s: str | None) -> float | None:
    from datetime import datetime

    return datetime.fromisoformat(s).timestamp() if s else None


def report(final: list[dict[str, Any]], results: list[dict[str, Any]],
           upload: dict[str, Any], staged_ok: bool | None, logs: dict[str, Any],
           centres: list[dict[str, Any]], waiting_at_a: list[str], moved_after: float,
           centre_a: dict[str, Any], started: float, total: float) -> dict[str, Any]:
    per: dict[str, int] = {}
    waits, runs = [], []
    for j in final:
        per[j["site"] or "-"] = per.get(j["site"] or "-", 0) + 1
        run = j.get("run") or {}
        d, s, e = (_iso(run.get("dispatched_at")), _iso(run.get("started_at")),
                   _iso(run.get("ended_at")))
        if d and s:
            waits.append(max(0.0, s - d))
        if s and e:
            runs.append(e - s)
    moved = [r for r in results if r["id"] in waiting_at_a and r["site"] != "DC-A"]
    return {
        "jobs": len(final), "per_centre": per,
        "finished": sum(1 for j in final if j["state"] == "finished"),
        "results_verified": sum(1 for r in results if r["ok"]),
        "queue_wait_s": {"p50": round(statistics.median(waits), 2) if waits else None,
                         "max": round(max(waits), 2) if waits else None},
        "run_time_s": {"p50": round(statistics.median(runs), 2) if runs else None,
                       "max": round(max(runs), 2) if runs else None},
        "centre_down": {"site": "DC-A", "state_seen": centre_a["state"],
                        "reason": centre_a["reason"], "waiting_jobs": len(waiting_at_a),
                        "moved": len(moved),
                        "moved_to": sorted({r["site"] for r in moved}),
                        "moved_within_s": round(moved_after, 2)},
        "upload": upload, "staged_input_verified": staged_ok,
        "data_moved_bytes": upload["size"],
        "logs_sample": logs["text"][:200],
        "centres": [{k: c.get(k) for k in ("site", "state", "load", "energy_w",
                                            "price_per_hour")} for c in centres],
        "results": results, "clusters_started_s": round(started, 2),
        "total_s": round(total, 2),
    }


def print_report(rep: dict[str, Any]) -> None:
    print("# centres lab: two Slurm clusters as two compute centres")
    print(f"jobs: {rep['jobs']}  per centre: {rep['per_centre']}  finished: "
          f"{rep['finished']}  results verified: {rep['results_verified']}/{rep['jobs']}")
    qw, rt = rep["queue_wait_s"], rep["run_time_s"]
    print(f"queue wait at the centre: p50 {qw['p50']} s, max {qw['max']} s;  run time: "
          f"p50 {rt['p50']} s, max {rt['max']} s")
    cd = rep["centre_down"]
    print(f"DC-A's slurmctld stopped: state {cd['state_seen']} ({cd['reason'][:80]}); "
          f"{cd['moved']} of {cd['waiting_jobs']} waiting jobs moved to {cd['moved_to']} within "
          f"{cd['moved_within_s']} s")
    up = rep["upload"]
    print(f"dataset upload: {up['size']} bytes, cut at {up['cut_at']} ({up['state_after_cut']}),"
          f" resumed at {up['resumed_at']}, final {up['state']}, sha256 ok {up['sha256_ok']},"
          f" range download ok {up['range_download_ok']}, {up['upload_mbps']} Mbit/s under "
          f"the 80 Mbit/s cap; staged to the job's centre and verified there: "
          f"{rep['staged_input_verified']}")
    fj = rep["failing_job"]
    print(f"controller restarted mid-run: {rep['controller_restarted']}; CPN jobs that ran "
          f"twice at the centres: {rep['ran_twice']}; the failing job: {fj['state']}, exit "
          f"code {fj['exit_code']}, stderr {fj['stderr']!r}")
    print(f"data moved: {rep['data_moved_bytes']} bytes; total {rep['total_s']} s "
          f"(clusters up in {rep['clusters_started_s']} s)")
    print(json.dumps({k: rep[k] for k in ("jobs", "per_centre", "results_verified",
                                          "finished")}, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    p = argparse.ArgumentParser(prog="cpn lab centres")
    p.add_argument("--report", type=Path, default=None, help="write report.json here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cpn-centres-") as d:
        try:
            rep = run_lab(Path(d))
        except LabError as exc:
            print(f"centres lab failed: {exc}", file=sys.stderr)
            return 1
    print_report(rep)
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "report.json").write_text(json.dumps(rep, indent=2))
    ok = rep["results_verified"] == rep["jobs"] and rep["centre_down"]["moved"] > 0 \
        and rep["ran_twice"] == 0 and rep["failing_job"]["exit_code"] == 3
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
