"""``cpn jobs logs|results`` and ``cpn centres list`` against the REST API of a runtime
whose job really went through the dispatcher (simulated centre)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controller.api.app import create_app
from controller.auth import digest
from controller.cli.main import app
from controller.models import JobState
from controller.runtime import Runtime
from tests.scheduler.centres.test_dispatch import job, rt, start, state, until

__all__ = ["rt"]
TOKEN = "op-token-0123456789"


def test_logs_results_and_centres_from_the_cli(rt: Runtime, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rt.store.add_token(digest(TOKEN), "ops", "operator", None)

    async def main() -> None:
        await start(rt)
        try:
            rt.writer.put(job("r"), "test", "submit")
            await until(rt, lambda: state(rt, "r") is JobState.FINISHED, "finished")
        finally:
            await rt.stop()
    asyncio.run(main())
    api = create_app(rt)

    def client(base_url: str, headers: dict[str, str], **_: Any) -> TestClient:
        return TestClient(api, base_url=base_url, headers=headers)
    monkeypatch.setattr("controller.cli.client.httpx.Client", client)
    run = CliRunner()
    common = ["--api", "127.0.0.1:9", "--token", TOKEN]
    out = run.invoke(app, ["jobs", "logs", "r", *common])
    assert out.exit_code == 0 and out.stdout.startswith("sim r.1 ran on DC-A"), out.output
    out = run.invoke(app, ["jobs", "results", "r", *common])
    assert out.exit_code == 0 and "out.txt" in out.stdout and "exit code 0" in out.stdout
    dest = tmp_path / "got.txt"
    out = run.invoke(app, ["jobs", "results", "r", "--get", "out.txt", "--out", str(dest),
                           *common])
    assert out.exit_code == 0 and "(verified)" in out.stdout
    assert dest.read_text() == "sim r.1 out.txt\n"
    out = run.invoke(app, ["jobs", "results", "r", "--get", "nope.txt", *common])
    assert out.exit_code != 0 and "has no result file 'nope.txt'" in out.output
    out = run.invoke(app, ["centres", "list", *common])
    assert out.exit_code == 0 and "DC-A" in out.stdout and "up" in out.stdout
