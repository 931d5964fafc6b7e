"""Replicated state store on etcd v3 (issue 16): every controller replica holds an
in-memory index of the current objects, driven by one watch on the cluster prefix
(``controller.store.etcd_index``; RPC plumbing in ``controller.store.etcd_rpc``).

Rules:
- Layout under the prefix ``P`` (default ``/cpn``): ``P/o/<kind>/<key>`` objects (JSON),
  ``P/j/<seq>`` journal entries (seq zero-padded, so key order is seq order),
  ``P/seq`` the last ``seq txid``, ``P/m/<k>`` meta, ``P/t/<sha256>`` and
  ``P/tn/<name>`` tokens, ``P/q/<id>`` quarantined rows, ``P/leader`` + ``P/epoch``
  leadership, ``P/members/<name>`` replica heartbeats (``controller.cluster``).
- A transaction stages its writes like every backend (``controller.store.staging``)
  and commits as ONE etcd txn: object puts/deletes, the journal entries and
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
"""
from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from controller.models.base import Entity
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
from controller.store.etcd_index import SEQ_RETRIES, EtcdIndex, _loads
from controller.store.etcd_rpc import PAGE, Endpoints, _range_end
from controller.store.staging import StagedWrites

__all__ = ["Endpoints", "EtcdStore"]

E = TypeVar("E", bound=Entity)
log = logging.getLogger("cpn.store.etcd")


class _Txn(StagedWrites):
    """Staged writes of one transaction; remembers what it read (for the compare)."""

    def __init__(self, store: EtcdStore) -> None:
        super().__init__()
        self._store = store
        #: (kind, key) -> mod revision of the value this transaction read (0: absent)
        self.reads: dict[tuple[str, str], int] = {}

    def _read(self, kind: type[E], key: str) -> E | None:
        st = self._store
        if st._raw:
            st._adopt(kind.KIND)
        with st._cache_lock:  # value and revision from the same instant
            value = st._cache.get(kind.KIND, {}).get(key)
            self.reads.setdefault((kind.KIND, key), st._rev.get((kind.KIND, key), 0))
        return value  # type: ignore[return-value]

    def changes(self) -> builtins.list[Change]:
        return self.snapshot()[0]

    def snapshot(self) -> tuple[builtins.list[Change], dict[tuple[str, str], int],
                                builtins.list[str | None]]:
        """The changes, with — from the same instant of the index — the revision each
        written object is compared at and the JSON of its previous value. (Taking them
        at different instants let a blind write journal a second "create" for an
        object another replica had just created.)"""
        st = self._store
        for kind in self.kinds():
            st._adopt(kind)
        with st._cache_lock:
            out = list(self.changes_of(lambda kind, key: st._cache.get(kind, {}).get(key)))
            revs = {(c.kind, c.key): st._rev.get((c.kind, c.key), 0) for c in out}
            prevs = [st._json.get(c.kind, {}).get(c.key) for c in out]
        return out, revs, prevs


class EtcdStore(EtcdIndex):
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

    def list_nowait(self, kind: type[E]) -> builtins.list[E] | None:
        if kind.KIND in self._raw or not self._cache_lock.acquire(blocking=False):
            return None  # rows to decode first, or the watch applying a change
        try:
            items = sorted(self._cache.get(kind.KIND, {}).items())
        finally:
            self._cache_lock.release()
        return [obj for _, obj in items]  # type: ignore[misc]

    def count(self, kind: type[Entity]) -> int:
        if self._raw:
            self._adopt(kind.KIND)
        return len(self._cache.get(kind.KIND, {}))

    def last_seq(self) -> int:
        return self._seq

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
            quarantine = [json.loads(kv.value)
                          for kv in await self.scan(self._p + b"/q/", rev)]
            return {"objects": objects, "journal": journal, "meta": meta,
                    "tokens": sorted(tokens, key=lambda t: t["name"]),
                    "quarantine": quarantine}
        return self.run(go(), timeout=self.timeout_s * 12)

    def load_dump(self, dump: StoreDump) -> None:
        """Write a snapshot in batched txns guarded by ``P/seq`` staying absent until
        the last batch; refused unless the prefix holds no objects, journal, tokens or
        quarantined rows."""
        from aetcd.transactions import Create, Put

        async def go() -> None:
            for sub in (b"/o/", b"/j/", b"/t/", b"/q/"):
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
            ops += [Put(self.key("q", f"{q['id']:016d}"), json.dumps(q).encode())
                    for q in dump.get("quarantine", [])]
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


def _entry(e: dict[str, Any]) -> JournalEntry:
    return JournalEntry(
        seq=e["seq"], txid=e["txid"], ts=datetime.fromisoformat(e["ts"]), actor=e["actor"],
        reason=e["reason"], action=Action(e["action"]), kind=e["kind"], key=e["key"],
        value=e["value"], previous=e["previous"], epoch=e.get("epoch", 0),
        member=e.get("member", ""))
