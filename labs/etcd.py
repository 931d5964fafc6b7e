"""A real etcd cluster for tests and labs (Debian ``etcd-server`` 3.4, ``/usr/bin/etcd``).

Rules:
- Every member listens on free loopback ports (client + peer; below the ephemeral
  range, so a stopped member gets its ports back), keeps its data in a
  temp dir, and is stopped by its own pid — never by name. ``close()`` removes all.
- ``client_hosts`` lets a member also listen on extra loopback addresses (127.x.y.z,
  same port): the HA lab gives each controller its own address so one controller can
  be cut off from etcd by an nftables rule without touching the others.
- Short raft timers (heartbeat 50 ms, election 500 ms) so a lost etcd leader is
  replaced in well under a second on loopback; ``--max-txn-ops 4096`` so applying a
  whole network config is one transaction. Everything else is etcd's default
  (the store must work against a stock cluster).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from labs.netns import LabError

#: etcd's ports are taken below the kernel's ephemeral range (32768–60999): a member
#: stopped by a lab must get its port back, and an ephemeral one can be grabbed as a
#: source port by any connection on the host while the member is down
PORTS = (20000, 32000)


def quiet_port() -> int:
    """A free loopback TCP port outside the ephemeral range."""
    import random
    import socket

    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(*PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise LabError(f"no free port in {PORTS[0]}–{PORTS[1]}")

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def have_etcd() -> bool:
    return Path(ETCD).exists()


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class EtcdCluster:
    """``size`` members on loopback. ``start()``, ``stop_member(i)``, ``start_member(i)``."""

    size: int = 1
    client_hosts: tuple[str, ...] = ()
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cpn-etcd-")))
    members: list[Member] = field(default_factory=list)
    token: str = field(default_factory=lambda: f"cpn-{os.getpid()}-{time.time_ns()}")

    def __post_init__(self) -> None:
        for i in range(self.size):
            self.members.append(Member(f"m{i}", quiet_port(), quiet_port(),
                                       self.root / f"m{i}", self.root / f"m{i}.log"))

    def endpoints(self, host: str = "127.0.0.1") -> str:
        return ",".join(f"{host}:{m.client_port}" for m in self.members)

    def url(self, prefix: str = "/cpn", host: str = "127.0.0.1") -> str:
        return f"etcd://{self.endpoints(host)}{prefix}"

    def _argv(self, m: Member, state: str) -> list[str]:
        hosts = ("127.0.0.1", *self.client_hosts)
        initial = ",".join(f"{x.name}=http://127.0.0.1:{x.peer_port}" for x in self.members)
        return [
            ETCD, "--name", m.name, "--data-dir", str(m.data),
            "--listen-client-urls", ",".join(f"http://{h}:{m.client_port}" for h in hosts),
            "--advertise-client-urls", f"http://127.0.0.1:{m.client_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-cluster", initial, "--initial-cluster-state", state,
            "--initial-cluster-token", self.token,
            "--heartbeat-interval", "50", "--election-timeout", "500",
            "--max-txn-ops", "4096",
            "--auto-compaction-mode", "revision", "--auto-compaction-retention", "100000",
            "--quota-backend-bytes", str(1 << 30), "--logger", "zap", "--log-outputs",
            str(m.log),
        ]

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        """Start every member; on failure stop what started (and remove the data)."""
        try:
            return self._start(timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, timeout: float) -> EtcdCluster:
        for attempt in range(3):
            for m in self.members:
                self._spawn(m, "new")
            try:
                self.wait_healthy(timeout)
                return self
            except LabError as exc:
                # a port taken between choosing and binding it (a busy host): new ports
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                for i, m in enumerate(self.members):
                    self.stop_member(i, signal.SIGKILL)
                    shutil.rmtree(m.data, ignore_errors=True)
                    m.client_port, m.peer_port = quiet_port(), quiet_port()
        return self

    def _spawn(self, m: Member, state: str) -> None:
        m.data.mkdir(parents=True, exist_ok=True)
        m.proc = subprocess.Popen(self._argv(m, state), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_healthy(self, timeout: float = 20.0, members: list[Member] | None = None) -> None:
        import socket

        deadline = time.monotonic() + timeout
        for m in members or self.members:
            while True:
                if m.proc is not None and m.proc.poll() is not None:
                    tail = m.log.read_text()[-600:] if m.log.exists() else ""
                    raise LabError(f"etcd member {m.name} exited ({m.proc.returncode}): "
                                   f"{tail}")
                try:
                    with socket.create_connection(("127.0.0.1", m.client_port), 0.2):
                        pass
                    r = subprocess.run(
                        ["etcdctl", "--endpoints", f"127.0.0.1:{m.client_port}",
                         "--command-timeout=1s", "endpoint", "health"],
                        capture_output=True, text=True, timeout=5,
                        env={**os.environ, "ETCDCTL_API": "3"})
                    if r.returncode == 0:
                        break
                except (OSError, subprocess.TimeoutExpired):
                    pass
                if time.monotonic() > deadline:
                    raise LabError(f"etcd member {m.name} not healthy after {timeout:g}s "
                                   f"(log {m.log})")
                time.sleep(0.1)

    def stop_member(self, i: int, sig: int = signal.SIGTERM) -> None:
        m = self.members[i]
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(sig)
            try:
                m.proc.wait(10)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(5)

    def start_member(self, i: int, timeout: float = 20.0) -> None:
        m = self.members[i]
        self._spawn(m, "existing")
        self.wait_healthy(timeout, [m])

    def close(self) -> None:
        for i in range(len(self.members)):
            try:
                self.stop_member(i, signal.SIGKILL)
            except Exception:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
