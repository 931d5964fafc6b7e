"""ExaBGP as a managed subprocess of the controller (issue #3, DESIGN "BGP").

Rules:
- ``render_config`` is pure: ``BgpConfig`` + the forwarder command → ExaBGP config
  text (one ``neighbor`` per peer, JSON encoder, ``receive { parsed; update; }``
  and ``neighbor-changes`` to our API process).
- ``ExaBgpSpeaker`` owns one ExaBGP process and the unix socket its API process
  (``forward.py``) writes to. Bytes read from the socket go to ``on_data``; the
  caller decodes them (sans-I/O decoder). When ExaBGP exits unexpectedly,
  ``on_exit`` is called (the caller marks BGP metrics stale) and the process is
  restarted with exponential backoff (0.5 s doubling to ``restart_max_s``; reset
  after 30 s of stable running). ``stop`` ends it by process group (its pid), never
  by name.
- ExaBGP runs with ``exabgp.daemon.user=root`` (LAB-NOTES), its named-pipe CLI off,
  and listens on ``listen.address:port`` when an address is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from controller.errors import ConnectionError as CpnConnectionError
from controller.logs import key_event
from telemetry.bgp.models import BgpConfig

log = logging.getLogger("cpn.telemetry.bgp")

FORWARDER = Path(__file__).with_name("forward.py")
STABLE_S = 30.0


def render_config(cfg: BgpConfig, process_cmd: str) -> str:
    """The ExaBGP configuration for ``cfg``; ``process_cmd`` is the API process."""
    fams = "".join(f"        {f};\n" for f in cfg.families)
    out = [
        "process cpn-ingest {\n"
        f"    run {process_cmd};\n"
        "    encoder json;\n"
        "}\n",
    ]
    for p in cfg.peers:
        local = f"    local-address {p.local_address};\n" if p.local_address else ""
        if not local and cfg.listen.address is not None \
                and cfg.listen.address.version == p.address.version:
            local = f"    local-address {cfg.listen.address};\n"
        out.append(
            f"neighbor {p.address} {{\n"
            f"    description \"site {p.site}\";\n"
            f"    router-id {cfg.router_id};\n"
            f"{local}"
            f"    local-as {cfg.local_as};\n"
            f"    peer-as {p.peer_as};\n"
            f"    hold-time {cfg.hold_time};\n"
            f"    passive {'true' if p.passive else 'false'};\n"
            f"    family {{\n{fams}    }}\n"
            "    api {\n"
            "        processes [ cpn-ingest ];\n"
            "        receive { parsed; update; }\n"
            "        neighbor-changes;\n"
            "    }\n"
            "}\n")
    return "\n".join(out)


def exabgp_env(cfg: BgpConfig) -> dict[str, str]:
    env = {"exabgp.daemon.user": "root", "exabgp.api.cli": "false",
           "exabgp.log.short": "true", "exabgp.daemon.daemonize": "false"}
    if cfg.listen.address is not None:
        env["exabgp.tcp.bind"] = str(cfg.listen.address)
        env["exabgp.tcp.port"] = str(cfg.listen.port)
    else:
        env["exabgp.tcp.bind"] = ""
    return env


def exabgp_binary(cfg: BgpConfig) -> Path:
    if cfg.exabgp is not None:
        return cfg.exabgp
    return Path(sys.executable).with_name("exabgp")


class ExaBgpSpeaker:
    """One managed ExaBGP process plus the socket its API process reports on."""

    def __init__(self, cfg: BgpConfig, workdir: Path, on_data: Callable[[bytes], None],
                 on_exit: Callable[[int], None] | None = None,
                 wrap: list[str] | None = None) -> None:
        self.cfg = cfg
        self.wrap = list(wrap or [])  # e.g. ["ip", "netns", "exec", NS] in labs
        self.workdir = workdir
        self.on_data = on_data
        self.on_exit = on_exit
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._server: asyncio.AbstractServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sockdir = Path(tempfile.mkdtemp(prefix="cpn-bgp-"))  # short path (108 bytes)
        self.socket_path = self._sockdir / "ingest.sock"
        self.config_path = workdir / "exabgp.conf"
        self.log_path = workdir / "exabgp.log"
        self.running = asyncio.Event()

    async def start(self) -> None:
        binary = exabgp_binary(self.cfg)
        if not binary.exists():
            raise CpnConnectionError(f"exabgp not found at {binary} (set bgp.exabgp)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = f"{sys.executable} {FORWARDER} {self.socket_path}"
        self.config_path.write_text(render_config(self.cfg, cmd))
        self._server = await asyncio.start_unix_server(self._client, path=str(self.socket_path))
        self._task = asyncio.create_task(self._supervise(binary), name="exabgp-supervisor")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                self.on_data(data)
        except Exception:  # a bad consumer must not kill the socket server
            log.exception("bgp ingest failed on data from exabgp")
        finally:
            writer.close()

    async def _spawn(self, binary: Path) -> asyncio.subprocess.Process:
        fh = self.log_path.open("ab")
        try:
            return await asyncio.create_subprocess_exec(
                *self.wrap, str(binary), str(self.config_path), stdin=asyncio.subprocess.DEVNULL,
                stdout=fh, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **exabgp_env(self.cfg)}, start_new_session=True)
        finally:
            fh.close()

    async def _supervise(self, binary: Path) -> None:
        backoff = 0.5
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self.proc = await self._spawn(binary)
            key_event(log, "exabgp started", pid=self.proc.pid, config=str(self.config_path),
                      peers=len(self.cfg.peers))
            self.running.set()
            t0 = loop.time()
            rc = await self.proc.wait()
            self.running.clear()
            if self._stopping:
                return
            self.restarts += 1
            if loop.time() - t0 >= STABLE_S:
                backoff = 0.5
            log.error("exabgp exited with %s; restarting in %.1f s (log %s)", rc, backoff,
                      self.log_path)
            if self.on_exit is not None:
                self.on_exit(rc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.cfg.restart_max_s)

    def kill(self) -> None:
        """Kill the running ExaBGP (tests: crash recovery)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(OSError):
            self.socket_path.unlink()
            self._sockdir.rmdir()
