"""The console in a real browser (issue #18 "Show", GBA-6.7 visualisation): Debian
Chromium driven by selenium against ``cpn run`` on the security-video topology, whose
flow controller programs kernel SRv6 in namespaces. Log in with a token, see the
topology, watch MEC-1 turn overloaded and the video flow's path move R1 → R3 → MEC-2
(the page updates over the change feed, no reload), acknowledge the alarm from the
page; a tenant sees only its own alarms; no token ⇒ refused. Screenshots are saved in
the test's tmp dir (``console-*.png``) and their paths printed.

The flow controller programs the namespaces' kernel SRv6 routes (netlink) where the
kernel has seg6 lightweight tunnels; a kernel built without them
(``CONFIG_IPV6_SEG6_LWTUNNEL`` unset: "lwt encapsulation type not supported") gets the
flow controller's in-memory programmer instead — the decisions, the journal and
everything the console shows are the same; only the routes are not in a kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from labs.netns import Lab, free_port, wait_for
from tests.conftest import ROOT, have, needs_netns

pytestmark = [needs_netns, pytest.mark.lab,
              pytest.mark.skipif(not have("chromedriver") or not have("chromium"),
                                 reason="needs Debian chromium + chromium-driver")]

OP, TEN = "console-operator-token-0123456789", "console-tenant-token-0123456789"
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1400,1000")


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in CHROMIUM_ARGS:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))


def topology(lab: Lab) -> dict[str, str]:
    r1, r2, r3, m1, m2 = (lab.ns(n) for n in ("r1", "r2", "r3", "mec1", "mec2"))
    lab.link(r1, r2, "eth1", "eth0", ["fc00:12::1/64"], ["fc00:12::2/64"])
    lab.link(r1, r3, "eth2", "eth0", ["fc00:13::1/64"], ["fc00:13::3/64"])
    lab.link(r2, m1, "eth1", "eth0", ["10.0.1.1/24"], ["10.0.1.10/24"])
    lab.link(r3, m2, "eth1", "eth0", ["10.0.2.1/24"], ["10.0.2.10/24"])
    for r in (r1, r2, r3):
        r.enable_forwarding(srv6=True)
    r1.run("ip -6 route add fc00:0:2::/48 via fc00:12::2")
    r1.run("ip -6 route add fc00:0:3::/48 via fc00:13::3")
    return {"R1": r1.name, "R2": r2.name, "R3": r3.name}


def kernel_has_seg6(lab: Lab) -> bool:
    probe = lab.ns("probe")
    probe.run("ip link set lo up")
    res = probe.run("ip -6 route add fc00:ffff::1/128 encap seg6local action End dev lo",
                    check=False)
    return res.returncode == 0


def config(tmp: Path, ns: dict[str, str], netlink: bool) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "security-video-lab.yaml").read_text())
    for router in ("R1", "R2", "R3"):
        node = doc["intents"]["nodes"][router]
        node["programmer"] = "netlink" if netlink else "memory"
        node["netns"] = ns[router]
    doc["tenants"] = [{"name": "acme"}, {"name": "globex"}]
    doc["auth"] = {"tokens": [{"name": "noc", "role": "operator", "token": OP},
                              {"name": "acme-ops", "role": "tenant", "tenant": "acme",
                               "token": TEN}]}
    path = tmp / "controller.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with Lab("cons") as lab:
        ns = topology(lab)
        cfg = config(tmp_path, ns, kernel_has_seg6(lab))
        port = free_port()
        log = tmp_path / "controller.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "controller.cli.main", "run", "--config", str(cfg),
                 "--api", f"127.0.0.1:{port}", "--dns", f"127.0.0.1:{free_port()}",
                 "--state", str(tmp_path / "state")], stdout=out, stderr=subprocess.STDOUT,
                cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _up(base) or proc.poll() is not None, 30, "controller up")
            assert proc.poll() is None, log.read_text()[-3000:]
            yield base, tmp_path
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def metrics(api: httpx.Client, site: str, l2: float, overloaded: bool) -> None:
    body = {"site": site, "service": "video", "l0": {"cpu_pct": 92.0 if overloaded else 30.0},
            "l2": l2, "overloaded": overloaded, "source": "agent", "period_s": 3600}
    r = api.put(f"/api/v1/metrics/{site}/video", json=body)
    assert r.status_code == 200, r.text


def test_console_live_topology_flow_move_and_alarm_ack(controller: tuple[str, Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, tmp = controller
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {OP}"}, timeout=10)
    # without a token: the data is refused with a clear error, the page itself is public
    nope = httpx.get(f"{base}/api/v1/console/overview")
    assert nope.status_code == 401 and "missing bearer token" in nope.json()["error"]["message"]
    metrics(api, "MEC-1", 8.0, False)
    metrics(api, "MEC-2", 6.0, False)
    assert api.post("/api/v1/price-plans", json={"name": "payg", "rates": {"cpu": "0.35"}}
                    ).status_code == 201
    assert api.post("/api/v1/orders", json={"tenant": "acme", "plan": "payg",
                                            "start": "2026-01-01T00:00:00Z"}).status_code == 201
    wait_for(lambda: any(f["site"] == "MEC-1" for f in
                         api.get("/api/v1/console/overview").json()["flows"]), 30,
             "the video flow steered to MEC-1")
    shots: list[Path] = []
    drv = browser()
    try:
        wait = WebDriverWait(drv, 20)

        def q(css: str, what: str = "text") -> Any:
            """Read an element's text or attribute in one step inside the page: the
            console redraws tables live, so a held element reference can go stale."""
            return drv.execute_script(
                "const e = document.querySelector(arguments[0]); if (!e) return null;"
                "return arguments[1] === 'text' ? e.innerText : e.getAttribute(arguments[1]);",
                css, what)

        def click(css: str) -> bool:
            return bool(drv.execute_script(
                "const e = document.querySelector(arguments[0]); if (e) e.click(); "
                "return !!e;", css))

        def shot(name: str) -> None:
            p = tmp / f"console-{name}.png"
            drv.save_screenshot(str(p))
            shots.append(p)

        drv.get(f"{base}/console")
        drv.find_element(By.ID, "login-token").send_keys("not-a-token")
        drv.find_element(By.ID, "login-btn").click()
        wait.until(lambda d: "refused" in (q("#login-error") or ""))
        tok = drv.find_element(By.ID, "login-token")
        tok.clear()
        tok.send_keys(OP)
        drv.find_element(By.ID, "login-btn").click()
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
        assert "noc · operator" in drv.find_element(By.ID, "whoami").text
        nodes = set(drv.execute_script("return cpn.cy.nodes().map(n => n.id())"))
        assert {"R1", "R2", "R3", "MEC-1", "MEC-2", "CAM-SITE"} <= nodes
        links = drv.execute_script("return cpn.cy.edges('[id ^= \"link:\"]').length")
        assert links == 4
        assert drv.execute_script("return cpn.cy.$id('attach:R1').length") == 1  # gateway
        flow_css = "[data-flow='video@R1']"
        assert q(flow_css, "data-site") == "MEC-1"
        assert "R1 → R2 → MEC-1" in q(flow_css)
        wait.until(lambda d: "live" in (q("#live") or ""))
        shot("1-topology")

        # MEC-1 overloaded: the flow controller moves the flow; the page follows live
        metrics(api, "MEC-1", 1.5, True)
        wait.until(lambda d: q("tr[data-site='MEC-1'][data-service='video']", "data-state")
                   == "overloaded")
        wait.until(lambda d: q(flow_css, "data-site") == "MEC-2")
        moved = q(flow_css)
        assert "R1 → R3 → MEC-2" in moved and "was MEC-1" in moved
        drawn = drv.execute_script("return cpn.cy.edges('.flow').map(e => e.id())")
        assert drawn == ["flow:video@R1:R1>R3", "flow:video@R1:R3>MEC-2"]
        assert drv.execute_script("return cpn.cy.$id('MEC-1').hasClass('overloaded')")
        shot("2-overloaded-flow-moved")

        # intents with their status; the optical layer says why it is not shown
        intents = api.get("/api/v1/srv6/intents").json()["items"]
        assert intents, "the example declares SR policy intents"
        click("#tabs button[data-tab='services']")
        want = intents[0]["status"]["state"]
        wait.until(lambda d: f"{intents[0]['headend']}\t{intents[0]['endpoint']}"
                   in (q("#intents") or ""))
        assert want in q("#intents") and "not available" in q("#optical")

        # the overload alarm, acknowledged from the page
        drv.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='alarms']").click()
        row_css = "tr[data-type='site-overloaded'][data-resource='MEC-1/video']"
        wait.until(lambda d: click(f"{row_css} button.ack"))
        wait.until(lambda d: q(row_css, "data-acked") == "1")
        shot("3-alarm-acknowledged")
        aid = q(row_css, "data-alarm")
        journal = api.get("/api/v1/events", params={"kind": "alarm", "key": aid}).json()
        acks = [e for e in journal["items"] if e["actor"] == "api:noc"]
        assert acks and acks[-1]["value"]["ack_note"] == "from the console"

        # a tenant logs in: no operator alarm is shown, no acknowledge button at all
        drv.find_element(By.ID, "logout").click()
        drv.find_element(By.ID, "login-token").send_keys(TEN)
        drv.find_element(By.ID, "login-btn").click()
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
        assert "tenant acme" in drv.find_element(By.ID, "whoami").text
        drv.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='alarms']").click()
        assert not drv.find_elements(By.CSS_SELECTOR, "#alarms tbody tr")
        # its bill (an order on a price plan, no usage yet), and no one else's
        drv.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='bills']").click()
        drv.find_element(By.CSS_SELECTOR, "#bill-form button").click()
        wait.until(lambda d: q("#bill-total") is not None)
        assert q("#bill-total") == "0.00 CNY"
        other = drv.find_element(By.ID, "bill-tenant")
        other.clear()
        other.send_keys("globex")
        drv.find_element(By.CSS_SELECTOR, "#bill-form button").click()
        wait.until(lambda d: "not found" in (q("#bill-error") or ""))
        shot("4-tenant-view")

        # load time on reload with the token kept in the session (recorded, not judged
        # here: `cpn bench console` measures it)
        drv.get(f"{base}/console")
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
        ms = drv.execute_script("return cpn.readyAt")
        (tmp / "console-load-ms.txt").write_text(f"{ms:.0f}\n")
    finally:
        for entry in drv.get_log("browser"):
            print("browser:", entry.get("level"), entry.get("message"))
        drv.quit()
        print("console screenshots:", *map(str, shots))
    for p in shots:
        assert p.stat().st_size > 10_000, f"{p} looks empty"
