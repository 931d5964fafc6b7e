"""``cpn srv6 intents create|list|show|delete`` against a running controller (REST on
loopback, the reconciler on in-memory devices): status shown, failed intents exit 3
with the constraint and the fix."""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from controller.cli.main import app
from labs.intents.backbone import config, national
from labs.intents.scenario import OP, Controller

runner = CliRunner()


def test_intents_cli_round_trip(tmp_path: Path) -> None:
    ctl = Controller(tmp_path, config(national(), "memory", verify=False))
    try:
        api = ["--api", f"127.0.0.1:{ctl.api_port}", "--token", OP]
        out = runner.invoke(app, ["srv6", "intents", "create", "--headend", "BJ",
                                  "--endpoint", "M1", "--color", "100", *api])
        assert out.exit_code == 0, out.output
        assert "created BJ~100~M1" in out.output
        bad = runner.invoke(app, ["srv6", "intents", "create", "--headend", "BJ",
                                  "--endpoint", "M2", "--color", "100", "--max-delay-ms",
                                  "0.5", *api])
        assert bad.exit_code == 0, bad.output
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ctl.status("BJ~100~M2")["state"] == "pending":
            time.sleep(0.05)
        while time.monotonic() < deadline and ctl.status("BJ~100~M1")["state"] == "pending":
            time.sleep(0.05)
        show = runner.invoke(app, ["srv6", "intents", "show", "BJ~100~M1", *api])
        assert show.exit_code == 0, show.output
        assert "state       programmed" in show.output
        assert "active      BJ -> WH -> CS -> M1" in show.output and "segments" in show.output
        failed = runner.invoke(app, ["srv6", "intents", "show", "BJ~100~M2", *api])
        assert failed.exit_code == 3
        assert "constraint  max_delay_ms" in failed.output and "fix" in failed.output
        listed = runner.invoke(app, ["srv6", "intents", "list", *api])
        assert "BJ~100~M1" in listed.output and "programmed" in listed.output
        assert "failed" in listed.output
        gone = runner.invoke(app, ["srv6", "intents", "delete", "BJ~100~M2", *api])
        assert gone.exit_code == 0 and "deleted BJ~100~M2" in gone.output
        otn = runner.invoke(app, ["srv6", "intents", "otn-links", *api])
        assert otn.exit_code == 0 and "no on-demand OTN links" in otn.output
        assert "optical.otn_links" in otn.output  # says how to get some
        helps = runner.invoke(app, ["srv6", "ping", "--help"])
        assert "Example:" in helps.output
    finally:
        ctl.close()
