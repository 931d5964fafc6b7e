from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from controller.cli.main import app
from tests.conftest import ROOT

runner = CliRunner()


def test_help_teaches_with_examples() -> None:
    for args in (["run"], ["jobs", "submit"], ["token", "create"], ["logs"], ["config", "check"]):
        out = runner.invoke(app, [*args, "--help"])
        assert out.exit_code == 0 and "Example:" in out.output, args


def test_config_check_ok_and_errors(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["config", "check", str(ROOT / "examples" / "gba.yaml")])
    assert ok.exit_code == 0 and "8 sites" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  - {name: A, kind: mec, region: r, links: [{to: B}]}\n")
    out = runner.invoke(app, ["config", "check", str(bad)])
    assert out.exit_code == 1
    assert str(bad) in out.output and "sites[0].links[0].to" in out.output
    assert "unknown site or router 'B'" in out.output


def test_token_create_list_revoke(tmp_path: Path) -> None:
    out = runner.invoke(app, ["token", "create", "--role", "viewer", "--name", "dash",
                              "--state", str(tmp_path)])
    assert out.exit_code == 0 and out.output.startswith("cpn_")
    listed = runner.invoke(app, ["token", "list", "--state", str(tmp_path)])
    assert "dash" in listed.output and "viewer" in listed.output
    assert cpn_token_secret_not_stored(tmp_path, out.output.strip())
    dup = runner.invoke(app, ["token", "create", "--role", "viewer", "--name", "dash",
                              "--state", str(tmp_path)])
    assert dup.exit_code == 1 and "already exists" in dup.output
    need = runner.invoke(app, ["token", "create", "--role", "tenant", "--state", str(tmp_path)])
    assert need.exit_code != 0 and "--tenant" in need.output
    assert runner.invoke(app, ["token", "revoke", "dash", "--state",
                               str(tmp_path)]).exit_code == 0


def cpn_token_secret_not_stored(state: Path, token: str) -> bool:
    return token.encode() not in (state / "state.db").read_bytes()


def test_bad_flag_values_are_explained() -> None:
    out = runner.invoke(app, ["run", "--api", "nonsense"])
    assert out.exit_code == 2 and "HOST:PORT" in out.output


def test_client_command_without_controller_says_how_to_fix() -> None:
    out = runner.invoke(app, ["sites", "list", "--api", "127.0.0.1:9", "--token", "x"])
    assert out.exit_code == 1 and "is 'cpn run' running?" in out.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    """Start ``cpn run`` and wait until its REST API answers."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise AssertionError(f"cpn run exited with {proc.returncode}") from None
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError("controller did not start")


def test_run_serves_restarts_with_same_state_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "controller.cli.main", "run", "--config",
           str(ROOT / "examples" / "security-video.yaml"), "--api", f"127.0.0.1:{port}",
           "--dns", f"127.0.0.1:{_free_port()}", "--state", str(tmp_path)]
    env = {**os.environ, "CPN_API": f"127.0.0.1:{port}", "CPN_STATE": str(tmp_path)}

    def start() -> subprocess.Popen[bytes]:
        return _start(cmd, port)

    proc = start()
    try:
        token = (tmp_path / "admin.token").read_text().strip()
        assert oct((tmp_path / "admin.token").stat().st_mode)[-3:] == "600"
        hdr = {"Authorization": f"Bearer {token}"}
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/jobs", headers=hdr,
                       json={"spec": {"name": "keep-me"}})
        assert r.status_code == 201
        status = subprocess.run([sys.executable, "-m", "controller.cli.main", "status"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert "you: admin (operator)" in status.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    proc = start()
    try:
        jobs = httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs", headers=hdr).json()
        assert [j["spec"]["name"] for j in jobs["items"]] == ["keep-me"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    logs = runner.invoke(app, ["logs", "--state", str(tmp_path), "--grep", "unchanged"])
    assert "config" in logs.output and "unchanged since last apply" in logs.output


def test_run_with_invalid_config_applies_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  - {name: A, kind: mec, region: r}\nservices:\n"
                   "  - {name: v, anycast: [198.51.100.1], instances: [{site: Q, "
                   "address: 10.0.0.1}]}\n")
    out = runner.invoke(app, ["run", "--config", str(bad), "--state", str(tmp_path / "s")])
    assert out.exit_code == 1
    assert "nothing applied" in out.output and "services[0].instances[0].site" in out.output
    assert not (tmp_path / "s" / "state.db").exists()


def test_run_starts_on_a_state_dir_poisoned_by_a_non_finite_value(tmp_path: Path) -> None:
    """#15: a job stored with ``"data_gib": null`` (1e999 was accepted and written as
    null) made every later ``cpn run`` refuse the state directory. The row is now
    quarantined: the controller starts, health says degraded, the rest is intact and
    the operator finds the row (and the fix) with ``cpn quarantine list``."""
    import json
    import sqlite3

    port = _free_port()
    cmd = [sys.executable, "-m", "controller.cli.main", "run", "--config",
           str(ROOT / "examples" / "security-video.yaml"), "--api", f"127.0.0.1:{port}",
           "--dns", f"127.0.0.1:{_free_port()}", "--state", str(tmp_path)]
    base = f"http://127.0.0.1:{port}"
    proc = _start(cmd, port)
    try:
        hdr = {"Authorization": f"Bearer {(tmp_path / 'admin.token').read_text().strip()}"}
        ids = [httpx.post(f"{base}/api/v1/jobs", headers=hdr,
                          json={"spec": {"name": n, "data_gib": 2}}).json()["id"]
               for n in ("keep", "poisoned")]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    con = sqlite3.connect(tmp_path / "state.db")
    with con:
        (raw,) = con.execute("SELECT value FROM objects WHERE kind='job' AND key=?",
                             (ids[1],)).fetchone()
        row = json.loads(raw)
        row["spec"]["data_gib"] = None  # what the old encoder wrote for 1e999
        con.execute("UPDATE objects SET value=? WHERE kind='job' AND key=?",
                    (json.dumps(row), ids[1]))
    con.close()
    proc = _start(cmd, port)
    try:
        health = httpx.get(f"{base}/healthz").json()
        assert health["status"] == "degraded" and health["quarantined"] == 1
        jobs = httpx.get(f"{base}/api/v1/jobs", headers=hdr).json()["items"]
        assert [j["id"] for j in jobs] == [ids[0]]
        assert httpx.get(f"{base}/api/v1/sites", headers=hdr).json()["total"] > 0
        out = runner.invoke(app, ["quarantine", "list", "--state", str(tmp_path)])
        assert out.exit_code == 0 and ids[1] in out.output and "data_gib" in out.output
        assert "cpn quarantine drop" in out.output
        shown = runner.invoke(app, ["quarantine", "show", "1", "--state", str(tmp_path)])
        assert '"data_gib": null' in shown.output
        # the same job can be submitted again with a valid value
        r = httpx.post(f"{base}/api/v1/jobs", headers=hdr,
                       json={"spec": {"name": "poisoned", "data_gib": 2}})
        assert r.status_code == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    logs = runner.invoke(app, ["logs", "--state", str(tmp_path), "--grep", "quarantined"])
    assert ids[1] in logs.output and "no longer matches its model" in logs.output
    out = runner.invoke(app, ["quarantine", "drop", "1", "--state", str(tmp_path)])
    assert out.exit_code == 0
    out = runner.invoke(app, ["quarantine", "list", "--state", str(tmp_path)])
    assert "nothing quarantined" in out.output


def test_bench_opt_list_with_commas_is_passed_as_text() -> None:
    """Regression: ``--opt sizes=1000,5000`` (the form ``cpn bench cspf`` documents)
    was parsed as JSON because it starts with a digit, and crashed."""
    from controller.cli.bench import _value

    assert _value("1000,5000") == "1000,5000"
    assert _value("60") == 60
    assert _value("2.5") == 2.5
    assert _value("true") is True
    assert _value("[1, 2]") == "[1, 2]"
    assert _value("x") == "x"
