"""Watch the web console through a lab run, in headless Chromium (issue #18 "Show": the
console stays live during the security-video lab).

Run it where the controller's API is reachable (in the lab: inside the controller's
namespace, since TCP from the root namespace into a namespace is refused here). It logs
in with the operator token, then every ``--interval`` seconds records what the page
shows without any reload — the live indicator, where the video flow is steered and its
path, MEC-1's state, the page's redraw count and the journal sequence it drew — and
takes a screenshot at start, at every change of the flow's site and at the end.
Output: ``console.json`` (timeline, screenshots) in ``--out``.

Example: ip netns exec CTL python -m labs.console_watch --url http://127.0.0.1:8080
--token-file var/state/admin.token --out var/console --duration 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--window-size=1400,1000")

PROBE = """
const f = document.querySelector("[data-flow]");
const m = document.querySelector("tr[data-site='MEC-1'][data-service='video']");
return {live: (document.querySelector('#live') || {}).textContent || '',
        ready: document.body.dataset.ready === '1', seq: document.body.dataset.seq || null,
        renders: window.cpn ? cpn.renders : 0,
        flow_site: f ? f.getAttribute('data-site') : null,
        flow_path: f ? (f.querySelector('.path') || {}).textContent || '' : '',
        mec1: m ? m.getAttribute('data-state') : null};
"""


def watch(url: str, token: str, out: Path, duration_s: float, interval_s: float
          ) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out.mkdir(parents=True, exist_ok=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ARGS:
        opts.add_argument(a)
    drv = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
    timeline: list[dict[str, Any]] = []
    shots: list[str] = []

    def shot(name: str) -> None:
        p = out / f"console-{len(shots) + 1}-{name}.png"
        drv.save_screenshot(str(p))
        shots.append(str(p))

    try:
        drv.get(f"{url}/console")
        drv.execute_script("sessionStorage.setItem('cpn.token', arguments[0])", token)
        drv.get(f"{url}/console")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            if drv.execute_script("return document.body.dataset.ready === '1'"):
                break
            time.sleep(0.05)
        shot("start")
        last_site = None
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            row = drv.execute_script(PROBE)
            row["t_s"] = round(time.monotonic() - t0, 3)
            timeline.append(row)
            if row["flow_site"] != last_site and last_site is not None:
                shot(f"flow-at-{row['flow_site']}")
            last_site = row["flow_site"]
            time.sleep(interval_s)
        shot("end")
        load_ms = drv.execute_script("return cpn.readyAt")
    finally:
        drv.quit()
    sites = [r["flow_site"] for r in timeline]
    moves = [(a, b) for a, b in itertools.pairwise(sites) if a != b]
    result = {"url": url, "samples": len(timeline), "ready_ms": load_ms,
              "live_throughout": all("live" in r["live"] for r in timeline[1:]),
              "moves_seen": moves, "renders": timeline[-1]["renders"] if timeline else 0,
              "screenshots": shots, "timeline": timeline}
    (out / "console.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="controller base URL")
    p.add_argument("--token-file", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--duration", type=float, default=20.0, help="seconds to watch")
    p.add_argument("--interval", type=float, default=0.25)
    a = p.parse_args(argv)
    res = watch(a.url.rstrip("/"), a.token_file.read_text().strip(), a.out, a.duration,
                a.interval)
    print(json.dumps({k: v for k, v in res.items() if k != "timeline"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
