"""``make demo``: run the controller on examples/gba.yaml and walk through its API.

Starts ``cpn run`` as a real subprocess on a free loopback port with its own state
directory, waits until it is healthy, then runs the same CLI commands an operator
would (status, sites, links, services, a job's life, the journal, the logs), and
stops the controller with SIGTERM, checking it exits cleanly. Exits non-zero if any
step fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CPN = [sys.executable, "-m", "controller.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step(title: str, *args: str, env: dict[str, str]) -> str:
    print(f"\n$ cpn {' '.join(args)}    # {title}", flush=True)
    out = subprocess.run([*CPN, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    sys.stdout.write(out.stdout)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"demo step failed: cpn {' '.join(args)} (exit {out.returncode})")
    return out.stdout


def main() -> int:
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
            out = step("submit a job", "jobs", "submit", "--name", "resnet50-grading",
                       "--gpu", "2", "--memory-gib", "32", "--tenant", "ai-lab", env=env)
            job_id = out.split()[0]
            step("modify it before it starts", "jobs", "modify", job_id, "--set",
                 "priority=500", env=env)
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
