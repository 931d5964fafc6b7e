"""``cpn backup`` / ``cpn restore`` (GBA-6.8): a consistent snapshot that comes back
exactly, on either backend and across them; corrupt, foreign and truncated files and a
non-empty target are refused with the problem named and nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
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
    (lambda raw: raw.replace(b'"version":1', b'"version":99'), "version 99"),
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
