"""One lab network element: a netconfd (yuma123) behind its own OpenSSH sshd.

Rules:
- Each NE gets its own directory (HOME for netconfd's txid file, unix socket, sshd
  config, host key, logs) and its own TCP port on 127.0.0.1; netconfd's ``--port``
  equals the SSH port (LAB-NOTES: otherwise sessions are refused "access denied").
- Key auth only; the client key pair is shared by the lab and lives in the lab dir.
- Processes are started by this object and stopped by pid, never by name.
- A router NE may run netconfd inside a network namespace (``netns``): it then serves
  that namespace's interfaces, while sshd stays on 127.0.0.1 in the root namespace and
  reaches netconfd through its unix socket (TCP into a namespace is refused here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from labs.netns import free_port

YANG = Path(__file__).resolve().parents[2] / "optical" / "yang" / "cpn-optical-device.yang"
BIN = Path(__file__).resolve().parent / "bin"
#: netconfd flags for a router NE serving real Linux interface state (yuma123's
#: ietf-interfaces SIL needs NMDA, the 2018 modules and our get-interface-ipv4 helper).
IF_MODULES = ("ietf-interfaces", "ietf-ip")
IF_ARGS = ("--with-nmda=true", "--modpath=/usr/share/yuma/nmda-modules:/usr/share/yuma/modules")
IF_ENV = {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin"}
NETCONFD = "/usr/sbin/netconfd"
SUBSYSTEM = "/usr/sbin/netconf-subsystem"
SSHD = "/usr/sbin/sshd"


class NeError(RuntimeError):
    """A lab NE failed to start; the message names the NE and the log."""



def make_keys(d: Path) -> tuple[Path, Path]:
    """(client private key, host key) — ed25519, generated once per lab dir."""
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("client_key", "host_key"):
        p = d / name
        if not p.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(p)],
                           check=True, capture_output=True)
        out.append(p)
    return out[0], out[1]


@dataclass
class LabNe:
    """A running (or stopped) lab NE; ``modules`` are extra ``--module`` values."""

    name: str
    base: Path
    client_key: Path
    host_key: Path
    port: int = 0
    modules: tuple[str, ...] = (str(YANG),)
    args: tuple[str, ...] = ()
    netns: str | None = None  # run netconfd inside this namespace (sshd stays on loopback)
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return self.base / self.name

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / ".yuma").mkdir(exist_ok=True)
        (Path("/run/sshd")).mkdir(exist_ok=True)
        self.port = self.port or free_port()
        sock = self.dir / "ncx.sock"
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        argv = [NETCONFD, *(f"--module={m}" for m in self.modules), "--no-startup",
                "--superuser=root", f"--port={self.port}", f"--ncxserver-sockname={sock}",
                f"--log={self.dir / 'netconfd.log'}", "--log-level=info",
                "--target=candidate", "--with-validate=true", *self.args]
        env = dict(os.environ, HOME=str(self.dir), **self.env)
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self.procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, start_new_session=True))
        (self.dir / "authorized_keys").write_text(
            Path(str(self.client_key) + ".pub").read_text())
        cfg = self.dir / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}", "UsePAM no", "StrictModes no",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            f'Subsystem netconf "{SUBSYSTEM} --ncxserver-sockname={self.port}@{sock}"',
            "LogLevel ERROR", ""]))
        deadline = time.monotonic() + 10
        while not sock.exists():
            if self.procs[0].poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise NeError(f"NE {self.name}: netconfd did not start, see "
                              f"{self.dir / 'netconfd.log'}")
            time.sleep(0.02)
        self.procs.append(subprocess.Popen(
            [SSHD, "-D", "-f", str(cfg), "-E", str(self.dir / "sshd.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

    def wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return
            if time.monotonic() > deadline:
                raise NeError(f"NE {self.name}: sshd not answering on port {self.port}, "
                              f"see {self.dir / 'sshd.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self.procs.clear()
