"""Run a real Knot DNS (``knotd``) as primary or secondary for labs, tests and benches.

Rules:
- Everything lives under one work directory (config, rundir, storage, zone file,
  journal); listens on 127.0.0.1 on the port given; never touches the system Knot.
- Primary: serves the zone from a minimal zone file (SOA, NS, ns A), accepts RFC 2136
  UPDATE and AXFR/IXFR signed with the TSIG key (hmac-sha256 by default), NOTIFYs the
  listed secondaries, keeps a journal so secondaries can pull IXFR.
- Secondary: pulls from its primary, accepts NOTIFY from 127.0.0.1.
- ``stop()`` terminates the one process it started, by pid, then waits for it.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from controller.errors import ConnectionError


def knotd_path() -> str | None:
    return shutil.which("knotd") or ("/usr/sbin/knotd" if Path("/usr/sbin/knotd").exists()
                                     else None)


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise ConnectionError("no free port on 127.0.0.1")


def new_secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class KnotServer:
    """One ``knotd``: ``workdir``, ``port``, ``zone``; ``primary`` = (host, port) makes it
    a secondary; ``notify`` = ports of secondaries on 127.0.0.1."""

    workdir: Path
    port: int
    zone: str = "cpn.example"
    key_name: str = "cpn-update"
    secret: str = field(default_factory=new_secret)
    primary: tuple[str, int] | None = None
    notify: list[int] = field(default_factory=list)
    udp_workers: int = 1
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "knotd.log"

    def config(self) -> str:
        w = self.workdir
        lines = [
            "server:",
            f'    rundir: "{w}/run"',
            f"    listen: 127.0.0.1@{self.port}",
            f"    udp-workers: {self.udp_workers}",
            "    tcp-workers: 1",
            "    background-workers: 1",
            "database:",
            f'    storage: "{w}/db"',
            "log:",
            "  - target: stderr",
            "    any: info",
            "key:",
            f"  - id: {self.key_name}",
            "    algorithm: hmac-sha256",
            f"    secret: {self.secret}",
            "remote:",
        ]
        remotes = []
        if self.primary:
            lines += ["  - id: primary", f"    address: {self.primary[0]}@{self.primary[1]}"]
        for i, port in enumerate(self.notify):
            lines += [f"  - id: secondary{i}", f"    address: 127.0.0.1@{port}"]
            remotes.append(f"secondary{i}")
        if not self.primary and not self.notify:
            lines.pop()  # no remotes at all
        lines += [
            "acl:",
            "  - id: cpn_update",
            f"    key: {self.key_name}",
            "    action: [update, transfer]",
            "  - id: local_xfr",
            "    address: 127.0.0.1",
            "    action: [transfer, notify]",
            "template:",
            "  - id: default",
            f'    storage: "{w}/zones"',
            '    file: "%s.zone"',
            "zone:",
            f"  - domain: {self.zone}",
            "    acl: [cpn_update, local_xfr]",
            "    zonefile-sync: -1",
            "    serial-policy: increment",
        ]
        if self.primary:
            lines.append("    master: primary")
        if remotes:
            lines.append(f"    notify: [{', '.join(remotes)}]")
        return "\n".join(lines) + "\n"

    def zonefile(self) -> str:
        z = self.zone.rstrip(".") + "."
        return (f"$ORIGIN {z}\n$TTL 60\n@ SOA ns.{z} hostmaster.{z} 1 3600 600 86400 5\n"
                f"@ NS ns.{z}\nns A 127.0.0.1\n")

    def start(self, timeout: float = 10.0) -> KnotServer:
        exe = knotd_path()
        if exe is None:
            raise ConnectionError("knotd not found (apt-get install knot)")
        for sub in ("run", "db", "zones"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "knot.conf"
        conf.write_text(self.config())
        if not self.primary:
            (self.workdir / "zones" / f"{self.zone.rstrip('.')}.zone").write_text(
                self.zonefile())
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child's lifetime
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConnectionError(f"knotd exited with {self.proc.returncode}; see "
                                      f"{self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            if self.serial() is not None:
                return self
            time.sleep(0.05)
        self.stop()
        raise ConnectionError(f"knotd on 127.0.0.1:{self.port} did not answer within "
                              f"{timeout}s; see {self.log_path}")

    def serial(self) -> int | None:
        """The served SOA serial, or None when not (yet) answering."""
        q = dns.message.make_query(self.zone.rstrip(".") + ".", dns.rdatatype.SOA)
        try:
            r = dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.3)
        except (OSError, dns.exception.DNSException):
            return None
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        return None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> KnotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()



