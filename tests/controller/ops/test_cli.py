"""``cpn alarms``, ``cpn bill``, ``cpn usage`` and ``cpn grade`` against a live ``cpn run``
on the GBA example: they print what the REST API holds and name what was wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from typer.testing import CliRunner

from controller.cli.main import app
from labs.netns import free_port, wait_for
from tests.conftest import ROOT

runner = CliRunner()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("cli-state")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli.main", "run", "--config",
         str(ROOT / "examples" / "gba.yaml"), "--api", f"127.0.0.1:{port}",
         "--dns", f"127.0.0.1:{free_port()}", "--state", str(state)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        wait_for(up, 30, "cpn run")
        assert proc.poll() is None
        token = (state / "admin.token").read_text().strip()
        yield {"CPN_API": f"127.0.0.1:{port}", "CPN_TOKEN": token}
    finally:
        proc.terminate()
        proc.wait(15)


def test_bill_and_usage(live: dict[str, str]) -> None:
    hdr = {"Authorization": f"Bearer {live['CPN_TOKEN']}"}
    base = f"http://{live['CPN_API']}"
    assert httpx.post(f"{base}/api/v1/price-plans", headers=hdr, json={
        "name": "gold", "kind": "monthly", "monthly_fee": "1200.00",
        "rates": {"gpu": "9.80"}, "included": {"gpu": "100"}}).status_code == 201
    assert httpx.post(f"{base}/api/v1/orders", headers=hdr, json={
        "tenant": "ai-lab", "plan": "gold", "start": "2026-01-01T00:00:00Z"}).status_code == 201
    month = datetime.now(UTC).strftime("%Y-%m")
    out = runner.invoke(app, ["bill", "ai-lab", "--month", month], env=live)
    assert out.exit_code == 0, out.output
    assert "plan gold (monthly)" in out.output and "total 1200.00 CNY" in out.output
    raw = runner.invoke(app, ["bill", "ai-lab", "--month", month, "--json"], env=live)
    assert json.loads(raw.output)["lines"][0]["kind"] == "fee"
    bad = runner.invoke(app, ["bill", "nosuch", "--month", month], env=live)
    assert bad.exit_code == 2 and "tenant 'nosuch' not found" in bad.output
    worse = runner.invoke(app, ["bill", "ai-lab", "--month", "2026-13"], env=live)
    assert worse.exit_code == 2 and "YYYY-MM" in worse.output
    usage = runner.invoke(app, ["usage", "--month", month], env=live)
    assert usage.exit_code == 0 and "PRODUCT" in usage.output


def test_alarms_and_grades(live: dict[str, str]) -> None:
    listed = runner.invoke(app, ["alarms", "list", "--state", "all"], env=live)
    assert listed.exit_code == 0 and "SEVERITY" in listed.output
    unknown = runner.invoke(app, ["alarms", "ack", "A000000000000"], env=live)
    assert unknown.exit_code == 2 and "GET /api/v1/alarms" in unknown.output
    shelve = runner.invoke(app, ["alarms", "shelve", "A000000000000", "--minutes", "5"],
                           env=live)
    assert shelve.exit_code == 2
    rec = runner.invoke(app, ["grade", "recommend", "--tier", "B9.huge"], env=live)
    assert rec.exit_code == 2 and "B1.small" in rec.output
    ok = runner.invoke(app, ["grade", "recommend", "--tier", "B1.small"], env=live)
    assert ok.exit_code == 0 and "SITE" in ok.output
    assert runner.invoke(app, ["alarms", "--help"]).output.count("Example") >= 1
    assert "cpn bill ai-lab --month" in runner.invoke(app, ["bill", "--help"]).output


def test_measure_grades_this_machine() -> None:
    out = runner.invoke(app, ["grade", "measure", "--seconds", "0.3"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    assert got["benchmark"]["fp32_gflops"] > 0 and got["grade"]["tier"]
