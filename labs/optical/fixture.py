"""A lab optical network: N netconfd NEs (ring + chords), base config, behaviour agents.

Rules:
- ``OpticalLab`` owns its NEs and agents and stops them by pid in ``close()`` (always
  runs: use ``with OpticalLab(...) as lab``). Everything listens on 127.0.0.1 only.
- Base config (links, degrees, transceivers, add/drop ports) is pushed over NETCONF;
  from then on the NEs are driven only through NETCONF and the agents' stdin.
- Topology: ring ne0..ne{N-1}; chords ne{i}-ne{i+N/2} for even i; the span ne0-ne1 has a
  second, SRLG-diverse fiber ``f0-1p`` forming an OMSP 1+1 pair with ``f0-1``.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from labs.optical.ne import LabNe, make_keys
from optical.codec import render_base
from optical.models import Fiber, NeConfig, NeLink, ProtectionGroup
from optical.netconf import NetconfDevice

ROOT = Path(__file__).resolve().parents[2]


def ring_fibers(n: int) -> list[Fiber]:
    out = [Fiber(f"f{i}-{(i + 1) % n}", f"ne{i}", f"ne{(i + 1) % n}", 40.0 + 10 * i,
                 srlgs=(f"duct-{i}",)) for i in range(n)]
    out += [Fiber(f"f{i}-{i + n // 2}", f"ne{i}", f"ne{i + n // 2}", 120.0,
                  srlgs=(f"duct-c{i}",)) for i in range(0, n // 2, 2)]
    out.append(Fiber("f0-1p", "ne0", "ne1", 55.0, srlgs=("duct-p0",), protect_of="f0-1"))
    return out


def ne_config(ne: str, fibers: list[Fiber], wtr_ms: int = 1000) -> NeConfig:
    mine = [f for f in fibers if ne in (f.a, f.b)]
    return NeConfig(
        name=ne,
        degrees={i + 1: f.id for i, f in enumerate(mine)},
        add_drop={f"p{i}": f"trx{i}" for i in range(1, 5)},
        links={f.id: NeLink(f.id, f.other(ne), f.length_km, f.attenuation_db_per_km,
                            f.delay, f.srlgs) for f in mine},
        transceivers={f"trx{i}": ("rate-100G", "rate-400G")[i % 2] for i in range(1, 5)},
        groups={f"omsp-{f.protect_of}": ProtectionGroup(
            f"omsp-{f.protect_of}", f.protect_of, f.id, wait_to_restore_ms=wtr_ms)
            for f in mine if f.protect_of})


class OpticalLab:
    def __init__(self, n: int = 6, base: Path | None = None) -> None:
        self.n = n
        self.base = base or Path(tempfile.mkdtemp(prefix="cpn-optlab-"))
        self.key, self.host_key = make_keys(self.base)
        self.fibers = ring_fibers(n)
        self.nes = [LabNe(f"ne{i}", self.base, self.key, self.host_key) for i in range(n)]
        self.agents: dict[str, subprocess.Popen[str]] = {}

    def __enter__(self) -> OpticalLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        for ne in self.nes:
            ne.start()
        for ne in self.nes:
            ne.wait_ready()
            self._push_base(ne)
        for ne in self.nes:
            self.agents[ne.name] = subprocess.Popen(
                [sys.executable, "-m", "labs.optical.agent", "--name", ne.name,
                 "--port", str(ne.port), "--key", str(self.key)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=open(ne.dir / "agent.log", "w"),  # noqa: SIM115 - closed with the proc
                text=True, bufsize=1, start_new_session=True,
                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        for name in self.agents:
            self._expect(name, "ok ready", 20)

    def _push_base(self, ne: LabNe) -> None:
        from ncclient import manager
        with manager.connect(host="127.0.0.1", port=ne.port, username="root",
                             key_filename=str(self.key), hostkey_verify=False,
                             allow_agent=False, look_for_keys=False, timeout=10) as m:
            m.edit_config(target="candidate", config=render_base(ne_config(ne.name, self.fibers)))
            m.commit()

    def device(self, name: str) -> NetconfDevice:
        ne = next(n for n in self.nes if n.name == name)
        return NetconfDevice(name, "127.0.0.1", ne.port, "root", str(self.key))

    def devices(self) -> dict[str, NetconfDevice]:
        return {ne.name: self.device(ne.name) for ne in self.nes}

    def _expect(self, name: str, prefix: str, timeout: float = 10) -> str:
        proc = self.agents[name]
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], 0.1)
            if r:
                line = proc.stdout.readline().strip()
                if line.startswith(prefix):
                    return line
                if line.startswith("err") and prefix.startswith("ok"):
                    raise RuntimeError(f"agent {name}: {line}")
            if proc.poll() is not None:
                raise RuntimeError(f"agent {name} exited, see {self.base / name / 'agent.log'}")
        raise TimeoutError(f"agent {name}: no {prefix!r} within {timeout}s")

    def command(self, name: str, cmd: str, timeout: float = 10) -> None:
        proc = self.agents[name]
        assert proc.stdin is not None
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()
        self._expect(name, f"ok {cmd}", timeout)

    def cut(self, fiber: str) -> None:
        """Cut fiber ``fiber``: both end NEs see LOS."""
        f = next(x for x in self.fibers if x.id == fiber)
        for ne in (f.a, f.b):
            self.command(ne, f"cut {fiber}")

    def repair(self, fiber: str) -> None:
        f = next(x for x in self.fibers if x.id == fiber)
        for ne in (f.a, f.b):
            self.command(ne, f"repair {fiber}")

    def close(self) -> None:
        for proc in self.agents.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        for proc in self.agents.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.agents.clear()
        for ne in self.nes:
            ne.stop()
        if not os.environ.get("CPN_KEEP_LAB"):
            shutil.rmtree(self.base, ignore_errors=True)
