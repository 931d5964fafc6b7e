"""Replicated state store on etcd v3 (issue 16): every controller replica holds an
in-memory index of the current objects, driven by one watch on the cluster prefix.

Rules:
- Layout under the prefix ``P`` (default ``/cpn``): ``P/o/<kind>/<key>`` objects (JSON),
  ``P/j/<seq>`` journal entries (seq zero-padded, so key order is seq order),
  ``P/seq`` the last ``seq txid``, ``P/m/<k>`` meta, ``P/t/<sha256>`` and
  ``P/tn/<name>`` tokens, ``P/leader`` + ``P/epoch`` leadership, ``P/members/<name>``
  replica heartbeats (``controller.cluster``).
- A transaction commits as ONE etcd txn: object puts/deletes, the journal entries and
  the new ``P/seq``. It compares the ``mod_revision`` of every object it read or wrote
  with the one it saw (0 = absent) and that of ``P/seq``: two writers never lose an
  update, and sequence numbers have no gap and no duplicate. When only ``P/seq`` moved
  (another writer committed other objects) the txn is retried with the new sequence;
  when something it read moved, ``StoreConflict`` (nothing applied, retry).
- With a ``fence`` set (this replica leads), the txn also compares the leader key's
  create revision: a deposed leader's write fails with ``StoreFenced``.
- A call whose outcome is unknown (etcd leader lost mid-call) is resolved by reading
  the first journal key it would have written: the entry carries a random commit id,
  so the write is neither lost nor applied twice.
- The watch starts at the revision the index was loaded at + 1; a broken watch is
  re-created at the last seen revision + 1 (etcd replays what was missed); a
  compacted one reloads everything and announces the difference. Writes committed by
  other replicas reach listeners in commit order, on the loop given to ``bind_loop``.
- aetcd 1.0 is the client (asyncio, grpc.aio): its channel and stubs carry every
  call; requests are built from its protobuf messages because the high-level calls
  hide what this store needs (the txn's commit revision, ranges at a revision,
  one watch response per revision). All etcd I/O runs on a private event loop in a
  thread, so the ``Store`` API stays synchronous like the SQLite backend.
- A row that no longer validates against its model is quarantined as on SQLite (#15):
  moved to ``P/q/<id>`` verbatim with the error and journaled as a delete by
  ``store:quarantine``, in one guarded txn (one replica does it); never fatal.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any, TypeVar

import pydantic

from controller.errors import NotFoundError
from controller.models.base import ENTITY_KINDS, Entity
from controller.store.base import (
    Action,
    Change,
    Fence,
    JournalEntry,
    JournalQuery,
    QuarantinedRow,
    StoreConflict,
    StoreDump,
    StoreError,
    StoreFenced,
    StoreUnavailable,
)

E = TypeVar("E", bound=Entity)
T = TypeVar("T")
log = logging.getLogger("cpn.store.etcd")

PAGE = 1000
QUARANTINE_ACTOR = "store:quarantine"
#: attempts when only ``P/seq`` moved under a commit (other writers' objects)
SEQ_RETRIES = 200


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


class _Txn:
    """Staged writes of one transaction; remembers what it read (for the compare)."""

    def __init__(self, store: EtcdStore) -> None:
        self._store = store
        self._staged: dict[tuple[str, str], Entity | None] = {}
        #: (kind, key) -> mod revision of the value this transaction read (0: absent)
        self.reads: dict[tuple[str, str], int] = {}

    def get(self, kind: type[E], key: str) -> E | None:
        ident = (kind.KIND, key)
        if ident in self._staged:
            return self._staged[ident]  # type: ignore[return-value]
        st = self._store
        if st._raw:
            st._adopt(kind.KIND)
        with st._cache_lock:  # value and revision from the same instant
            value = st._cache.get(kind.KIND, {}).get(key)
            self.reads.setdefault(ident, st._rev.get(ident, 0))
        return value  # type: ignore[return-value]

    def put(self, obj: Entity) -> None:
        if not obj.KIND:
            raise TypeError(f"{type(obj).__name__} is not a storable entity")
        self._staged[(obj.KIND, obj.key)] = obj

    def delete(self, kind: type[Entity], key: str) -> None:
        if self.get(kind, key) is None:
            raise NotFoundError(kind.KIND, key)
        self._staged[(kind.KIND, key)] = None

    def changes(self) -> builtins.list[Change]:
        return self.snapshot()[0]

    def snapshot(self) -> tuple[builtins.list[Change], dict[tuple[str, str], int],
                                builtins.list[str | None]]:
        """The changes, with — from the same instant of the index — the revision each
        written object is compared at and the JSON of its previous value. (Taking them
        at different instants let a blind write journal a second "create" for an
        object another replica had just created.)"""
        st = self._store
        for kind, _ in self._staged:
            st._adopt(kind)
        out: builtins.list[Change] = []
        revs: dict[tuple[str, str], int] = {}
        prevs: builtins.list[str | None] = []
        with st._cache_lock:
            for (kind, key), value in self._staged.items():
                previous = st._cache.get(kind, {}).get(key)
                if value is None:
                    if previous is None:
                        continue
                    ch = Change(Action.DELETE, kind, key, None, previous)
                elif previous is None:
                    ch = Change(Action.CREATE, kind, key, value, None)
                elif previous != value:
                    ch = Change(Action.UPDATE, kind, key, value, previous)
                else:
                    continue
                out.append(ch)
                revs[(kind, key)] = st._rev.get((kind, key), 0)
                prevs.append(st._json.get(kind, {}).get(key))
        return out, revs, prevs


class EtcdStore:
    """etcd-backed ``Store`` (one replica's view). Open with ``from_url``."""

    backend = "etcd"

    def __init__(self, endpoints: Endpoints, *, member: str = "", timeout_s: float = 5.0
                 ) -> None:
        import aetcd

        self.endpoints = endpoints
        self.url = endpoints.url()
        self.member = member
        self.fence: Fence | None = None
        self.timeout_s = timeout_s
        self._p = endpoints.prefix.encode()
        self._lock = threading.RLock()        # one local writer at a time
        self._cache_lock = threading.Lock()   # index updates (never held across etcd I/O)
        self._listeners: list[tuple[Callable[..., None], bool]] = []
        self._cache: dict[str, dict[str, Entity]] = {}
        self._json: dict[str, dict[str, str]] = {}
        self._rev: dict[tuple[str, str], int] = {}     # mod revision per object (0 absent)
        self._last: dict[tuple[str, str], int] = {}    # revision of the last event applied
        self._raw: dict[str, dict[str, str]] = {}
        #: rows that failed validation, to be set aside: (kind, key) -> (JSON, error)
        self._q_pending: dict[tuple[str, str], tuple[str, str]] = {}
        self._q_rows: dict[int, QuarantinedRow] = {}   # P/q/, kept by the watch
        self._seq = self._txid = self._seq_rev = 0
        self._own_cids: set[str] = set()   # commits of this replica: not announced twice
        self.applied_rev = 0        # revision the index reflects (watch progress)
        self.cluster_rev = 0        # newest revision seen in any response header
        self.leader_raw: bytes | None = None
        self.leader_create_rev = 0
        self.watch_hooks: list[Callable[[bytes, bytes | None, int], None]] = []
        self._notify_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="cpn-etcd")
        self._thread.start()
        host, port = endpoints.target()
        # keepalive pings only while calls are open, no more often than etcd's default
        # --grpc-keepalive-min-time (5 s) allows (else GOAWAY too_many_pings); a dead
        # member is noticed sooner through call deadlines and closed connections
        options = {
            "grpc.keepalive_time_ms": 5000, "grpc.keepalive_timeout_ms": 2000,
            "grpc.keepalive_permit_without_calls": 0,
            "grpc.initial_reconnect_backoff_ms": 100, "grpc.min_reconnect_backoff_ms": 100,
            "grpc.max_reconnect_backoff_ms": 500, "grpc.lb_policy_name": "round_robin",
        }
        self.client = aetcd.Client(host=host, port=port, options=options)
        self._watch_task: concurrent.futures.Future[None] | None = None
        try:
            self.run(self._connect_and_load(), timeout=max(timeout_s, 10.0))
        except BaseException:
            self.close()
            raise
        self._watch_task = asyncio.run_coroutine_threadsafe(self._watch_forever(), self._loop)

    @classmethod
    def from_url(cls, url: str, *, member: str = "") -> EtcdStore:
        return cls(Endpoints.parse(url), member=member)

    # -- the private loop ------------------------------------------------------------
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

    # -- loading and the watch -------------------------------------------------------
    async def _connect_and_load(self) -> None:
        first = await self.range(self.key("seq"))
        rev = first.header.revision
        await self._load_at(rev, announce=False)

    async def _load_at(self, rev: int, *, announce: bool) -> None:
        kvs = await self.scan(self._p + b"/o/", rev)
        seq_kvs = await self.range(self.key("seq"), revision=rev)
        leader = await self.range(self.key("leader"), revision=rev)
        qrows = [_qrow(kv.value) for kv in await self.scan(self._p + b"/q/", rev)]
        raw: dict[str, dict[str, str]] = {}
        revs: dict[tuple[str, str], int] = {}
        plen = len(self._p) + 3
        for kv in kvs:
            kind, _, key = kv.key[plen:].decode().partition("/")
            raw.setdefault(kind, {})[key] = kv.value.decode()
            revs[(kind, key)] = kv.mod_revision
        before = {(k, key): v for k, b in self._json.items() for key, v in b.items()}
        for k, b in self._raw.items():
            before.update({(k, key): v for key, v in b.items()})
        with self._cache_lock:
            self._cache.clear()
            self._json.clear()
            self._raw = raw
            self._rev = revs
            self._last = dict(revs)
            if seq_kvs.kvs:
                kv = seq_kvs.kvs[0]
                seq, txid = kv.value.decode().split()
                self._seq, self._txid, self._seq_rev = int(seq), int(txid), kv.mod_revision
            self._q_rows = {q.id: q for q in qrows}
            self.leader_raw = leader.kvs[0].value if leader.kvs else None
            self.leader_create_rev = leader.kvs[0].create_revision if leader.kvs else 0
            self.applied_rev = rev
        for kind in list(self._raw):
            self._adopt(kind)
        if announce:
            after = {(k, key): v for k, b in self._json.items() for key, v in b.items()}
            for k, b in self._raw.items():
                after.update({(k, key): v for key, v in b.items()})
            changes = [self._change_from_json(ident, before.get(ident), after.get(ident))
                       for ident in sorted(set(before) | set(after))
                       if before.get(ident) != after.get(ident)]
            found = [c for c in changes if c is not None]
            if found:
                self._dispatch(found, "etcd", "resynchronised after a compacted watch")

    def _change_from_json(self, ident: tuple[str, str], old: str | None, new: str | None
                          ) -> Change | None:
        cls = ENTITY_KINDS.get(ident[0])
        if cls is None:
            return None
        try:
            prev = cls.model_validate_json(old) if old is not None else None
            value = cls.model_validate_json(new) if new is not None else None
        except pydantic.ValidationError:
            return None
        action = (Action.CREATE if prev is None else Action.DELETE if value is None
                  else Action.UPDATE)
        return Change(action, ident[0], ident[1], value, prev)

    async def _watch_forever(self) -> None:
        from aetcd import rpc

        backoff = 0.05
        while not self._closed:
            queue: asyncio.Queue[Any] = asyncio.Queue()
            req = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=self._p + b"/", range_end=_range_end(self._p + b"/"),
                start_revision=self.applied_rev + 1, progress_notify=True))
            await queue.put(req)

            async def requests(q: asyncio.Queue[Any] = queue) -> Any:
                while True:
                    item = await q.get()
                    if item is None:
                        return
                    yield item
            try:
                await self.client.connect()
                stream = rpc.WatchStub(self.client.channel).Watch(
                    requests(), metadata=self.client.metadata)
                async for resp in stream:
                    backoff = 0.05
                    if resp.compact_revision:
                        log.warning("etcd watch compacted at %d; reloading the index",
                                    resp.compact_revision)
                        await self._load_at((await self.range(self.key("seq"))).header.revision,
                                            announce=True)
                        break
                    if resp.canceled:
                        break
                    self._apply_watch(resp)
            except asyncio.CancelledError:
                await queue.put(None)
                raise
            except Exception as exc:  # member lost: re-create at the last revision + 1
                if not self._closed:
                    log.info("etcd watch broke (%s); re-creating from revision %d",
                             type(exc).__name__, self.applied_rev + 1)
            await queue.put(None)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _apply_watch(self, resp: Any) -> None:
        by_rev: dict[int, list[Any]] = {}
        for ev in resp.events:
            by_rev.setdefault(ev.kv.mod_revision, []).append(ev)
        plen = len(self._p)
        for rev in sorted(by_rev):
            journal: list[dict[str, Any]] = []
            for ev in by_rev[rev]:
                sub = ev.kv.key[plen + 1:]
                deleted = ev.type == 1
                if sub.startswith(b"o/"):
                    kind, _, key = sub[2:].decode().partition("/")
                    self._apply_object(kind, key, None if deleted else ev.kv.value.decode(), rev)
                elif sub.startswith(b"j/") and not deleted:
                    journal.append(json.loads(ev.kv.value))
                elif sub.startswith(b"q/"):
                    with self._cache_lock:
                        if deleted:
                            self._q_rows.pop(int(sub[2:]), None)
                        else:
                            q = _qrow(ev.kv.value)
                            self._q_rows[q.id] = q
                elif sub == b"seq" and not deleted:
                    seq, txid = ev.kv.value.decode().split()
                    with self._cache_lock:
                        if rev > self._seq_rev:
                            self._seq, self._txid, self._seq_rev = int(seq), int(txid), rev
                elif sub == b"leader":
                    with self._cache_lock:
                        self.leader_raw = None if deleted else ev.kv.value
                        self.leader_create_rev = 0 if deleted else ev.kv.create_revision
                for hook in list(self.watch_hooks):
                    hook(sub, None if deleted else ev.kv.value, rev)
            self.applied_rev = max(self.applied_rev, rev)
            if journal and journal[0].get("cid") not in self._own_cids:
                self._announce(journal)
            elif journal:
                self._own_cids.discard(journal[0]["cid"])
        if not resp.events and not resp.created:
            # a progress notification: every event up to the header revision was sent
            # (a response carrying events may have a header ahead of them: not used)
            self.applied_rev = max(self.applied_rev, resp.header.revision)
        self.cluster_rev = max(self.cluster_rev, resp.header.revision)

    def _apply_object(self, kind: str, key: str, value: str | None, rev: int) -> None:
        with self._cache_lock:
            if self._last.get((kind, key), -1) >= rev:
                return  # this replica already applied it (its own commit) or newer
            self._last[(kind, key)] = rev
            self._rev[(kind, key)] = 0 if value is None else rev
            if value is None:
                self._cache.get(kind, {}).pop(key, None)
                self._json.get(kind, {}).pop(key, None)
                self._raw.get(kind, {}).pop(key, None)
                return
            cls = ENTITY_KINDS.get(kind)
            if cls is None or kind in self._raw:
                self._raw.setdefault(kind, {})[key] = value
                return
            self._store_decoded(cls, kind, key, value)

    def _store_decoded(self, cls: type[Entity], kind: str, key: str, value: str) -> None:
        try:
            obj = cls.model_validate_json(value)
        except pydantic.ValidationError as exc:
            error = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(whole object)'}: {e['msg']}"
                for e in exc.errors())
            self._q_pending[(kind, key)] = (value, error)
            self._cache.get(kind, {}).pop(key, None)
            self._json.get(kind, {}).pop(key, None)
            self._loop.call_soon_threadsafe(self._kick_quarantine)
            return
        self._cache.setdefault(kind, {})[key] = obj
        self._json.setdefault(kind, {})[key] = value

    def _announce(self, entries: list[dict[str, Any]]) -> None:
        changes: list[Change] = []
        for e in sorted(entries, key=lambda e: e["seq"]):
            ch = self._change_from_json((e["kind"], e["key"]), _dumps(e["previous"]),
                                        _dumps(e["value"]))
            if ch is not None:
                changes.append(Change(Action(e["action"]), ch.kind, ch.key, ch.value,
                                      ch.previous))
        if changes:
            self._dispatch(changes, entries[0]["actor"], entries[0]["reason"])

    def _dispatch(self, changes: list[Change], actor: str, reason: str) -> None:
        loop = self._notify_loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._notify, changes, actor, reason)
        else:
            self._notify(changes, actor, reason)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver other replicas' commits to listeners on ``loop`` (the runtime's)."""
        self._notify_loop = loop

    def _adopt(self, kind: str) -> None:
        if kind not in self._raw:
            return
        cls = ENTITY_KINDS.get(kind)
        if cls is None:
            return
        with self._cache_lock:
            rows = self._raw.pop(kind, None)
            if rows is None:
                return
            for key, value in rows.items():
                self._store_decoded(cls, kind, key, value)

    # -- quarantine (#15): a row that no longer validates is set aside, not fatal --------
    def _kick_quarantine(self) -> None:
        if self._q_pending and not self._closed:
            self._loop.create_task(self._quarantine_pending())

    async def _quarantine_pending(self) -> None:
        """Move each pending row to ``P/q/<seq>`` and journal its removal as a delete by
        ``store:quarantine``, in one txn guarded like a commit: if another replica did
        it first (or the row changed) the compare fails and this one lets it be."""
        from aetcd.transactions import Delete, Get, Mod, Put

        for (kind, key), (value, error) in list(self._q_pending.items()):
            okey = self.key("o", kind, key)
            for _ in range(SEQ_RETRIES):
                with self._cache_lock:
                    rev = self._rev.get((kind, key), 0)
                    seq, txid, seq_rev = self._seq + 1, self._txid + 1, self._seq_rev
                try:
                    previous = json.loads(value)
                except ValueError:
                    previous = None
                ts = datetime.now(UTC).isoformat()
                entry = {"seq": seq, "txid": txid, "ts": ts, "actor": QUARANTINE_ACTOR,
                         "reason": f"quarantined: {error}"[:1000], "action": "delete",
                         "kind": kind, "key": key, "value": None, "previous": previous,
                         "epoch": 0, "member": self.member, "cid": uuid.uuid4().hex}
                row = {"id": seq, "kind": kind, "key": key, "value": value, "error": error,
                       "ts": ts}
                try:
                    resp = await self.txn(
                        [Mod(okey) == rev, Mod(self.key("seq")) == seq_rev],
                        [Delete(okey), Put(self.key("q", f"{seq:016d}"), json.dumps(row)
                                           .encode()),
                         Put(self.key("j", f"{seq:016d}"), json.dumps(entry).encode()),
                         Put(self.key("seq"), f"{seq} {txid}".encode())],
                        [Get(self.key("seq")), Get(okey)])
                except StoreError:
                    await asyncio.sleep(0.5)
                    continue
                if resp.succeeded:
                    log.error("stored %s %r no longer matches its model and was quarantined "
                              "(id %d): %s. Everything else loaded. Fix: re-create it with "
                              "valid values, then 'cpn quarantine drop %d'.", kind, key,
                              seq, error, seq)
                    break
                seq_r, obj_r = (r.response_range for r in resp.responses)
                with self._cache_lock:
                    if seq_r.kvs and seq_r.kvs[0].mod_revision > self._seq_rev:
                        s, t = seq_r.kvs[0].value.decode().split()
                        self._seq, self._txid = int(s), int(t)
                        self._seq_rev = seq_r.kvs[0].mod_revision
                if (obj_r.kvs[0].mod_revision if obj_r.kvs else 0) != rev:
                    break  # set aside by another replica, or rewritten: not ours to move
            self._q_pending.pop((kind, key), None)

    def quarantined(self) -> builtins.list[QuarantinedRow]:
        """Rows set aside because they no longer validated, oldest first (from the
        index: ``/healthz`` asks on every probe, also when etcd is out of reach)."""
        with self._cache_lock:
            return [self._q_rows[i] for i in sorted(self._q_rows)]

    def drop_quarantined(self, row_id: int) -> bool:
        """Forget a quarantined row (the operator re-created or discarded it)."""
        from aetcd import rpc

        resp = self.run(self.call("kvstub", "DeleteRange", rpc.DeleteRangeRequest(
            key=self.key("q", f"{row_id:016d}"))))
        return bool(resp.deleted)

    # -- reading ---------------------------------------------------------------------
    def get(self, kind: type[E], key: str) -> E | None:
        if self._raw:
            self._adopt(kind.KIND)
        return self._cache.get(kind.KIND, {}).get(key)  # type: ignore[return-value]

    def list(self, kind: type[E]) -> builtins.list[E]:
        if self._raw:
            self._adopt(kind.KIND)
        with self._cache_lock:
            items = sorted(self._cache.get(kind.KIND, {}).items())
        return [obj for _, obj in items]  # type: ignore[misc]

    def count(self, kind: type[Entity]) -> int:
        if self._raw:
            self._adopt(kind.KIND)
        return len(self._cache.get(kind.KIND, {}))

    def last_seq(self) -> int:
        return self._seq

    def wait_applied(self, revision: int, timeout: float = 5.0) -> bool:
        """Block until the index reflects ``revision`` (read-your-writes across replicas)."""
        end = time.monotonic() + timeout
        while self.applied_rev < revision:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True

    # -- writing ---------------------------------------------------------------------
    @contextmanager
    def transaction(self, actor: str, reason: str = "") -> Iterator[_Txn]:
        with self._lock:
            txn = _Txn(self)
            yield txn
            changes, revs, prevs = txn.snapshot()
            if changes:
                # what was read is compared at the revision it was read at
                self.run(self._commit(changes, {**revs, **txn.reads}, prevs, actor, reason),
                         timeout=self.timeout_s * 4)
        if changes:
            self._notify(changes, actor, reason)

    async def _commit(self, changes: builtins.list[Change], seen: dict[tuple[str, str], int],
                      prevs: builtins.list[str | None], actor: str, reason: str) -> None:
        from aetcd.transactions import Create, Get, Mod, Put
        from aetcd.transactions import Delete as Del

        fence = self.fence
        epoch, member = (fence.epoch, fence.member) if fence else (0, self.member)
        ts = datetime.now(UTC).isoformat()
        cid = uuid.uuid4().hex
        encoded = [c.value.model_dump_json() if c.value is not None else None for c in changes]
        for _attempt in range(SEQ_RETRIES):
            with self._cache_lock:
                seq0, txid, seq_rev = self._seq, self._txid + 1, self._seq_rev
            compare: list[Any] = [Mod(self.key("seq")) == seq_rev]
            compare += [Mod(self.key("o", k, key)) == rev for (k, key), rev in seen.items()]
            if fence is not None:
                compare.append(Create(self.key("leader")) == fence.token)
            ops: list[Any] = []
            for i, (ch, value_json) in enumerate(zip(changes, encoded, strict=True)):
                okey = self.key("o", ch.kind, ch.key)
                ops.append(Put(okey, value_json.encode()) if value_json is not None
                           else Del(okey))
                entry = {"seq": seq0 + 1 + i, "txid": txid, "ts": ts, "actor": actor,
                         "reason": reason, "action": ch.action.value, "kind": ch.kind,
                         "key": ch.key, "value": _loads(value_json),
                         "previous": _loads(prevs[i]), "epoch": epoch, "member": member,
                         "cid": cid}
                ops.append(Put(self.key("j", f"{seq0 + 1 + i:016d}"),
                               json.dumps(entry, separators=(",", ":")).encode()))
            new_seq = seq0 + len(changes)
            ops.append(Put(self.key("seq"), f"{new_seq} {txid}".encode()))
            failure = [Get(self.key("seq")), Get(self.key("leader"))]
            failure += [Get(self.key("o", k, key)) for (k, key) in seen]
            self._own_cids.add(cid)
            try:
                resp = await self.txn(compare, ops, failure)
            except StoreUnavailable:
                outcome = await self._resolve(seq0 + 1, cid)
                if outcome is None:
                    self._own_cids.discard(cid)
                    raise
                if outcome:  # it did commit: treat as success at that revision
                    self._applied_commit(changes, encoded, new_seq, txid, outcome)
                    return
                continue
            if resp.succeeded:
                self._applied_commit(changes, encoded, new_seq, txid, resp.header.revision)
                return
            try:
                self._absorb_failure(resp, fence, seen)
            except BaseException:
                self._own_cids.discard(cid)
                raise
        self._own_cids.discard(cid)
        raise StoreConflict("the journal sequence kept moving under this write (very busy "
                            "cluster); nothing applied — retry")

    def _absorb_failure(self, resp: Any, fence: Fence | None,
                        seen: dict[tuple[str, str], int]) -> None:
        """After a failed compare: learn the new ``P/seq``; raise unless only it moved."""
        ranges = [r.response_range for r in resp.responses]
        seq_r, leader_r, objs = ranges[0], ranges[1], ranges[2:]
        with self._cache_lock:
            if seq_r.kvs:
                kv = seq_r.kvs[0]
                seq, txid = kv.value.decode().split()
                if kv.mod_revision > self._seq_rev:
                    self._seq, self._txid, self._seq_rev = int(seq), int(txid), kv.mod_revision
        if fence is not None and (not leader_r.kvs
                                  or leader_r.kvs[0].create_revision != fence.token):
            self.fence = None
            raise StoreFenced(f"this controller ({fence.member}) no longer leads "
                              f"(epoch {fence.epoch} ended); nothing applied — retry on "
                              "any replica")
        moved = []
        for (ident, rev), r in zip(seen.items(), objs, strict=True):
            now = r.kvs[0].mod_revision if r.kvs else 0
            if now != rev:
                moved.append(f"{ident[0]} {ident[1]!r}")
                value = r.kvs[0].value.decode() if r.kvs else None
                self._apply_object(ident[0], ident[1], value, now or resp.header.revision)
        if moved:
            raise StoreConflict(f"{', '.join(moved[:5])} changed under this write (another "
                                "writer); nothing applied — read again and retry")

    async def _resolve(self, first_seq: int, cid: str) -> int | None:
        """Did the txn whose first journal entry is ``first_seq`` commit? Its revision,
        0 if it did not, None if etcd cannot tell within the timeout."""
        end = time.monotonic() + self.timeout_s * 2
        while time.monotonic() < end:
            try:
                r = await self.range(self.key("j", f"{first_seq:016d}"))
            except StoreUnavailable:
                await asyncio.sleep(0.1)
                continue
            if r.kvs and json.loads(r.kvs[0].value).get("cid") == cid:
                return int(r.kvs[0].mod_revision)
            return 0
        return None

    def _applied_commit(self, changes: builtins.list[Change],
                        encoded: builtins.list[str | None],
                        seq: int, txid: int, rev: int) -> None:
        with self._cache_lock:
            if rev > self._seq_rev:
                self._seq, self._txid, self._seq_rev = seq, txid, rev
            for ch, value_json in zip(changes, encoded, strict=True):
                if self._last.get((ch.kind, ch.key), -1) >= rev:
                    continue
                self._last[(ch.kind, ch.key)] = rev
                self._rev[(ch.kind, ch.key)] = 0 if value_json is None else rev
                if ch.value is None or value_json is None:
                    self._cache.get(ch.kind, {}).pop(ch.key, None)
                    self._json.get(ch.kind, {}).pop(ch.key, None)
                else:
                    self._cache.setdefault(ch.kind, {})[ch.key] = ch.value
                    self._json.setdefault(ch.kind, {})[ch.key] = value_json

    def subscribe(self, listener: Callable[..., None], *,
                  with_context: bool = False) -> Callable[[], None]:
        entry = (listener, with_context)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry)

    def _notify(self, changes: builtins.list[Change], actor: str, reason: str) -> None:
        for listener, with_context in list(self._listeners):
            try:
                if with_context:
                    listener(changes, actor, reason)
                else:
                    listener(changes)
            except Exception:
                log.exception("store listener %r failed", listener)

    # -- journal ---------------------------------------------------------------------
    def journal(self, query: JournalQuery = JournalQuery()) -> builtins.list[JournalEntry]:
        return self.run(self._journal(query))

    async def _journal(self, q: JournalQuery) -> builtins.list[JournalEntry]:
        limit = max(0, min(q.limit, 10_000))
        out: builtins.list[JournalEntry] = []
        jp = self._p + b"/j/"
        if q.descending:
            start, end = jp, (self.key("j", f"{q.since:016d}") if q.since else _range_end(jp))
        else:
            start, end = self.key("j", f"{q.since + 1:016d}"), _range_end(jp)
        while len(out) < limit:
            resp = await self.range(start, end, limit=PAGE, descend=q.descending)
            for kv in resp.kvs:
                e = json.loads(kv.value)
                if ((q.kind is None or e["kind"] == q.kind)
                        and (q.key is None or e["key"] == q.key)
                        and (q.actor is None or e["actor"] == q.actor)
                        and (q.action is None or e["action"] == q.action.value)):
                    out.append(_entry(e))
                    if len(out) >= limit:
                        break
            if not resp.more or not resp.kvs:
                break
            if q.descending:
                end = resp.kvs[-1].key
            else:
                start = resp.kvs[-1].key + b"\x00"
        return out

    # -- meta and tokens ---------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        r = self.run(self.range(self.key("m", key)))
        return r.kvs[0].value.decode() if r.kvs else None

    def set_meta(self, key: str, value: str) -> None:
        from aetcd.transactions import Put

        self.run(self.txn([], [Put(self.key("m", key), value.encode())], [], idempotent=True))

    def add_token(self, sha256: str, name: str, role: str, tenant: str | None) -> None:
        from aetcd.transactions import Create, Put

        row = {"sha256": sha256, "name": name, "role": role, "tenant": tenant,
               "created": datetime.now(UTC).isoformat(), "revoked": 0}
        resp = self.run(self.txn(
            [Create(self.key("tn", name)) == 0],
            [Put(self.key("tn", name), sha256.encode()),
             Put(self.key("t", sha256), json.dumps(row).encode())], []))
        if not resp.succeeded:
            raise StoreError(f"a token named {name!r} already exists")

    def find_token(self, sha256: str) -> tuple[str, str, str | None] | None:
        r = self.run(self.range(self.key("t", sha256)))
        if not r.kvs:
            return None
        row = json.loads(r.kvs[0].value)
        return None if row["revoked"] else (row["name"], row["role"], row["tenant"])

    def revoke_token(self, name: str) -> bool:
        from aetcd.transactions import Put

        r = self.run(self.range(self.key("tn", name)))
        if not r.kvs:
            return False
        sha = r.kvs[0].value.decode()
        t = self.run(self.range(self.key("t", sha)))
        if not t.kvs:
            return False
        row = json.loads(t.kvs[0].value)
        row["revoked"] = 1
        self.run(self.txn([], [Put(self.key("t", sha), json.dumps(row).encode())], [],
                          idempotent=True))
        return True

    def list_tokens(self) -> builtins.list[dict[str, Any]]:
        async def rows() -> list[Any]:
            r = await self.range(self.key("t", ""), _range_end(self.key("t", "")))
            return [json.loads(kv.value) for kv in r.kvs]
        return sorted(({k: v for k, v in row.items() if k != "sha256"}
                       for row in self.run(rows())), key=lambda r: r["name"])

    # -- backup (GBA-6.8) --------------------------------------------------------------
    def dump(self) -> StoreDump:
        """Everything, read at ONE etcd revision (a consistent online snapshot)."""
        async def go() -> StoreDump:
            rev = (await self.range(self.key("seq"))).header.revision
            plen = len(self._p) + 1
            objects = []
            for kv in await self.scan(self._p + b"/o/", rev):
                kind, _, key = kv.key[plen + 2:].decode().partition("/")
                objects.append([kind, key, kv.value.decode()])
            journal = []
            for kv in await self.scan(self._p + b"/j/", rev):
                e = json.loads(kv.value)
                e.pop("cid", None)
                journal.append(e)
            meta = {kv.key[plen + 2:].decode(): kv.value.decode()
                    for kv in await self.scan(self._p + b"/m/", rev)}
            tokens = [json.loads(kv.value) for kv in await self.scan(self._p + b"/t/", rev)]
            return {"objects": objects, "journal": journal, "meta": meta,
                    "tokens": sorted(tokens, key=lambda t: t["name"])}
        return self.run(go(), timeout=self.timeout_s * 12)

    def load_dump(self, dump: StoreDump) -> None:
        """Write a snapshot in batched txns guarded by ``P/seq`` staying absent until
        the last batch; refused unless the prefix holds no objects, journal or tokens."""
        from aetcd.transactions import Create, Put

        async def go() -> None:
            for sub in (b"/o/", b"/j/", b"/t/"):
                r = await self.range(self._p + sub, _range_end(self._p + sub), limit=1)
                if r.kvs:
                    raise StoreError(f"etcd prefix {self.endpoints.prefix} on {self.url} is "
                                     "not empty; restore only into an empty cluster (or "
                                     "another prefix: etcd://…/NEW-PREFIX)")
            ops: list[Any] = [Put(self.key("o", k, key), v.encode())
                              for k, key, v in dump["objects"]]
            ops += [Put(self.key("j", f"{e['seq']:016d}"),
                        json.dumps(e, separators=(",", ":")).encode())
                    for e in dump["journal"]]
            ops += [Put(self.key("m", k), v.encode()) for k, v in dump["meta"].items()]
            for t in dump["tokens"]:
                ops.append(Put(self.key("t", t["sha256"]), json.dumps(t).encode()))
                ops.append(Put(self.key("tn", t["name"]), t["sha256"].encode()))
            last = dump["journal"][-1] if dump["journal"] else {"seq": 0, "txid": 0}
            for i in range(0, len(ops), 100):  # etcd's default --max-txn-ops is 128
                resp = await self.txn([Create(self.key("seq")) == 0], ops[i:i + 100], [])
                if not resp.succeeded:
                    raise StoreError("another writer started using this prefix during the "
                                     "restore; restore into an unused cluster")
            await self.txn([Create(self.key("seq")) == 0],
                           [Put(self.key("seq"), f"{last['seq']} {last['txid']}".encode())],
                           [])
            await self._load_at((await self.range(self.key("seq"))).header.revision,
                                announce=False)
        self.run(go(), timeout=self.timeout_s * 60)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watch_task is not None:
            self._watch_task.cancel()

        async def shut() -> None:
            try:
                await asyncio.wait_for(self.client.close(), 2.0)
            except Exception:
                pass
        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(3.0)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(3.0)


def _qrow(raw: bytes) -> QuarantinedRow:
    r = json.loads(raw)
    return QuarantinedRow(r["id"], r["kind"], r["key"], r["value"], r["error"],
                          datetime.fromisoformat(r["ts"]))


def _loads(value: str | None) -> Any:
    return json.loads(value) if value is not None else None


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _entry(e: dict[str, Any]) -> JournalEntry:
    return JournalEntry(
        seq=e["seq"], txid=e["txid"], ts=datetime.fromisoformat(e["ts"]), actor=e["actor"],
        reason=e["reason"], action=Action(e["action"]), kind=e["kind"], key=e["key"],
        value=e["value"], previous=e["previous"], epoch=e.get("epoch", 0),
        member=e.get("member", ""))
