"""The replica's in-memory index of the etcd store, kept by one watch (issue 16).

Rules:
- The index (kind → key → object, with each object's mod revision) is loaded at one
  revision; the watch starts at that revision + 1. A broken watch is re-created at the
  last seen revision + 1 (etcd replays what was missed); a compacted one reloads
  everything and announces the difference.
- Writes committed by other replicas reach listeners in commit order, on the loop
  given to ``bind_loop``; this replica's own commits (known by their commit id) are
  not announced twice.
- Rows of kinds not registered yet stay JSON until their class is (``_adopt``).
- A row that no longer validates against its model is quarantined as on SQLite (#15):
  moved to ``P/q/<id>`` verbatim with the error and journaled as a delete by
  ``store:quarantine``, in one guarded txn (one replica does it); never fatal.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pydantic

from controller.models.base import ENTITY_KINDS, Entity
from controller.store.base import Action, Change, QuarantinedRow, StoreError
from controller.store.etcd_rpc import EtcdRpc, _range_end

log = logging.getLogger("cpn.store.etcd")

QUARANTINE_ACTOR = "store:quarantine"
#: attempts when only ``P/seq`` moved under a commit (other writers' objects)
SEQ_RETRIES = 200


class EtcdIndex(EtcdRpc):
    """Index, watch and quarantine of the etcd store (base of ``EtcdStore``)."""

    _closed: bool
    _cache_lock: threading.Lock
    _listeners: builtins.list[tuple[Callable[..., None], bool]]
    _cache: dict[str, dict[str, Entity]]
    _json: dict[str, dict[str, str]]
    _rev: dict[tuple[str, str], int]
    _last: dict[tuple[str, str], int]
    _raw: dict[str, dict[str, str]]
    _q_pending: dict[tuple[str, str], tuple[str, str]]
    _q_rows: dict[int, QuarantinedRow]
    _seq: int
    _txid: int
    _seq_rev: int
    _own_cids: set[str]
    applied_rev: int
    leader_raw: bytes | None
    leader_create_rev: int
    watch_hooks: builtins.list[Callable[[bytes, bytes | None, int], None]]
    _notify_loop: asyncio.AbstractEventLoop | None
    member: str

    def _notify(self, changes: builtins.list[Change], actor: str, reason: str) -> None:
        raise NotImplementedError

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

    def wait_applied(self, revision: int, timeout: float = 5.0) -> bool:
        """Block until the index reflects ``revision`` (read-your-writes across replicas)."""
        end = time.monotonic() + timeout
        while self.applied_rev < revision:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True


def _qrow(raw: bytes) -> QuarantinedRow:
    r = json.loads(raw)
    return QuarantinedRow(r["id"], r["kind"], r["key"], r["value"], r["error"],
                          datetime.fromisoformat(r["ts"]))


def _loads(value: str | None) -> Any:
    return json.loads(value) if value is not None else None


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
