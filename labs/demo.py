"""``make demo``: the security-video handover lab, then a walk through the API.

1. As root (network namespaces), runs the GBA-App.B security-video lab
   (``labs.security_video``): with CPN's steering and the no-steering baseline, and
   prints the measured report summary (frames lost, steer time, latency percentiles).
2. Starts a real Slurm cluster (``labs.slurm``) as the workload manager of centre
   DC-FS, then ``cpn run`` on examples/gba.yaml plus that ``centres:`` entry as a real
   subprocess on a free loopback port with its own state directory and runs the CLI
   commands an operator would (status, sites, links, services, a job that really runs
   at DC-FS with its output and result file, a job's placement and cancel, the
   journal, the logs), then stops the controller with SIGTERM, checking it exits
   cleanly. Where Slurm cannot start (not root, not installed) the demo says so and
   shows no job output.

Exits non-zero if any step fails. Without root, step 1 is skipped with a message.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from labs.netns import free_port

if TYPE_CHECKING:
    from labs.slurm import SlurmCluster

ROOT = Path(__file__).resolve().parent.parent
CPN = [sys.executable, "-m", "controller.cli.main"]



def step(title: str, *args: str, env: dict[str, str]) -> str:
    print(f"\n$ cpn {' '.join(args)}    # {title}", flush=True)
    out = subprocess.run([*CPN, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    sys.stdout.write(out.stdout)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"demo step failed: cpn {' '.join(args)} (exit {out.returncode})")
    return out.stdout


def lab() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("The security-video lab needs root and network namespaces: skipped.\n")
        return
    report = ROOT / "var" / "security-video-report"
    print("Running the security-video handover lab (GBA-App.B): camera → R1 → R2 → MEC-1 /"
          " R3 → MEC-2, kernel SRv6; MEC-1 is driven to ~90 % load.\n", flush=True)
    rc = subprocess.run([sys.executable, "-m", "labs.security_video", "--report", str(report)],
                        cwd=ROOT, timeout=600).returncode
    if rc != 0:
        raise SystemExit(f"the security-video lab failed (exit {rc})")
    print()


def centre(work: Path) -> tuple[Path, SlurmCluster | None]:
    """examples/gba.yaml, plus DC-FS as a Slurm centre when a cluster can start here."""
    from labs.slurm import SlurmCluster, available

    cfg = ROOT / "examples" / "gba.yaml"
    why = available()
    if why:
        print(f"NOTE: no Slurm centre in this demo — {why}. Jobs are placed but not run.\n")
        return cfg, None
    cluster = SlurmCluster("demo", work / "slurm-dc-fs", cpus=4)
    try:
        cluster.start()
    except Exception as exc:  # say it plainly; the rest of the walk-through still runs
        cluster.stop()
        print(f"NOTE: the Slurm cluster for DC-FS did not start ({exc}); jobs are placed "
              "but not run.\n")
        return cfg, None
    out = work / "gba-with-centre.yaml"
    out.write_text(cfg.read_text() + f"""
# added by make demo: DC-FS's workload manager is a real Slurm cluster
centres:
  poll_s: 0.5
  sites:
    DC-FS: {{backend: slurm, conf: {cluster.conf}, workdir: {cluster.workdir},
            jobcomp: {cluster.jobcomp}}}
""")
    print(f"Started Slurm cluster {cluster.name} (slurmctld, slurmd, munged) as DC-FS's "
          "workload manager.\n")
    return out, cluster


def job_that_runs(env: dict[str, str], work: Path) -> None:
    spec = work / "job-sum.yaml"
    spec.write_text("name: sum-to-a-million\nsite: DC-FS\nrequirements: {cpu_cores: 1}\n"
                    "walltime_s: 120\noutputs: [result.txt]\ncommand: |\n"
                    "  echo \"running on $(hostname) as Slurm job $SLURM_JOB_ID\"\n"
                    "  seq 1 1000000 | awk '{s+=$1} END {printf \"%.0f\\n\", s}' > result.txt\n")
    out = step("a job that really runs: DC-FS's Slurm executes it", "jobs", "submit",
               "-f", str(spec), env=env)
    job_id = out.split()[0]
    deadline = time.monotonic() + 90
    state = ""
    while time.monotonic() < deadline:
        got = subprocess.run([*CPN, "jobs", "get", job_id], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60).stdout
        state = next((ln.split('"')[3] for ln in got.splitlines()
                      if ln.strip().startswith('"state"')), "")
        if state in ("finished", "failed", "cancelled"):
            break
        time.sleep(0.5)
    step("its record: dispatched → running → finished, with the centre's job id and "
         "exit code", "jobs", "get", job_id, env=env)
    if state != "finished":
        raise SystemExit(f"demo job {job_id} ended {state or 'not at all'} at DC-FS")
    step("what it printed", "jobs", "logs", job_id, env=env)
    step("its result files with checksums", "jobs", "results", job_id, env=env)
    dest = work / "result.txt"
    step("fetch result.txt (checksum verified)", "jobs", "results", job_id, "--get",
         "result.txt", "--out", str(dest), env=env)
    value = dest.read_text().strip()
    print(f"result.txt says {value}; sum 1..1,000,000 = 500000500000 → "
          f"{'correct' if value == '500000500000' else 'WRONG'}")
    if value != "500000500000":
        raise SystemExit("the demo job's result is wrong")


def main() -> int:
    lab()
    state = ROOT / "var" / "demo"
    shutil.rmtree(state, ignore_errors=True)
    work = ROOT / "var" / "demo-centre"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config, cluster = centre(work)
    try:
        return walk(state, config, cluster is not None, work)
    finally:
        if cluster is not None:
            cluster.stop()


def walk(state: Path, config: Path, runs_jobs: bool, work: Path) -> int:
    port, dns_port = free_port(), free_port()
    api = f"127.0.0.1:{port}"
    env = {**os.environ, "CPN_API": api, "CPN_STATE": str(state)}
    print(f"Starting the CPN controller on {api} with {config.name} (state in {state})")
    log = (state.parent / "demo-controller.log")
    state.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as log_fh:
        proc = subprocess.Popen(
            [*CPN, "run", "--config", str(config), "--api", api,
             "--dns", f"127.0.0.1:{dns_port}", "--state", str(state)],
            cwd=ROOT, env=env, stdout=log_fh, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    print(log.read_text())
                    raise SystemExit(f"controller exited early with {proc.returncode}")
                try:
                    if httpx.get(f"http://{api}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("controller did not become healthy within 30 s")
                time.sleep(0.2)
            step("health, counts, who am I", "status", env=env)
            step("GBA-5.2 sites: hubs, centres, MECs, cloud", "sites", "list", env=env)
            step("interconnects: OTN, IP-private, Internet", "links", "list", env=env)
            step("services with anycast addresses and instances", "services", "list", env=env)
            if runs_jobs:
                job_that_runs(env, work)
            out = step("submit a job; the scheduler places it", "jobs", "submit", "--name",
                       "resnet50-grading", "--gpu", "2", "--memory-gib", "32", "--tenant",
                       "ai-lab", env=env)
            job_id = out.split()[0]
            time.sleep(1.0)
            step("where it runs and why (the scheduler's decision)", "jobs", "list", env=env)
            step("cancel it", "jobs", "cancel", job_id, env=env)
            step("the journal: who changed what, when, why", "events", "--kind", "job",
                 env=env)
            step("key events in the logs", "logs", "--level", "key", "--limit", "5", env=env)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
    if rc != 0:
        print(log.read_text())
        raise SystemExit(f"controller exited with {rc} on SIGTERM")
    print(f"\nController stopped cleanly. Its log: {log}")
    print("Demo done.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
