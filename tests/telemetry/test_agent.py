"""Site agent (GBA-6.3): strict acquisition parsing, hung commands killed, garbage
kept out, thresholds, service load lines, report building — no network."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import ValidationError
from telemetry.agent.collect import ProcCollector, parse_acquisition, run_acquisition
from telemetry.agent.config import AgentConfig, AgentResource, load_agent_config
from telemetry.agent.main import Agent, ThresholdWatch
from telemetry.agent.service_load import parse_load_line


def test_parse_acquisition_value_and_attributes() -> None:
    assert parse_acquisition(b"42.5 temp=61 state=ok\n") == (42.5, {"temp": 61.0,
                                                                     "state": "ok"})
    assert parse_acquisition(b"\n7\n\n") == (7.0, {})


@pytest.mark.parametrize("out,where", [
    (b"", "one line"), (b"1\n2\n", "2 lines"), (b"abc", "value"), (b"nan", "value"),
    (b"1 temp", "key=value"), (b"1 =3", "key=value"), (b"\xff\xfe", "UTF-8"),
    (b"inf x=1", "value"),
])
def test_parse_acquisition_garbage_rejected(out: bytes, where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        parse_acquisition(out)


@given(st.binary(max_size=200))
def test_parse_acquisition_fuzz_never_crashes(data: bytes) -> None:
    try:
        value, ext = parse_acquisition(data)
    except ValidationError:
        return
    assert value == value and all(isinstance(k, str) for k in ext)


def test_hanging_command_is_killed_at_its_interval(tmp_path: Path) -> None:
    marker = tmp_path / "pid"

    async def go() -> None:
        with pytest.raises(ValidationError, match="killed"):
            await run_acquisition(f"echo $$ > {marker}; sleep 30; echo 1", 0.3)

    t0 = time.monotonic()
    asyncio.run(go())
    assert time.monotonic() - t0 < 10  # returned well before the command would
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the whole process group is gone


def test_failing_command_reports_status() -> None:
    with pytest.raises(ValidationError, match="status 3"):
        asyncio.run(run_acquisition("exit 3", 2))


def test_agent_keeps_last_value_on_garbage(tmp_path: Path) -> None:
    flag = tmp_path / "garbage"
    cmd = f"if [ -e {flag} ]; then echo oops; else echo 12 unit=cores; fi"
    res = AgentResource(name="cores", description="c", dynamic=True, acquisition_command=cmd,
                        interval_s=0.1)
    agent = Agent(_cfg(tmp_path, resources=[res]))

    async def go() -> None:
        task = asyncio.create_task(agent._acquire_loop(res))
        while "cores" not in agent.values:
            await asyncio.sleep(0.02)
        flag.touch()
        await asyncio.sleep(0.35)
        task.cancel()

    asyncio.run(go())
    assert agent.values["cores"] == (12.0, {"unit": "cores"})


def test_threshold_watch_crossings() -> None:
    w = ThresholdWatch(85, 70)
    seq = [50, 84.9, 85, 95, 75, 70, 69.9, 90]
    assert [w.update("x", v) for v in seq] == [False, False, True, False, False, False,
                                               True, True]


def test_service_load_lines() -> None:
    assert parse_load_line("video 91.5 12", known={"video"}).util_pct == 91.5
    assert not parse_load_line("video 10 0 down", known={"video"}).up
    assert parse_load_line("55 3", "video").queue_depth == 3
    for bad in ("video 101 1", "video -1 1", "video 5 -2", "video x 1", "audio 5 1",
                "video 5", "video 5 1 sideways", ""):
        with pytest.raises(ValidationError):
            parse_load_line(bad, known={"video"})


def test_threshold_report_on_load(tmp_path: Path) -> None:
    agent = Agent(_cfg(tmp_path))
    agent.on_load(parse_load_line("video 40 1", known={"video"}))
    assert not agent._urgent.is_set()
    agent.on_load(parse_load_line("video 92 9", known={"video"}))
    assert agent._urgent.is_set() and agent._reason == "threshold"
    rep = agent.build_report("threshold")
    assert rep.site == "MEC-1" and rep.services[0].util_pct == 92 and rep.seq == 1
    assert rep.price_per_hour == 1.5 and rep.resources[0].name == "gpu"


def test_proc_collector_reads_proc() -> None:
    pc = ProcCollector()
    pc.cpu_pct()
    sum(range(200_000))
    cpu = pc.cpu_pct()
    mem = pc.mem_pct()
    assert cpu is None or 0 <= cpu <= 100
    assert mem is not None and 0 < mem < 100 and (pc.load1() or 0) >= 0
    assert ProcCollector(powercap=Path("/nonexistent")).energy_w() is None


def test_load_agent_config_resolves_paths_and_rejects_typos(tmp_path: Path) -> None:
    p = tmp_path / "agent.yaml"
    p.write_text("site: MEC-1\ncontroller: https://10.0.0.1:8443\ncert: c.pem\nkey: c.key\n"
                 "ca: ca.pem\nservices: [{name: video}]\n")
    cfg = load_agent_config(p)
    assert cfg.cert == tmp_path / "c.pem" and cfg.services[0].name == "video"
    p.write_text(p.read_text() + "intervall_s: 3\n")
    with pytest.raises(ValidationError, match="intervall_s"):
        load_agent_config(p)


def _cfg(tmp: Path, **kw: object) -> AgentConfig:
    base: dict[str, object] = {
        "site": "MEC-1", "controller": "https://127.0.0.1:1", "cert": tmp / "c",
        "key": tmp / "k", "ca": tmp / "ca", "services": [{"name": "video"}],
        "price_per_hour": 1.5, "benchmark_s": 0,
        "resources": [{"name": "gpu", "description": "GPUs", "value": 2}]}
    base.update(kw)
    return AgentConfig.model_validate(base)


def test_agent_measures_a_benchmark_and_sends_it_once(tmp_path: Path) -> None:
    """WP-3.1.5: the agent's benchmark rides on the next report, then is not resent."""
    from telemetry.agent.main import Agent

    async def go() -> None:
        agent = Agent(_cfg(tmp_path, benchmark_s=0.2, node="mec1-srv"))
        task = asyncio.create_task(agent._benchmark_loop())
        try:
            for _ in range(100):
                if agent.benchmark is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
        rep = agent.build_report("start")
        assert rep.benchmark is not None and rep.benchmark.node == "mec1-srv"
        assert rep.benchmark.fp32_gflops > 0

    asyncio.run(go())


def test_agent_nice_option_is_bounded_and_applied(tmp_path: Path) -> None:
    """``nice``: the agent's scheduling priority (a monitoring agent at raised priority
    on the node its site's load saturates); out of range is refused naming the field;
    applied to the process before its threads start (checked in a child process)."""
    import subprocess
    import sys

    p = tmp_path / "agent.yaml"
    p.write_text("site: MEC-1\ncontroller: https://10.0.0.1:8443\ncert: c.pem\nkey: c.key\n"
                 "ca: ca.pem\nnice: -30\n")
    with pytest.raises(ValidationError, match="nice"):
        load_agent_config(p)
    assert _cfg(tmp_path, nice=-5).nice == -5
    out = subprocess.run(
        [sys.executable, "-c", "import os; from telemetry.agent.main import apply_nice; "
         "apply_nice(7); print(os.getpriority(os.PRIO_PROCESS, 0))"],
        capture_output=True, text=True, check=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split()[-1] == "7"
