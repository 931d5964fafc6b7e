"""``make demo``: the security-video handover lab, then a walk through the API.

1. As root (network namespaces), runs the GBA-App.B security-video lab
   (``labs.security_video``): with CPN's steering and the no-steering baseline, and
   prints the measured report summary (frames lost, steer time, latency percentiles).
2. Starts ``cpn run`` on examples/gba.yaml as a real subprocess on a free loopback
   port with its own state directory and runs the CLI commands an operator would
   (status, sites, links, services, a job's life, the journal, the logs), then stops
   the controller with SIGTERM, checking it exits cleanly.

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

import httpx

from labs.netns import free_port

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


def main() -> int:
    lab()
    state = ROOT / "var" / "demo"
    shutil.rmtree(state, ignore_errors=True)
    port, dns_port = free_port(), free_port()
    api = f"127.0.0.1:{port}"
    env = {**os.environ, "CPN_API": api, "CPN_STATE": str(state)}
    print(f"Starting the CPN controller on {api} with examples/gba.yaml (state in {state})")
    log = (state.parent / "demo-controller.log")
    state.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as log_fh:
        proc = subprocess.Popen(
            [*CPN, "run", "--config", "examples/gba.yaml", "--api", api,
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
