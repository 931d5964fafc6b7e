"""etcd v3 RPC plumbing of the etcd store: the store URL, the private event loop, and
unary calls (range, txn) that turn gRPC failures into our errors.

Rules:
- aetcd 1.0 is the client (asyncio, grpc.aio): its channel and stubs carry every
  call; requests are built from its protobuf messages because the high-level calls
  hide what the store needs (the txn's commit revision, ranges at a revision,
  one watch response per revision). All etcd I/O runs on a private event loop in a
  thread, so the ``Store`` API stays synchronous like the SQLite backend.
- A refusal (bad argument, too many txn ops) is a ``StoreError`` naming the fix; any
  other failure is ``StoreUnavailable`` (retry later). Only idempotent requests are
  sent again while etcd says UNAVAILABLE.
- Every response header's revision raises ``cluster_rev`` (how far the cluster is).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, TypeVar

from controller.store.base import StoreError, StoreUnavailable

T = TypeVar("T")

PAGE = 1000


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Parsed ``etcd://h:p,h:p/prefix``: ``hosts`` [(ip, port)], ``prefix``."""

    hosts: tuple[tuple[str, int], ...]
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoints:
        rest = url.removeprefix("etcd://")
        hostpart, _, prefix = rest.partition("/")
        hosts: list[tuple[str, int]] = []
        for item in filter(None, hostpart.split(",")):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise StoreError(f"store URL {url!r}: {item!r} is not HOST:PORT; use "
                                 "etcd://127.0.0.1:2379,127.0.0.1:22379")
            host = host.strip("[]")
            try:
                ip_address(host)
            except ValueError:
                try:
                    host = str(socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0])
                except OSError as exc:
                    raise StoreError(f"store URL {url!r}: cannot resolve {host!r}: "
                                     f"{exc}") from exc
            hosts.append((host, int(port)))
        if not hosts:
            raise StoreError(f"store URL {url!r} names no etcd member; use "
                             "etcd://127.0.0.1:2379")
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else "/cpn"
        return cls(tuple(hosts), prefix)

    def target(self) -> tuple[str, int]:
        """A gRPC multi-address target (``ipv4:a:p,b:p,c`` + port of the last): the
        channel fails over between members by itself."""
        v6 = any(":" in h for h, _ in self.hosts)
        *head, (last_host, last_port) = self.hosts
        parts = [f"[{h}]:{p}" if v6 else f"{h}:{p}" for h, p in head]
        parts.append(f"[{last_host}]" if v6 else last_host)
        return f"{'ipv6' if v6 else 'ipv4'}:{','.join(parts)}", last_port

    def url(self) -> str:
        return "etcd://" + ",".join(f"{h}:{p}" for h, p in self.hosts) + self.prefix


def _range_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


class EtcdRpc:
    """The calls the etcd store makes (base of ``EtcdStore``); the store sets the
    attributes below in its ``__init__``."""

    url: str
    timeout_s: float
    client: Any
    cluster_rev: int
    _p: bytes
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the store's loop and wait for it (never from that loop)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("EtcdStore.run called from its own loop")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout if timeout is not None else self.timeout_s + 1)
        except TimeoutError as exc:
            fut.cancel()
            raise StoreUnavailable(f"etcd {self.url} did not answer in time; check the "
                                   "members are up and have quorum") from exc

    def key(self, *parts: str) -> bytes:
        return self._p + b"/" + "/".join(parts).encode()

    async def call(self, stub: str, method: str, request: Any,
                   timeout: float | None = None, *, retry: bool = False) -> Any:
        """One unary RPC; connection errors become ``StoreUnavailable``. ``retry``: an
        idempotent request is sent again while etcd says UNAVAILABLE (a member lost, an
        etcd leader change), until ``timeout`` has passed."""
        from aetcd import rpc

        await self.client.connect()
        fn = getattr(getattr(self.client, stub), method)
        budget = timeout or self.timeout_s
        end = time.monotonic() + budget
        pause = 0.05
        while True:
            try:
                return await fn(request, timeout=max(0.05, end - time.monotonic()),
                                metadata=self.client.metadata)
            except rpc.AioRpcError as exc:
                if (retry and exc.code() is rpc.StatusCode.UNAVAILABLE
                        and time.monotonic() + pause < end):
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.5)
                    continue
                raise self._error(exc) from exc

    def _error(self, exc: Any) -> StoreError:
        """Our error for a gRPC failure: a refusal names the fix, the rest is
        ``StoreUnavailable`` (retry later)."""
        from aetcd import rpc

        if exc.code() in (rpc.StatusCode.INVALID_ARGUMENT, rpc.StatusCode.OUT_OF_RANGE,
                          rpc.StatusCode.RESOURCE_EXHAUSTED, rpc.StatusCode.FAILED_PRECONDITION):
            hint = ("; a transaction of N changes needs about 2N+1 etcd operations: raise "
                    "--max-txn-ops (default 128) on every member, e.g. 4096"
                    if "too many operations" in (exc.details() or "") else "")
            return StoreError(f"etcd {self.url} refused the request: {exc.details()}{hint}")
        return StoreUnavailable(f"etcd {self.url}: {exc.code().name}: {exc.details()}; "
                                "check the members are up and have quorum")

    async def range(self, key: bytes, end: bytes | None = None, *, revision: int = 0,
                    limit: int = 0, descend: bool = False, timeout: float | None = None
                    ) -> Any:
        from aetcd import rpc

        req = rpc.RangeRequest(key=key, range_end=end or b"", revision=revision, limit=limit)
        if descend:
            req.sort_order = rpc.RangeRequest.DESCEND
            req.sort_target = rpc.RangeRequest.KEY
        resp = await self.call("kvstub", "Range", req, timeout, retry=True)
        self.cluster_rev = max(self.cluster_rev, resp.header.revision)
        return resp

    async def scan(self, prefix: bytes, revision: int) -> list[Any]:
        """Every kv under ``prefix`` at ``revision`` (paged)."""
        out: list[Any] = []
        start, end = prefix, _range_end(prefix)
        while True:
            resp = await self.range(start, end, revision=revision, limit=PAGE)
            out.extend(resp.kvs)
            if not resp.more or not resp.kvs:
                return out
            start = resp.kvs[-1].key + b"\x00"

    async def txn(self, compare: list[Any], success: list[Any], failure: list[Any],
                  *, timeout: float | None = None, idempotent: bool = False) -> Any:
        """One etcd txn. ``idempotent`` (applying it twice changes nothing more): sent
        again while etcd is UNAVAILABLE; otherwise the caller resolves the outcome."""
        from aetcd import rpc

        req = rpc.TxnRequest(compare=[c.build_message() for c in compare],
                             success=self.client._ops_to_requests(success),
                             failure=self.client._ops_to_requests(failure))
        resp = await self.call("kvstub", "Txn", req, timeout, retry=idempotent)
        self.cluster_rev = max(self.cluster_rev, resp.header.revision)
        return resp
