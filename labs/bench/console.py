"""Bench: the web console's load time on the GBA example, in Debian's Chromium.

What is measured (issue #18 goal: loads in < 1 s): ``cpn run`` on ``examples/gba.yaml``
(8 sites) in a subprocess; headless Chromium (selenium) opens ``/console`` and the page
is timed from navigation start to *ready* (the first overview, alarms, jobs and
services drawn: ``cpn.readyAt`` from ``performance.now()``). Two kinds of load,
alternated A/B/A/B so machine noise hits both alike:

- A ``reload``: the page reloaded with the token kept in the tab (what an operator
  sees opening the console again) — the figure;
- B ``login``: a fresh page where the token is typed and *Log in* clicked (timed from
  navigation start too, so it includes typing).

Final JSON: ``figure`` (median reload ms), ``goal`` (1000), ``met``; medians, p90 and
spread (max − min) of both, the load average, the Chromium version.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from labs.netns import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--window-size=1400,1000")


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ARGS:
        opts.add_argument(a)
    return webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))


def _ready_ms(drv: Any) -> float:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        ms = drv.execute_script("return document.body.dataset.ready === '1' ? cpn.readyAt "
                                ": null")
        if ms is not None:
            return float(ms)
        time.sleep(0.01)
    raise RuntimeError("the console did not become ready within 20 s")


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p * (len(s) - 1)))]


def run(rounds: int = 10, **_opts: Any) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory(prefix="cpn-bench-console-") as tmp:
        state = Path(tmp) / "state"
        port = free_port()
        log = (Path(tmp) / "controller.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli.main", "run", "--config",
             str(ROOT / "examples" / "gba.yaml"), "--api", f"127.0.0.1:{port}",
             "--dns", f"127.0.0.1:{free_port()}", "--state", str(state)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        drv = None
        try:
            def up() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return proc.poll() is not None
            wait_for(up, 60, "the controller to answer /healthz")
            if proc.poll() is not None:
                raise RuntimeError(f"cpn run exited with {proc.returncode}")
            token = (state / "admin.token").read_text().strip()
            drv = _driver()
            reload_ms: list[float] = []
            login_ms: list[float] = []
            for _ in range(rounds):
                # A: reload with the token kept
                drv.get(f"{base}/console")
                drv.execute_script(f"sessionStorage.setItem('cpn.token', {token!r})")
                drv.get(f"{base}/console")
                reload_ms.append(_ready_ms(drv))
                # B: fresh login
                drv.execute_script("sessionStorage.clear()")
                drv.get(f"{base}/console")
                drv.find_element(By.ID, "login-token").send_keys(token)
                drv.find_element(By.ID, "login-btn").click()
                login_ms.append(_ready_ms(drv))
            version = drv.capabilities.get("browserVersion", "")
        finally:
            if drv is not None:
                drv.quit()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()
    med = statistics.median(reload_ms)
    return {"bench": "console", "figure": round(med, 1),
            "unit": "ms (navigation → console drawn, reload with token, median)",
            "goal": 1000.0, "met": med < 1000.0, "rounds": rounds,
            "reload_ms": {"median": round(med, 1), "p90": round(_pct(reload_ms, 0.9), 1),
                          "spread": round(max(reload_ms) - min(reload_ms), 1)},
            "login_ms": {"median": round(statistics.median(login_ms), 1),
                         "p90": round(_pct(login_ms, 0.9), 1),
                         "spread": round(max(login_ms) - min(login_ms), 1)},
            "example": "examples/gba.yaml", "chromium": version,
            "load_avg_1m": round(os.getloadavg()[0], 2)}
