"""Embedded state store on SQLite (WAL) with an in-memory index of current objects.

Rules:
- SQLite is the durable truth; the in-memory index (kind → key → object) is a
  read cache rebuilt from SQLite at open, so restart restores state exactly. Plug-in
  packages register their kinds when imported, which may be after the store opened:
  rows of a kind not yet registered are kept as JSON and decoded on the first
  get/list/count/write of that kind — no stored object is ever skipped.
- A transaction stages its writes in memory, then writes objects and journal
  rows inside one SQLite transaction (``BEGIN IMMEDIATE``). The cache is updated
  only after SQLite committed, so a failed commit leaves both untouched.
- Acknowledged means durable. A commit is in the WAL when ``transaction`` returns (a
  process crash loses nothing); what reaches the disk before an acknowledgement depends
  on ``sync`` (``SYNC_MODES``; ``docs/operations.md``):
  - ``full`` (default) — group commit at the acknowledgement: ``make_durable()``
    fsyncs the WAL up to the last commit, once for every commit since the previous
    fsync; the REST API calls it before answering a write and the NETCONF server
    before each reply, ``close`` folds the WAL in. A power loss loses nothing that
    was acknowledged; commits nobody was answered about (metrics, statuses, steering
    decisions the controller re-derives) reach the disk with the next fsync or
    checkpoint, within about ``CHECKPOINT_INTERVAL_S``.
  - ``commit`` — every commit fsynced before ``transaction`` returns (SQLite
    ``synchronous=FULL``): also internal commits survive a power loss; one fsync per
    commit on every path.
  - ``normal`` — no fsync at acknowledgements either: a power loss or kernel crash can
    roll back the commits since the last checkpoint (about ``CHECKPOINT_INTERVAL_S``,
    at most ``WAL_CAP_PAGES`` pages of WAL), acknowledged or not.
  The file stays consistent in every mode (WAL).
- Checkpoints (copying the WAL back into the database file, with its fsyncs) run on a
  background thread with its own connection every ``CHECKPOINT_INTERVAL_S`` after a
  commit, never on the writer's path; the writer's own automatic checkpoint stays as a
  safety cap (``WAL_CAP_PAGES``) should that thread fall behind.
- One serialisation per object: a staged value is encoded to JSON once; that text is
  compared with the stored text to drop no-op writes, written to ``objects`` and the
  journal, and kept as the next change's ``previous``.
- One writer at a time (a lock); readers never block.
- A row that no longer validates against its model is quarantined, not fatal: moved
  in one SQLite transaction from ``objects`` to ``quarantine`` (verbatim, with the
  error) and journaled as a delete by ``store:quarantine``; logged with the fix. The
  store opens with everything else (#15: one bad row made ``cpn run`` refuse the
  whole state directory).
- Journal rows carry the leader ``epoch`` and ``member`` of the replica that wrote them
  (both 0/empty for a single controller); older files get the columns at open.
- Tokens live in their own table (``tokens``) because they are secrets (only hashes
  are stored) and other processes (``cpn token create``) write them.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from controller.models.base import ENTITY_KINDS, Entity
from controller.store.base import (
    Action,
    Change,
    Fence,
    JournalEntry,
    JournalQuery,
    QuarantinedRow,
    StoreDump,
    StoreError,
)
from controller.store.staging import StagedWrites

E = TypeVar("E", bound=Entity)
log = logging.getLogger("cpn.store")
QUARANTINE_ACTOR = "store:quarantine"
#: ``sync`` modes → SQLite ``synchronous`` (see the module rules for what each keeps)
SYNC_MODES = {"full": "NORMAL", "commit": "FULL", "normal": "NORMAL"}
#: the background checkpointer's cadence (seconds after a commit)
CHECKPOINT_INTERVAL_S = 0.5
#: the writer checkpoints by itself only once the WAL holds this many pages (~40 MB)
WAL_CAP_PAGES = 10_000

# enum members and their values looked up once (attribute access on an Enum class costs
# a descriptor call per use on the commit path)
_CREATE, _UPDATE, _DEL = Action.CREATE, Action.UPDATE, Action.DELETE
_ACTION_TEXT = {a: a.value for a in Action}
_UPSERT = ("INSERT INTO objects(kind, key, value) VALUES (?, ?, ?) "
           "ON CONFLICT(kind, key) DO UPDATE SET value = excluded.value")
_DELETE = "DELETE FROM objects WHERE kind = ? AND key = ?"
_JOURNAL = ("INSERT INTO journal(seq, txid, ts, actor, reason, action, kind, key, value,"
            " previous, epoch, member) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    txid INTEGER NOT NULL,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    previous TEXT,
    epoch INTEGER NOT NULL DEFAULT 0,
    member TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS journal_kind_key ON journal (kind, key);
CREATE TABLE IF NOT EXISTS tokens (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    tenant TEXT,
    created TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    error TEXT NOT NULL,
    ts TEXT NOT NULL
);
"""


class _Txn(StagedWrites):
    """Staged writes of one transaction (see ``Transaction`` Protocol)."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__()
        self._store = store

    def _read(self, kind: type[E], key: str) -> E | None:
        return self._store.get(kind, key)

    def changes(self) -> builtins.list[Change]:
        for kind in self.kinds():
            self._store._adopt(kind)
        cache = self._store._cache
        return list(self.changes_of(lambda kind, key: cache.get(kind, {}).get(key)))

    def plan(self) -> tuple[builtins.list[Change], builtins.list[str | None]]:
        """The changes and each new value's JSON (None for a delete), every staged
        value encoded once. A write whose JSON equals the stored JSON is a no-op."""
        out: builtins.list[Change] = []
        encoded: builtins.list[str | None] = []
        store = self._store
        cache, texts = store._cache, store._json
        for (kind, key), value in self._staged.items():
            if store._raw:
                store._adopt(kind)
            previous = cache.get(kind, {}).get(key)
            if value is None:
                if previous is None:
                    continue
                out.append(Change(_DEL, kind, key, None, previous))
                encoded.append(None)
                continue
            text = value.model_dump_json()
            if previous is None:
                out.append(Change(_CREATE, kind, key, value, None))
            elif text != texts.get(kind, {}).get(key):
                out.append(Change(_UPDATE, kind, key, value, previous))
            else:
                continue
            encoded.append(text)
        return out, encoded


class SqliteStore:
    """SQLite-backed ``Store``. ``path=':memory:'`` for tests."""

    backend = "sqlite"

    def __init__(self, path: str | Path, *, sync: str = "full", member: str = "") -> None:
        if sync not in SYNC_MODES:
            raise StoreError(f"state store sync mode {sync!r} is not one of "
                             f"{', '.join(SYNC_MODES)}; fix: use 'full' (fsync before "
                             f"every acknowledgement, the default), 'commit' or 'normal'")
        self.path = str(path)
        self.url = self.path
        self.sync_mode = sync
        self.member = member
        self.fence: Fence | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={SYNC_MODES[sync]}")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CAP_PAGES}")
            self._db.executescript(SCHEMA)
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(journal)")}
            if "epoch" not in cols:  # a file written before HA (issue 16)
                self._db.execute("ALTER TABLE journal ADD COLUMN epoch INTEGER NOT NULL "
                                 "DEFAULT 0")
                self._db.execute("ALTER TABLE journal ADD COLUMN member TEXT NOT NULL "
                                 "DEFAULT ''")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open state store {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._listeners: list[tuple[Callable[..., None], bool]] = []
        self._cache: dict[str, dict[str, Entity]] = {}
        # JSON of each cached object, so the journal's "previous" needs no re-encoding
        self._json: dict[str, dict[str, str]] = {}
        # rows of kinds not registered when the store opened (kind -> key -> JSON)
        self._raw: dict[str, dict[str, str]] = {}
        self._seq = 0
        self._txid = 0
        self._load()
        #: the last seq known on disk (``make_durable``); guarded by ``_durable_lock``
        self._durable_seq = self._seq
        self._durable_lock = threading.Lock()
        self._checkpointer = (None if self.path == ":memory:" else
                              _Checkpointer(self.path, SYNC_MODES[sync], lambda: self._seq))

    # -- reading -------------------------------------------------------------------
    def _load(self) -> None:
        for kind, key, value in self._db.execute("SELECT kind, key, value FROM objects"):
            # A kind whose module is not imported yet (plug-in packages register their
            # kinds on import), or one a newer version wrote: kept as JSON and decoded
            # on first use of its class (``_adopt``); never dropped.
            self._raw.setdefault(kind, {})[key] = value
        for kind in list(self._raw):
            self._adopt(kind)
        row = self._db.execute("SELECT MAX(seq), MAX(txid) FROM journal").fetchone()
        self._seq = row[0] or 0
        self._txid = row[1] or 0

    def _adopt(self, kind: str) -> None:
        """Decode the stored rows of ``kind`` once its class is registered."""
        if kind not in self._raw:
            return
        cls = ENTITY_KINDS.get(kind)
        if cls is None:
            return
        with self._lock:
            rows = self._raw.pop(kind, None)
            if rows is None:
                return
            bucket = self._cache.setdefault(kind, {})
            jbucket = self._json.setdefault(kind, {})
            for key, value in rows.items():
                try:
                    bucket[key] = cls.model_validate_json(value)
                except pydantic.ValidationError as exc:
                    self._quarantine(kind, key, value, exc)
                    continue
                jbucket[key] = value

    def _quarantine(self, kind: str, key: str, value: str,
                    exc: pydantic.ValidationError) -> None:
        """Set a row that no longer validates aside (verbatim) and journal its removal."""
        error = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(whole object)'}: {e['msg']}"
            for e in exc.errors())
        try:
            json.loads(value)
            previous: str | None = value
        except ValueError:
            previous = None  # not JSON at all: the journal keeps valid JSON only
        ts = datetime.now(UTC).isoformat()
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute("INSERT INTO quarantine(kind, key, value, error, ts) "
                             "VALUES (?, ?, ?, ?, ?)", (kind, key, value, error, ts))
            db.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, key))
            seq = (db.execute("SELECT MAX(seq) FROM journal").fetchone()[0] or 0) + 1
            txid = (db.execute("SELECT MAX(txid) FROM journal").fetchone()[0] or 0) + 1
            db.execute(
                "INSERT INTO journal(seq, txid, ts, actor, reason, action, kind, key, value,"
                " previous) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (seq, txid, ts, QUARANTINE_ACTOR, f"quarantined: {error}"[:1000],
                 Action.DELETE.value, kind, key, None, previous))
            db.execute("COMMIT")
        except sqlite3.Error as exc2:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"state store {self.path}: stored {kind} {key!r} no longer "
                             f"matches its model ({error}) and could not be set aside: "
                             f"{exc2}") from exc2
        self._seq, self._txid = max(self._seq, seq), max(self._txid, txid)
        log.error("stored %s %r no longer matches its model and was quarantined "
                  "(id %d): %s. Everything else loaded. Fix: re-create it with valid "
                  "values (REST, NETCONF or the config file), then forget the quarantined "
                  "copy with 'cpn quarantine drop %d' (see 'cpn quarantine list').",
                  kind, key, cur.lastrowid, error, cur.lastrowid)

    def quarantined(self) -> builtins.list[QuarantinedRow]:
        """Rows set aside because they no longer validated, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, kind, key, value, error, ts FROM quarantine "
                                    "ORDER BY id").fetchall()
        return [QuarantinedRow(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]))
                for r in rows]

    def drop_quarantined(self, row_id: int) -> bool:
        """Forget a quarantined row (the operator re-created or discarded it)."""
        with self._lock:
            cur = self._db.execute("DELETE FROM quarantine WHERE id = ?", (row_id,))
        return cur.rowcount > 0

    def get(self, kind: type[E], key: str) -> E | None:
        if self._raw:
            self._adopt(kind.KIND)
        return self._cache.get(kind.KIND, {}).get(key)  # type: ignore[return-value]

    def list(self, kind: type[E]) -> builtins.list[E]:
        if self._raw:
            self._adopt(kind.KIND)
        with self._lock:  # a consistent snapshot while another thread commits
            items = sorted(self._cache.get(kind.KIND, {}).items())
        return [obj for _, obj in items]  # type: ignore[misc]

    def list_nowait(self, kind: type[E]) -> builtins.list[E] | None:
        if kind.KIND in self._raw or not self._lock.acquire(blocking=False):
            return None  # rows to decode first, or a transaction in progress
        try:
            items = sorted(self._cache.get(kind.KIND, {}).items())
        finally:
            self._lock.release()
        return [obj for _, obj in items]  # type: ignore[misc]

    def count(self, kind: type[Entity]) -> int:
        if self._raw:
            self._adopt(kind.KIND)
        return len(self._cache.get(kind.KIND, {}))

    def last_seq(self) -> int:
        return self._seq

    # -- writing -------------------------------------------------------------------
    @contextmanager
    def transaction(self, actor: str, reason: str = "") -> Iterator[_Txn]:
        """Stage writes in the block; commit them atomically when it exits cleanly."""
        with self._lock:
            txn = _Txn(self)
            yield txn
            changes, encoded = txn.plan()
            if changes:
                self._commit(changes, encoded, actor, reason)
        if changes:
            self._notify(changes, actor, reason)

    def _commit(self, changes: builtins.list[Change], encoded: builtins.list[str | None],
                actor: str, reason: str) -> None:
        ts = datetime.now(UTC).isoformat()
        txid = self._txid + 1
        seq = self._seq
        fence = self.fence
        epoch, member = (fence.epoch, fence.member) if fence else (0, self.member)
        obj_rows: builtins.list[tuple[str, str, str]] = []
        del_rows: builtins.list[tuple[str, str]] = []
        journal_rows: builtins.list[tuple[Any, ...]] = []
        texts = self._json
        for ch, value_json in zip(changes, encoded, strict=True):
            seq += 1
            kind, key = ch.kind, ch.key
            prev_json = texts.get(kind, {}).get(key)
            if value_json is None:
                del_rows.append((kind, key))
            else:
                obj_rows.append((kind, key, value_json))
            journal_rows.append((seq, txid, ts, actor, reason, _ACTION_TEXT[ch.action], kind, key,
                                 value_json, prev_json, epoch, member))
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            # one row: execute (executemany's per-call set-up costs more than the row)
            if len(obj_rows) == 1:
                db.execute(_UPSERT, obj_rows[0])
            elif obj_rows:
                db.executemany(_UPSERT, obj_rows)
            if del_rows:
                db.executemany(_DELETE, del_rows)
            if len(journal_rows) == 1:
                db.execute(_JOURNAL, journal_rows[0])
            else:
                db.executemany(_JOURNAL, journal_rows)
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"state store write failed, nothing applied: {exc}") from exc
            raise
        self._seq, self._txid = seq, txid
        if self._checkpointer is not None:
            self._checkpointer.wake()
        for ch, value_json in zip(changes, encoded, strict=True):
            bucket = self._cache.setdefault(ch.kind, {})
            jbucket = self._json.setdefault(ch.kind, {})
            if ch.value is None or value_json is None:
                bucket.pop(ch.key, None)
                jbucket.pop(ch.key, None)
            else:
                bucket[ch.key] = ch.value
                jbucket[ch.key] = value_json

    def make_durable(self) -> None:
        """Return once every commit made so far is on disk (``sync="full"``: one
        fdatasync of the WAL covers every commit since the previous one — group commit; no-op in
        the other modes, where ``commit`` already synced and ``normal`` does not)."""
        if self.sync_mode != "full" or self.path == ":memory:":
            return
        target = self._seq
        if target <= self._durable_seq:
            return
        with self._durable_lock:
            if target <= self._durable_seq:  # another caller's fsync covered it
                return
            target = self._seq
            self._sync_wal()
            self._durable_seq = max(self._durable_seq, target)

    def _sync_wal(self) -> None:
        """fdatasync the WAL (its frames and size, not its timestamps); a WAL a close
        folded into the database file has nothing left to sync."""
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise StoreError(f"state store {self.path}: cannot make the last commits "
                             f"durable (fsync of the WAL failed: {exc}); fix the disk "
                             f"before trusting acknowledged writes") from exc
        finally:
            os.close(fd)

    def subscribe(self, listener: Callable[..., None], *,
                  with_context: bool = False) -> Callable[[], None]:
        """Call ``listener(changes)`` after each commit — or ``listener(changes, actor,
        reason)`` with ``with_context=True``; returns an unsubscribe function."""
        entry = (listener, with_context)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry)

    def _notify(self, changes: builtins.list[Change], actor: str, reason: str) -> None:
        for listener, with_context in list(self._listeners):
            if with_context:
                listener(changes, actor, reason)
            else:
                listener(changes)

    # -- journal -------------------------------------------------------------------
    def journal(self, query: JournalQuery = JournalQuery()) -> builtins.list[JournalEntry]:
        where = ["seq > ?"] if not query.descending else ["(? = 0 OR seq < ?)"]
        args: list[Any] = [query.since] if not query.descending else [query.since, query.since]
        for column, value in (("kind", query.kind), ("key", query.key), ("actor", query.actor),
                              ("action", query.action.value if query.action else None)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        order = "DESC" if query.descending else "ASC"
        sql = (f"SELECT seq, txid, ts, actor, reason, action, kind, key, value, previous, "
               f"epoch, member "
               f"FROM journal WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?")
        args.append(max(0, min(query.limit, 10_000)))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            JournalEntry(
                seq=r[0], txid=r[1], ts=datetime.fromisoformat(r[2]), actor=r[3], reason=r[4],
                action=Action(r[5]), kind=r[6], key=r[7],
                value=json.loads(r[8]) if r[8] is not None else None,
                previous=json.loads(r[9]) if r[9] is not None else None,
                epoch=r[10], member=r[11],
            )
            for r in rows
        ]

    # -- tokens (secrets; only hashes stored) --------------------------------------
    def add_token(self, sha256: str, name: str, role: str, tenant: str | None) -> None:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO tokens(sha256, name, role, tenant, created) VALUES (?,?,?,?,?)",
                    (sha256, name, role, tenant, datetime.now(UTC).isoformat()),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"a token named {name!r} already exists") from exc
        self._durable_token_write()

    def find_token(self, sha256: str) -> tuple[str, str, str | None] | None:
        """``(name, role, tenant)`` of a live token with this hash, else None."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, role, tenant FROM tokens WHERE sha256 = ? AND revoked = 0",
                (sha256,),
            ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def revoke_token(self, name: str) -> bool:
        with self._lock:
            cur = self._db.execute("UPDATE tokens SET revoked = 1 WHERE name = ?", (name,))
        self._durable_token_write()
        return cur.rowcount > 0

    def _durable_token_write(self) -> None:
        """A token created or revoked is acknowledged at once (printed, written to a
        file, answered): on disk before that, in ``full`` mode too."""
        if self.sync_mode == "full" and self.path != ":memory:":
            with self._durable_lock:
                self._sync_wal()

    def list_tokens(self) -> builtins.list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, role, tenant, created, revoked FROM tokens ORDER BY name"
            ).fetchall()
        return [dict(zip(("name", "role", "tenant", "created", "revoked"), r, strict=True))
                for r in rows]

    # -- small metadata (e.g. which config was applied last) ------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE "
                             "SET v = excluded.v", (key, value))

    # -- backup (GBA-6.8) -------------------------------------------------------------
    def dump(self) -> StoreDump:
        """Everything, read inside one SQLite read transaction (consistent, online)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                objects = [list(r) for r in db.execute(
                    "SELECT kind, key, value FROM objects ORDER BY kind, key")]
                journal = [
                    {"seq": r[0], "txid": r[1], "ts": r[2], "actor": r[3], "reason": r[4],
                     "action": r[5], "kind": r[6], "key": r[7],
                     "value": json.loads(r[8]) if r[8] is not None else None,
                     "previous": json.loads(r[9]) if r[9] is not None else None,
                     "epoch": r[10], "member": r[11]}
                    for r in db.execute(
                        "SELECT seq, txid, ts, actor, reason, action, kind, key, value, "
                        "previous, epoch, member FROM journal ORDER BY seq")]
                meta = dict(db.execute("SELECT k, v FROM meta ORDER BY k").fetchall())
                tokens = [dict(zip(("sha256", "name", "role", "tenant", "created", "revoked"),
                                   r, strict=True))
                          for r in db.execute("SELECT sha256, name, role, tenant, created, "
                                              "revoked FROM tokens ORDER BY name")]
                quarantine = [dict(zip(("id", "kind", "key", "value", "error", "ts"), r,
                                       strict=True))
                              for r in db.execute("SELECT id, kind, key, value, error, ts "
                                                  "FROM quarantine ORDER BY id")]
            finally:
                db.execute("COMMIT")
        return {"objects": objects, "journal": journal, "meta": meta, "tokens": tokens,
                "quarantine": quarantine}

    def load_dump(self, dump: StoreDump) -> None:
        """Write a snapshot into this store in one transaction; refused unless empty."""
        with self._lock:
            db = self._db
            (n,) = db.execute("SELECT (SELECT COUNT(*) FROM objects) + (SELECT COUNT(*) FROM "
                              "journal) + (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) "
                              "FROM quarantine)").fetchone()
            if n:
                raise StoreError(f"state store {self.path} is not empty ({n} rows); restore "
                                 "only into an empty state directory")
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT INTO objects(kind, key, value) VALUES (?,?,?)",
                               [tuple(o) for o in dump["objects"]])
                db.executemany(
                    "INSERT INTO journal(seq, txid, ts, actor, reason, action, kind, key, "
                    "value, previous, epoch, member) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(e["seq"], e["txid"], e["ts"], e["actor"], e["reason"], e["action"],
                      e["kind"], e["key"], _json_or_none(e["value"]),
                      _json_or_none(e["previous"]), e.get("epoch", 0), e.get("member", ""))
                     for e in dump["journal"]])
                db.executemany("INSERT INTO meta(k, v) VALUES (?, ?)",
                               sorted(dump["meta"].items()))
                db.executemany(
                    "INSERT INTO tokens(sha256, name, role, tenant, created, revoked) "
                    "VALUES (?,?,?,?,?,?)",
                    [(t["sha256"], t["name"], t["role"], t["tenant"], t["created"],
                      int(t["revoked"])) for t in dump["tokens"]])
                db.executemany(
                    "INSERT INTO quarantine(id, kind, key, value, error, ts) "
                    "VALUES (?,?,?,?,?,?)",
                    [(q["id"], q["kind"], q["key"], q["value"], q["error"], q["ts"])
                     for q in dump.get("quarantine", [])])
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"restore into {self.path} failed, nothing "
                                     f"written: {exc}") from exc
                raise
            self._cache.clear()
            self._json.clear()
            self._raw.clear()
            self._load()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._db.close()


class _Checkpointer:
    """Copies the WAL back into the database file off the writer's path: a daemon
    thread with its own connection runs a PASSIVE checkpoint (never blocks the writer
    or readers) ``CHECKPOINT_INTERVAL_S`` after a commit woke it."""

    def __init__(self, path: str, synchronous: str, last_seq: Callable[[], int]) -> None:
        self._path = path
        self._synchronous = synchronous
        self._last_seq = last_seq
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpn-store-checkpoint",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                 timeout=10.0)
        except sqlite3.Error as exc:  # the writer's own cap still bounds the WAL
            log.warning("state store %s: background checkpointer could not open the file "
                        "(%s); the writer checkpoints every %d WAL pages instead",
                        self._path, exc, WAL_CAP_PAGES)
            return
        done = -1
        try:
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            while True:
                self._wake.wait()
                # let a burst of commits pile up; a close ends the wait at once
                if self._stopping.wait(CHECKPOINT_INTERVAL_S):
                    return
                self._wake.clear()
                seq = self._last_seq()
                if seq == done:
                    continue
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    done = seq
                except sqlite3.Error as exc:
                    log.warning("state store %s: background checkpoint failed (%s); "
                                "retrying after the next commit", self._path, exc)
        finally:
            db.close()


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))
