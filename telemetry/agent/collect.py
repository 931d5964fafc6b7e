"""Agent collectors: acquisition commands (WP-3.1.3) and built-ins (GBA-6.3).

Rules:
- ``parse_acquisition`` is sans-I/O and strict: the output must be exactly one
  non-empty line ``VALUE [key=value …]``; VALUE a finite number, each key a name.
  Anything else raises ``ValidationError`` naming what was wrong; the caller logs it
  and keeps the previous value.
- ``run_acquisition`` runs the command through ``/bin/sh -c`` in its own process
  group and kills the whole group when it outlives its interval (a hanging command
  never piles up).
- Built-ins read ``/proc/stat`` (CPU % since the previous read), ``/proc/meminfo``
  (used %), ``/proc/loadavg`` (1-min load), ``nvidia-smi`` (free GPUs: util < 10 %)
  when installed, RAPL ``/sys/class/powercap/intel-rapl:*/energy_uj`` (W since the
  previous read) when present. Each returns ``None`` when unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from controller.errors import ValidationError

log = logging.getLogger("cpn.telemetry.agent")

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_OUTPUT = 4096


def _num(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def parse_acquisition(out: bytes) -> tuple[float, dict[str, str | float]]:
    """``b"42.5 temp=61 state=ok\\n"`` → ``(42.5, {"temp": 61.0, "state": "ok"})``."""
    try:
        text = out.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError.single("output", "not UTF-8 text") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise ValidationError.single("output", f"expected one line '[value] [key=value …]', "
                                     f"got {len(lines)} lines")
    first, *rest = lines[0].split()
    value = _num(first)
    if value is None:
        raise ValidationError.single("output.value", f"not a finite number: {first[:40]!r}")
    ext: dict[str, str | float] = {}
    for tok in rest:
        k, sep, v = tok.partition("=")
        if not sep or not _KEY.match(k) or not v:
            raise ValidationError.single("output.extended", f"expected key=value, got "
                                         f"{tok[:40]!r}")
        n = _num(v)
        ext[k] = n if n is not None else v
    return value, ext


async def run_acquisition(cmd: str, timeout_s: float) -> bytes:
    """Run ``cmd``; kill its process group after ``timeout_s``. Raises ``ValidationError``
    on timeout or non-zero exit."""
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", cmd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise ValidationError.single("command", f"still running after {timeout_s:g}s; killed "
                                     f"(pid {proc.pid})") from None
    if proc.returncode != 0:
        raise ValidationError.single("command", f"exited with status {proc.returncode}")
    return out[:MAX_OUTPUT]


@dataclass
class ProcCollector:
    """CPU %, memory %, load from /proc; energy from RAPL. Keeps previous counters."""

    proc: Path = Path("/proc")
    powercap: Path = Path("/sys/class/powercap")
    _cpu: tuple[int, int] | None = None
    _rapl: tuple[float, int] | None = None
    _gpu_checked: bool = False
    _nvidia: str | None = field(default=None)

    def cpu_pct(self) -> float | None:
        try:
            parts = (self.proc / "stat").read_text().split("\n", 1)[0].split()
        except OSError:
            return None
        vals = [int(x) for x in parts[1:]]
        idle, total = vals[3] + (vals[4] if len(vals) > 4 else 0), sum(vals)
        prev, self._cpu = self._cpu, (idle, total)
        if prev is None or total == prev[1]:
            return None
        return round(100.0 * (1 - (idle - prev[0]) / (total - prev[1])), 2)

    def mem_pct(self) -> float | None:
        try:
            info = dict(ln.split(":", 1) for ln in (self.proc / "meminfo").read_text()
                        .splitlines() if ":" in ln)
            total = float(info["MemTotal"].split()[0])
            avail = float(info["MemAvailable"].split()[0])
        except (OSError, KeyError, ValueError):
            return None
        return round(100.0 * (1 - avail / total), 2) if total > 0 else None

    def load1(self) -> float | None:
        try:
            return float((self.proc / "loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def energy_w(self) -> float | None:
        zones = sorted(self.powercap.glob("intel-rapl:*/energy_uj")) if \
            self.powercap.exists() else []
        zones = [z for z in zones if z.parent.name.count(":") == 1]  # packages only
        if not zones:
            return None
        try:
            uj = sum(int(z.read_text()) for z in zones)
        except (OSError, ValueError):
            return None
        now = time.monotonic()
        prev, self._rapl = self._rapl, (now, uj)
        if prev is None or now <= prev[0] or uj < prev[1]:  # first read or wrap
            return None
        return round((uj - prev[1]) / 1e6 / (now - prev[0]), 2)

    async def gpu_free(self) -> float | None:
        if not self._gpu_checked:
            self._gpu_checked, self._nvidia = True, shutil.which("nvidia-smi")
        if self._nvidia is None:
            return None
        try:
            out = await run_acquisition(f"{self._nvidia} --query-gpu=utilization.gpu "
                                        "--format=csv,noheader,nounits", 5.0)
        except ValidationError as exc:
            log.warning("nvidia-smi failed: %s", exc)
            return None
        utils = [_num(x.strip()) for x in out.decode(errors="replace").splitlines() if x.strip()]
        return float(sum(1 for u in utils if u is not None and u < 10))
