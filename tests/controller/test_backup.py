"""``cpn backup`` / ``cpn restore`` (GBA-6.8): a consistent snapshot that comes back
exactly, on either backend and across them; corrupt, foreign and truncated files and a
non-empty target are refused with the problem named and nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from controller.cli.main import app
from controller.models import ComputeNode, Site, SiteKind
from controller.store import SqliteStore, Store, open_store
from labs.etcd import EtcdCluster, have_etcd

runner = CliRunner()


def seed(s: Store) -> None:
    with s.transaction("ops", "onboard") as txn:
        txn.put(Site(name="A", kind=SiteKind.MEC, region="r"))
        txn.put(ComputeNode(site="A", name="n1"))
    with s.transaction("ops", "move") as txn:
        txn.put(Site(name="A", kind=SiteKind.MEC, region="north"))
    s.add_token("ab" * 32, "dash", "viewer", None)
    s.set_meta("config_hash", "xyz")


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Path]:
    s = SqliteStore(tmp_path / "src" / "state.db")
    seed(s)
    s.close()
    yield tmp_path / "src"


def test_backup_and_restore_round_trip_through_the_cli(source: Path, tmp_path: Path) -> None:
    f = tmp_path / "b.json"
    r = runner.invoke(app, ["backup", str(f), "--state", str(source)])
    assert r.exit_code == 0, r.output
    assert "2 objects" in r.output and "seq 3" in r.output
    assert f.stat().st_mode & 0o777 == 0o600
    r = runner.invoke(app, ["restore", str(f), "--state", str(tmp_path / "new")])
    assert r.exit_code == 0, r.output
    a, b = SqliteStore(source / "state.db"), SqliteStore(tmp_path / "new" / "state.db")
    try:
        assert a.dump() == b.dump()
        assert b.find_token("ab" * 32) == ("dash", "viewer", None)
    finally:
        a.close()
        b.close()
    r = runner.invoke(app, ["restore", str(f), "--state", str(tmp_path / "new")])
    assert r.exit_code != 0 and "not empty" in r.output


@pytest.mark.parametrize(("damage", "message"), [
    (lambda raw: raw[: len(raw) // 2], "corrupt or truncated"),
    (lambda raw: raw.replace(b'"north"', b'"south"'), "checksum mismatch"),
    (lambda raw: json.dumps({"hello": "world"}).encode(), "not a CPN backup"),
    (lambda raw: raw.replace(b'"version":2', b'"version":99'), "version 99"),
])
def test_damaged_or_foreign_files_are_refused_and_nothing_written(
        source: Path, tmp_path: Path, damage: object, message: str) -> None:
    f = tmp_path / "b.json"
    assert runner.invoke(app, ["backup", str(f), "--state", str(source)]).exit_code == 0
    f.write_bytes(damage(f.read_bytes()))  # type: ignore[operator]
    r = runner.invoke(app, ["restore", str(f), "--state", str(tmp_path / "new")])
    assert r.exit_code != 0 and message in r.output, r.output
    assert "nothing restored" in r.output
    assert not (tmp_path / "new").exists()


def test_an_object_that_no_longer_validates_is_refused(source: Path, tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "b.json"
    assert runner.invoke(app, ["backup", str(f), "--state", str(source)]).exit_code == 0
    doc = json.loads(f.read_text())
    doc["body"]["objects"][0][2] = json.dumps({"name": "A", "kind": "moon"})
    doc["sha256"] = hashlib.sha256(json.dumps(doc["body"], sort_keys=True,
                                              separators=(",", ":")).encode()).hexdigest()
    f.write_text(json.dumps(doc))
    r = runner.invoke(app, ["restore", str(f), "--state", str(tmp_path / "new")])
    assert r.exit_code != 0 and "does not validate" in r.output, r.output
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(not have_etcd(), reason="needs etcd-server (bootstrap.sh)")
def test_sqlite_to_etcd_and_back(source: Path, tmp_path: Path) -> None:
    with EtcdCluster(1) as cluster:
        f, g = tmp_path / "b.json", tmp_path / "c.json"
        url = cluster.url("/restored")
        assert runner.invoke(app, ["backup", str(f), "--state", str(source)]).exit_code == 0
        r = runner.invoke(app, ["restore", str(f), "--store", url])
        assert r.exit_code == 0, r.output
        e = open_store(url)
        try:
            assert e.list(Site) == [Site(name="A", kind=SiteKind.MEC, region="north")]
            assert e.last_seq() == 3 and [x.seq for x in e.journal()] == [1, 2, 3]
            with e.transaction("ops") as txn:  # the restored cluster keeps counting
                txn.put(Site(name="B", kind=SiteKind.MEC, region="r"))
            assert e.last_seq() == 4
        finally:
            e.close()
        r = runner.invoke(app, ["backup", str(g), "--store", url])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["restore", str(g), "--state", str(tmp_path / "back")])
        assert r.exit_code == 0, r.output
        back = SqliteStore(tmp_path / "back" / "state.db")
        try:
            assert [s.name for s in back.list(Site)] == ["A", "B"]
            assert back.find_token("ab" * 32) == ("dash", "viewer", None)
        finally:
            back.close()
        r = runner.invoke(app, ["restore", str(f), "--store", url])
        assert r.exit_code != 0 and "not empty" in r.output


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20).map(lambda doc: json.dumps(doc).encode()))
def test_any_file_is_read_or_refused_with_a_validation_error(
        tmp_path: Path, raw: bytes) -> None:
    from controller.errors import ValidationError
    from controller.store.backup import read_backup

    f = tmp_path / "fuzz.json"
    f.write_bytes(raw)
    with pytest.raises(ValidationError):
        read_backup(f)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_damaged_real_backup_is_refused_never_half_read(
        source: Path, tmp_path: Path, data: st.DataObject) -> None:
    from controller.errors import ValidationError
    from controller.store.backup import read_backup

    f = tmp_path / "b.json"
    if not f.exists():
        assert runner.invoke(app, ["backup", str(f), "--state", str(source)]).exit_code == 0
    raw = bytearray(f.read_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]))
    g = tmp_path / "damaged.json"
    g.write_bytes(bytes(raw))
    try:
        _header, body = read_backup(g)
    except ValidationError:
        return
    # a flip that keeps the document valid and the checksum right can only be in the
    # header's free-form fields (created, source, counts): the body is intact
    assert body == read_backup(f)[1]


def _poisoned_source(tmp_path: Path) -> Path:
    """A state directory with one row the store refuses to load (quarantined at open)."""
    import sqlite3

    src = tmp_path / "poisoned"
    s = SqliteStore(src / "state.db")
    seed(s)
    s.close()
    con = sqlite3.connect(src / "state.db")
    with con:
        con.execute("INSERT INTO objects(kind, key, value) VALUES ('site', 'broken', "
                    "'{not json')")
    con.close()
    SqliteStore(src / "state.db").close()  # opening sets it aside
    return src


def test_backups_omitted_quarantined_rows_now_they_come_back_quarantined(
        tmp_path: Path) -> None:
    """A backup used to carry objects, journal, meta and tokens only: a row the store
    had quarantined was lost by backup + restore. It is now in the backup verbatim and
    restored as quarantined (SQLite → SQLite, and SQLite → etcd when etcd is here)."""
    src = _poisoned_source(tmp_path)
    a = SqliteStore(src / "state.db")
    want = [(q.id, q.kind, q.key, q.value, q.error) for q in a.quarantined()]
    a.close()
    assert [w[1:4] for w in want] == [("site", "broken", "{not json")]
    f = tmp_path / "q.json"
    r = runner.invoke(app, ["backup", str(f), "--state", str(src)])
    assert r.exit_code == 0, r.output
    assert "1 quarantined rows" in r.output
    assert json.loads(f.read_bytes())["counts"]["quarantined"] == 1
    r = runner.invoke(app, ["restore", str(f), "--state", str(tmp_path / "back")])
    assert r.exit_code == 0, r.output
    assert "1 quarantined rows kept as quarantined" in r.output
    b = SqliteStore(tmp_path / "back" / "state.db")
    try:
        assert [(q.id, q.kind, q.key, q.value, q.error) for q in b.quarantined()] == want
        assert b.get(Site, "broken") is None and [s.name for s in b.list(Site)] == ["A"]
    finally:
        b.close()
    if have_etcd():
        with EtcdCluster(1) as cluster:
            url = cluster.url("/q")
            r = runner.invoke(app, ["restore", str(f), "--store", url])
            assert r.exit_code == 0, r.output
            e = open_store(url)
            try:
                assert [(q.id, q.kind, q.key, q.value, q.error)
                        for q in e.quarantined()] == want
                assert e.dump()["quarantine"] == SqliteStore(src / "state.db").dump()[
                    "quarantine"]
            finally:
                e.close()


def test_a_version_1_backup_without_quarantine_still_restores(source: Path,
                                                              tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "b.json"
    assert runner.invoke(app, ["backup", str(f), "--state", str(source)]).exit_code == 0
    doc = json.loads(f.read_bytes())
    body = {k: v for k, v in doc["body"].items() if k != "quarantine"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    doc.update(version=1, body=body, sha256=hashlib.sha256(canon).hexdigest())
    f.write_text(json.dumps(doc))
    r = runner.invoke(app, ["restore", str(f), "--state", str(tmp_path / "v1")])
    assert r.exit_code == 0, r.output
    s = SqliteStore(tmp_path / "v1" / "state.db")
    try:
        assert [x.name for x in s.list(Site)] == ["A"] and s.quarantined() == []
    finally:
        s.close()
