"""Network-namespace labs: namespaces, veth links, processes — always cleaned up.

Rules:
- A ``Lab`` owns everything it creates: namespaces (named with a per-lab prefix so
  parallel runs never collide), veth pairs (deleted with their namespace) and
  processes (stopped by pid, never by name). ``close()`` runs on every exit path
  (use ``with Lab(...) as lab:``) and is idempotent.
- Traffic stays inside namespaces this lab created.
- Remember the sandbox rule (LAB-NOTES): TCP from the root namespace into a
  namespace is refused, so put every TCP peer inside a namespace.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

_counter = itertools.count()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class LabError(RuntimeError):
    """A lab step failed; the message says which and why."""


class Ns:
    """One network namespace."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab = lab
        self.name = name

    def argv(self, cmd: Sequence[str] | str) -> list[str]:
        args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, cmd: Sequence[str] | str, *, check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(self.argv(cmd), capture_output=True, text=True, timeout=timeout,
                             input=input)
        if check and res.returncode != 0:
            raise LabError(f"[{self.name}] {cmd!r} failed ({res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()}")
        return res

    def popen(self, cmd: Sequence[str] | str, *, name: str | None = None,
              log: Path | None = None, env: dict[str, str] | None = None,
              stdin: int | IO[Any] | None = subprocess.DEVNULL,
              stdout: int | IO[Any] | None = None) -> subprocess.Popen[bytes]:
        """Start a process in this namespace; the lab stops it (by pid) on close."""
        return self.lab.popen(self.argv(cmd), name=name or f"{self.name}:{cmd!s:.40}", log=log,
                              env=env, stdin=stdin, stdout=stdout)

    def address(self, dev: str, addrs: Sequence[str]) -> None:
        """Add ``addrs`` (IPv4/IPv6 prefixes; IPv6 without DAD) to ``dev`` and set it up."""
        for addr in addrs:
            cmd = ["ip", "-6" if ":" in addr else "-4", "addr", "add", addr, "dev", dev]
            self.run([*cmd, "nodad"] if ":" in addr else cmd)
        self.run(["ip", "link", "set", "dev", dev, "up"])

    def sysctl(self, key: str, value: str | int) -> None:
        self.run(["sysctl", "-qw", f"{key}={value}"])

    def enable_forwarding(self, srv6: bool = False) -> None:
        self.sysctl("net.ipv4.ip_forward", 1)
        self.sysctl("net.ipv6.conf.all.forwarding", 1)
        if srv6:
            self.sysctl("net.ipv6.conf.all.seg6_enabled", 1)
            self.sysctl("net.ipv6.conf.default.seg6_enabled", 1)
        self.run("ip link set lo up")

    def __repr__(self) -> str:
        return f"Ns({self.name})"


class Lab:
    """A set of namespaces, links and processes torn down together."""

    def __init__(self, tag: str = "lab", workdir: Path | None = None) -> None:
        # short: interface and namespace names are limited (IFNAMSIZ 16)
        self.prefix = f"c{os.getpid() % 10000}{next(_counter)}{tag[:4]}"
        self.namespaces: list[Ns] = []
        self.procs: list[tuple[str, subprocess.Popen[bytes], IO[Any] | None]] = []
        self.workdir = workdir
        self._closed = False
        self._on_close: list[Any] = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def ns(self, short: str) -> Ns:
        name = f"{self.prefix}-{short}"
        _ip("netns", "add", name)
        return self._own(name)

    def attach(self, short: str, pid: int) -> Ns:
        """Name the network namespace of process ``pid`` (e.g. a Mininet host) as one of
        this lab's namespaces; ``close`` removes the name."""
        name = f"{self.prefix}-{short}"
        res = _ip("netns", "attach", name, str(pid), check=False)
        if res.returncode != 0:
            raise LabError(f"cannot attach the namespace of pid {pid} as {name}: "
                           f"{res.stderr.strip()}")
        return self._own(name)

    def _own(self, name: str) -> Ns:
        ns = Ns(self, name)
        self.namespaces.append(ns)
        ns.run("ip link set lo up")
        # No duplicate address detection in lab namespaces: otherwise link-local
        # addresses stay tentative ~1 s after a link comes up and the first packets of
        # a test race neighbour discovery. Set before addresses are added.
        for scope in ("default", "all"):
            ns.run(["sysctl", "-qw", f"net.ipv6.conf.{scope}.accept_dad=0"], check=False)
        return ns

    def on_close(self, fn: Any) -> None:
        """Call ``fn()`` on close, after this lab's processes stop and before its
        namespaces are deleted (e.g. stopping a Mininet network)."""
        self._on_close.append(fn)

    def link(self, a: Ns, b: Ns, a_if: str, b_if: str, a_addrs: Sequence[str] = (),
             b_addrs: Sequence[str] = (), mtu: int | None = None) -> None:
        """A veth pair between two namespaces, addressed and up."""
        # Both temporary names carry the whole pid (≤ 7 digits): two processes building
        # labs at once must never race for the same root-namespace name (IFNAMSIZ 15).
        n = next(_counter) % 1000
        tmp_a, tmp_b = f"v{n}a{os.getpid()}", f"v{n}b{os.getpid()}"
        _ip("link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        try:
            _ip("link", "set", tmp_a, "netns", a.name)
            _ip("link", "set", tmp_b, "netns", b.name)
        except subprocess.CalledProcessError as exc:
            _ip("link", "del", tmp_a, check=False)
            raise LabError(f"cannot move veth into namespaces: {exc.stderr}") from exc
        for ns, tmp, final, addrs in ((a, tmp_a, a_if, a_addrs), (b, tmp_b, b_if, b_addrs)):
            ns.run(["ip", "link", "set", "dev", tmp, "name", final])
            if mtu:
                ns.run(["ip", "link", "set", "dev", final, "mtu", str(mtu)])
            ns.address(final, addrs)

    def popen(self, argv: Sequence[str], *, name: str, log: Path | None = None,
              env: dict[str, str] | None = None, stdin: int | IO[Any] | None = None,
              stdout: int | IO[Any] | None = None) -> subprocess.Popen[bytes]:
        fh: IO[Any] | None = None
        if log is not None and stdout is None:
            log.parent.mkdir(parents=True, exist_ok=True)
            fh = log.open("ab")
        proc = subprocess.Popen(
            list(argv), stdin=stdin,
            stdout=stdout if stdout is not None else (fh or subprocess.DEVNULL),
            stderr=subprocess.STDOUT if (fh or stdout is not None) else subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, start_new_session=True)
        self.procs.append((name, proc, fh))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 3.0) -> None:
        """Stop one of our processes: SIGTERM to its process group, then SIGKILL."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _, proc, fh in reversed(self.procs):
            with contextlib.suppress(Exception):
                self.stop(proc)
            if fh is not None:
                fh.close()
        for fn in reversed(self._on_close):
            with contextlib.suppress(Exception):
                fn()
        for ns in reversed(self.namespaces):
            # processes we did not start ourselves (e.g. children re-parented) in the ns
            pids = _ip("netns", "pids", ns.name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", ns.name, check=False)
        self.namespaces.clear()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for lab daemons listening on loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate()`` until truthy; raise ``LabError`` naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
