"""SQLite backend: the shared ``Store`` contract plus what only a file store has."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

import pytest

from controller.models import ComputeResource, Site
from controller.store import Action, JournalQuery, SqliteStore, Store, StoreError
from tests.controller.store_contract import StoreContract, site


class TestSqliteStoreContract(StoreContract):
    def fresh(self) -> Store:
        return SqliteStore(self.tmp / f"{uuid.uuid4().hex}.db")

    def reopen(self, store: Store) -> Store:
        assert isinstance(store, SqliteStore)
        store.close()
        return SqliteStore(store.path)


def test_a_file_from_before_ha_gains_the_epoch_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.executescript("""CREATE TABLE journal (seq INTEGER PRIMARY KEY, txid INTEGER NOT NULL,
        ts TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL, action TEXT NOT NULL,
        kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT, previous TEXT);""")
    con.close()
    s = SqliteStore(db)
    try:
        with s.transaction("a") as txn:
            txn.put(site())
        [e] = s.journal(JournalQuery())
        assert (e.seq, e.epoch, e.member) == (1, 0, "")
    finally:
        s.close()


def test_plugin_kinds_survive_a_restart_whatever_the_import_order(tmp_path: Path) -> None:
    """Plug-in packages register their kinds on import, which in ``cpn run`` happens
    after the store opened: a fresh process must still serve (and update, journaling
    the previous value) every stored SRv6 slice and accelerator card."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    db = tmp_path / "state.db"
    write = f"""
from controller.store import SqliteStore
from srv6.models import Slice
s = SqliteStore({str(db)!r})
with s.transaction("t", "seed") as txn:
    txn.put(Slice(name="gold", color=20, guaranteed_mbps=10))
"""
    check = f"""
from controller.store import SqliteStore
s = SqliteStore({str(db)!r})  # opened before srv6.models is imported
from controller.store import Action, JournalQuery
from srv6.models import Slice
assert [x.name for x in s.list(Slice)] == ["gold"], s.list(Slice)
with s.transaction("t", "raise") as txn:
    txn.put(Slice(name="gold", color=20, guaranteed_mbps=20))
last = s.journal(JournalQuery(key="gold"))[-1]
assert last.action is Action.UPDATE and last.previous is not None, last
print("ok")
"""
    for code in (write, check):
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def _poison(db: Path, kind: str, key: str, value: str) -> None:
    """Write a row the way an older version (or a hand edit) left it."""
    import sqlite3

    con = sqlite3.connect(db)
    with con:
        con.execute("INSERT OR REPLACE INTO objects(kind, key, value) VALUES (?, ?, ?)",
                    (kind, key, value))
    con.close()


def test_one_row_that_no_longer_validates_no_longer_refuses_the_whole_store(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """#15: a resource stored as ``"value": null`` (1e999 accepted, written as null) made
    every later start refuse the state directory. It is now quarantined: kept verbatim,
    journaled, logged with the fix; everything else loads and stays writable."""
    db = tmp_path / "state.db"
    s = SqliteStore(db)
    with s.transaction("a") as txn:
        txn.put(site("MEC-1"))
        txn.put(ComputeResource(site="MEC-1", name="gpu", description="cards", value=4,
                                scope=["*"], shareable=True))
    s.close()
    poisoned = ('{"site":"MEC-1","name":"gpu","description":"cards","value":null,'
                '"scope":["*"],"shareable":true}')
    _poison(db, "resource", "MEC-1/gpu", poisoned)
    _poison(db, "site", "broken", "{not json")
    with caplog.at_level("ERROR", logger="cpn.store"):
        s = SqliteStore(db)
    try:
        assert [x.name for x in s.list(Site)] == ["MEC-1"]
        assert s.list(ComputeResource) == []
        rows = s.quarantined()
        assert [(q.kind, q.key) for q in rows] == [("resource", "MEC-1/gpu"),
                                                   ("site", "broken")]
        assert rows[0].value == poisoned and "static resource" in rows[0].error
        assert "cpn quarantine drop" in caplog.text and "MEC-1/gpu" in caplog.text
        gone = s.journal(JournalQuery(actor="store:quarantine"))
        assert [(e.action, e.key) for e in gone] == [(Action.DELETE, "MEC-1/gpu"),
                                                     (Action.DELETE, "broken")]
        assert gone[0].previous is not None and gone[0].previous["value"] is None
        assert gone[1].previous is None  # not JSON: kept only in the quarantine table
        # the operator re-creates it with a valid value; the seq keeps growing
        seq = s.last_seq()
        with s.transaction("ops", "re-create") as txn:
            txn.put(ComputeResource(site="MEC-1", name="gpu", description="cards", value=4,
                                    scope=["*"], shareable=True))
        assert s.last_seq() == seq + 1
        assert s.drop_quarantined(rows[0].id) and not s.drop_quarantined(rows[0].id)
    finally:
        s.close()
    s = SqliteStore(db)  # reopening does not quarantine again, nothing lost
    try:
        assert [(q.kind, q.key) for q in s.quarantined()] == [("site", "broken")]
        assert s.get(ComputeResource, "MEC-1/gpu") is not None
    finally:
        s.close()


def test_rows_of_a_late_registered_kind_are_quarantined_on_first_use(tmp_path: Path) -> None:
    """A plug-in kind decoded lazily (registered after the store opened) is quarantined
    the same way, on first use, without failing that use."""
    from controller.models.base import ENTITY_KINDS

    db = tmp_path / "state.db"
    SqliteStore(db).close()
    _poison(db, "site", "bad", '{"name": "bad"}')
    cls = ENTITY_KINDS.pop("site")
    try:
        s = SqliteStore(db)  # "site" unknown at open: kept raw
    finally:
        ENTITY_KINDS["site"] = cls
    try:
        assert s.quarantined() == []
        assert s.list(Site) == []
        assert [q.key for q in s.quarantined()] == ["bad"]
    finally:
        s.close()


def test_sync_modes_full_is_the_default_commit_fsyncs_inside_every_commit(
        tmp_path: Path) -> None:
    """``full`` (default) and ``normal`` commit with SQLite ``synchronous=NORMAL`` (1);
    ``commit`` with ``FULL`` (2), an fsync inside every commit."""
    stores = {m: SqliteStore(tmp_path / f"{m}.db", sync=m) for m in ("commit", "normal")}
    stores["full"] = SqliteStore(tmp_path / "default.db")
    try:
        assert stores["full"].sync_mode == "full"
        got = {m: s._db.execute("PRAGMA synchronous").fetchone()[0] for m, s in stores.items()}
        assert got == {"full": 1, "commit": 2, "normal": 1}
    finally:
        for s in stores.values():
            s.close()


def test_make_durable_fsyncs_once_for_every_commit_since_the_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit at the acknowledgement (``sync="full"``): one fsync of the WAL covers
    every commit made before it; nothing new, no fsync; other modes never fsync here."""
    import os

    calls: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd))[1])
    s = SqliteStore(tmp_path / "s.db")
    n = SqliteStore(tmp_path / "n.db", sync="normal")
    try:
        for i in range(3):
            with s.transaction("t") as txn:
                txn.put(site(f"S{i}"))
        s.make_durable()
        assert len(calls) == 1 and s._durable_seq == s.last_seq() == 3
        s.make_durable()
        assert len(calls) == 1
        with n.transaction("t") as txn:
            txn.put(site())
        n.make_durable()
        assert len(calls) == 1
    finally:
        s.close()
        n.close()


def test_an_unknown_sync_mode_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="'fast' is not one of full, commit, normal.*fix"):
        SqliteStore(tmp_path / "a.db", sync="fast")
    assert not (tmp_path / "a.db").exists()


def test_open_store_passes_the_sync_mode_to_the_sqlite_file(tmp_path: Path) -> None:
    from controller.store import open_store

    s = open_store(f"sqlite://{tmp_path / 'a.db'}", sync="normal")
    try:
        assert isinstance(s, SqliteStore) and s.sync_mode == "normal"
    finally:
        s.close()


def test_checkpoints_run_in_the_background_not_on_the_writer_path(tmp_path: Path) -> None:
    """The writer never checkpoints below ``WAL_CAP_PAGES``; the background thread copies
    the WAL into the database file shortly after commits (the file grows)."""
    import time

    from controller.store.sqlite import CHECKPOINT_INTERVAL_S

    db = tmp_path / "s.db"
    s = SqliteStore(db, sync="normal")
    try:
        before = db.stat().st_size
        for i in range(200):
            with s.transaction("t") as txn:
                txn.put(ComputeResource(site="MEC-1", name=f"r{i}", description="d",
                                        value=float(i), scope=["n"]))
        deadline = time.monotonic() + CHECKPOINT_INTERVAL_S + 10
        while db.stat().st_size <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.stat().st_size > before
    finally:
        s.close()
    assert not Path(f"{db}-wal").exists()  # the last close folds the WAL in


def test_an_equal_write_is_not_journaled_and_a_changed_one_keeps_its_previous(
        tmp_path: Path) -> None:
    """One serialisation per object: the staged value's JSON is compared with the stored
    JSON, so re-putting an equal object commits nothing."""
    s = SqliteStore(tmp_path / "s.db")
    try:
        res = ComputeResource(site="MEC-1", name="r", description="d", value=1.0,
                              scope=["n"])
        with s.transaction("t") as txn:
            txn.put(res)
        seq = s.last_seq()
        with s.transaction("t") as txn:
            txn.put(res.model_copy())
        assert s.last_seq() == seq
        with s.transaction("t") as txn:
            txn.put(res.model_copy(update={"value": 2.0}))
        [e] = s.journal(JournalQuery(since=seq))
        assert e.action is Action.UPDATE and e.previous is not None
        assert (e.previous["value"], e.value and e.value["value"]) == (1.0, 2.0)
    finally:
        s.close()


def test_list_nowait_is_none_while_another_thread_commits(tmp_path: Path) -> None:
    """SQLite's index is held for a whole transaction: the loop's read is then None
    (the REST list waits on a worker thread instead of blocking the loop, issue #19);
    the committing thread itself still reads."""
    s = SqliteStore(tmp_path / "s.db")
    inside, release = threading.Event(), threading.Event()
    own: list[object] = []

    def writer() -> None:
        with s.transaction("w") as txn:
            txn.put(site("A"))
            own.append(s.list_nowait(Site))
            inside.set()
            release.wait(5)

    th = threading.Thread(target=writer)
    th.start()
    try:
        assert inside.wait(5)
        assert s.list_nowait(Site) is None and own == [[]]
    finally:
        release.set()
        th.join(10)
    assert [x.name for x in s.list_nowait(Site) or []] == ["A"]
    s.close()
