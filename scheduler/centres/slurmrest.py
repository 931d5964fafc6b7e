"""A small keep-alive client for ``slurmrestd`` (Slurm's REST API, OpenAPI v0.0.38) — the
Slurm backend's fast path for submit, list and cancel (GBA-6.3, GBA-6.5g).

Rules:
- ``url`` is ``unix:/path/to/socket`` or ``http://host:port``. Up to ``size``
  connections stay open and are reused (no process, no TCP/munge set-up per job — a
  submission costs one request on an open connection).
- slurmrestd closes a connection after an error answer: a connection is put back in
  the pool only after a 2xx answer that did not say ``Connection: close``.
- A reused connection that fails before any answer byte arrived (closed while idle)
  is ``Stale``: the caller decides whether resending is safe (GET/DELETE are; a submit
  is first looked up by its key).
- Every answer is JSON; its ``errors`` decide: "unable to contact slurm controller"
  and other signs of a down controller → ``CentreUnavailable``, anything else →
  ``CentreRefused`` with Slurm's words. No answer at all (refused, reset, timeout) →
  ``CentreUnavailable``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from scheduler.centres.base import CentreRefused, CentreUnavailable

API = "/slurm/v0.0.38"
#: signs, in a client's or slurmrestd's words, that slurmctld is not answering
DOWN = ("unable to contact slurm controller", "connect failure", "socket timed out",
        "connection refused", "zero bytes were transmitted", "communication connection",
        "unable to establish", "munge")


class Stale(Exception):
    """A reused connection was closed before the request was answered."""


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class SlurmRest:
    """Connections to one slurmrestd for centre ``site``."""

    def __init__(self, site: str, url: str, *, timeout_s: float = 15.0, size: int = 8) -> None:
        if not (url.startswith("unix:") or url.startswith("http://")):
            raise ValueError(f"slurmrestd address {url!r}: use unix:/path/to/socket or "
                             "http://host:port")
        self.site, self.url, self.timeout_s = site, url, timeout_s
        self.size = size
        self._idle: list[Conn] = []
        self._slots = asyncio.Semaphore(size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests = 0

    def _pool(self) -> None:
        """Connections belong to the event loop that opened them: a new loop (another
        ``asyncio.run``) starts a new pool."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._idle = loop, []
            self._slots = asyncio.Semaphore(self.size)

    async def _open(self) -> Conn:
        try:
            if self.url.startswith("unix:"):
                return await asyncio.wait_for(
                    asyncio.open_unix_connection(self.url[len("unix:"):]), self.timeout_s)
            host, _, port = self.url[len("http://"):].rstrip("/").rpartition(":")
            return await asyncio.wait_for(asyncio.open_connection(host, int(port)),
                                          self.timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise CentreUnavailable(self.site, f"slurmrestd at {self.url} cannot be "
                                    f"reached: {exc or type(exc).__name__}") from exc

    async def call(self, method: str, path: str, body: Any = None, *,
                   retry: bool = False) -> dict[str, Any]:
        """One request; ``retry`` resends once on a fresh connection when a reused one
        turned out closed (only for requests that are safe to repeat)."""
        try:
            return await self._call(method, path, body)
        except Stale:
            if not retry:
                raise
            return await self._call(method, path, body, fresh=True)

    async def _call(self, method: str, path: str, body: Any, fresh: bool = False
                    ) -> dict[str, Any]:
        self._pool()
        async with self._slots:
            reused = bool(self._idle) and not fresh
            conn = self._idle.pop() if reused else await self._open()
            try:
                status, keep, data = await asyncio.wait_for(
                    self._exchange(conn, method, path, body), self.timeout_s)
            except TimeoutError:
                conn[1].close()
                raise CentreUnavailable(self.site, f"slurmrestd gave no answer to {method} "
                                        f"{path} in {self.timeout_s:g} s") from None
            except Stale:
                conn[1].close()
                if reused:
                    raise
                raise CentreUnavailable(self.site, f"slurmrestd closed the connection on "
                                        f"{method} {path}") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                conn[1].close()
                raise CentreUnavailable(self.site, f"slurmrestd {method} {path}: "
                                        f"{exc or type(exc).__name__}") from exc
            if keep and 200 <= status < 300:
                self._idle.append(conn)
            else:
                conn[1].close()
        self.requests += 1
        return self._doc(method, path, status, data)

    async def _exchange(self, conn: Conn, method: str, path: str, body: Any
                        ) -> tuple[int, bool, bytes]:
        reader, writer = conn
        payload = b"" if body is None else json.dumps(body).encode()
        try:
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: slurmrestd\r\n"
                         f"Accept: application/json\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise Stale(str(exc)) from exc
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise Stale("closed before answering") from exc
            raise
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError) as exc:
            raise asyncio.IncompleteReadError(head, None) from exc
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (ln.partition(":") for ln in lines[1:] if ln)}
        keep = headers.get("connection", "").lower() != "close"
        if "content-length" in headers:
            data = await reader.readexactly(int(headers["content-length"]))
        else:  # no length: the answer ends with the connection
            data = await reader.read()
            keep = False
        return status, keep, data

    def _doc(self, method: str, path: str, status: int, data: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(data) if data else {}
        except json.JSONDecodeError as exc:
            raise CentreUnavailable(self.site, f"slurmrestd {method} {path} answered "
                                    f"HTTP {status} with bad JSON: {exc}") from exc
        errors = [e for e in (doc.get("errors") or []) if isinstance(e, dict)]
        if errors or status >= 400:
            text = "; ".join(str(e.get("error") or e.get("description") or e)
                             for e in errors) or f"HTTP {status}"
            if any(s in text.lower() for s in DOWN):
                raise CentreUnavailable(self.site, f"slurmrestd {method} {path}: {text}")
            raise CentreRefused(self.site, f"slurmrestd {method} {path}: {text}")
        return dict(doc)

    async def close(self) -> None:
        while self._idle:
            _, w = self._idle.pop()
            w.close()
