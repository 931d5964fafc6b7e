"""Datastores without SSH: confirmed commits across a controller stop or crash, and the
pure rollback plan (``controller.netconf.confirm``)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path

from controller.config import apply_config, load_config
from controller.models import Service, Site, SiteKind
from controller.netconf.confirm import PendingCommit, plan_rollback
from controller.netconf.datastore import PENDING_META, Datastores
from controller.store import JournalQuery, SqliteStore
from controller.store.base import Action, Change
from tests.conftest import ROOT

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def edit(latency: int) -> ET.Element:
    return ET.fromstring(
        f'<config xmlns="{NC}"><cpn xmlns="urn:cpn:yang:cpn"><services><service>'
        f"<name>video</name><requirements><max-latency-ms>{latency}</max-latency-ms>"
        "</requirements></service></services></cpn></config>")


def latency(store: SqliteStore) -> float:
    svc = store.get(Service, "video")
    assert svc is not None
    return svc.requirements.max_latency_ms or 0.0


def confirmed_commit(ds: Datastores, value: int) -> None:
    async def run() -> None:
        ds.edit("candidate", edit(value), 1)
        ds.commit(1, "carol", confirmed=True, timeout_s=600)
        assert ds.pending is not None
        ds.pending.cancel_timer()  # the loop ends here; the process "dies" with it

    asyncio.run(run())


def test_unconfirmed_commit_is_rolled_back_after_a_crash(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        apply_config(store, load_config(ROOT / "examples" / "security-video.yaml"))
        before = latency(store)
        confirmed_commit(Datastores(store), 77)
        assert latency(store) == 77 and store.get_meta(PENDING_META)
        # no stop(): a crash. The next NETCONF start rolls it back
        Datastores(store).resume()
        assert latency(store) == before and not store.get_meta(PENDING_META)
        last = store.journal(JournalQuery(descending=True, limit=1))[0]
        assert (last.actor, last.key) == ("netconf:restart", "video")
        Datastores(store).resume()  # nothing pending any more: no change
        assert store.journal(JournalQuery(descending=True, limit=1))[0].seq == last.seq
    finally:
        store.close()


def test_unconfirmed_commit_is_rolled_back_when_the_controller_stops(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        apply_config(store, load_config(ROOT / "examples" / "security-video.yaml"))
        before = latency(store)
        ds = Datastores(store)
        confirmed_commit(ds, 78)
        ds.stop()
        assert latency(store) == before and not store.get_meta(PENDING_META)
    finally:
        store.close()


def site(region: str) -> Site:
    return Site(name="A", kind=SiteKind.MEC, region=region)


def test_rollback_plan_reverts_only_what_is_still_as_the_commit_left_it() -> None:
    p = PendingCommit(session=1, persist=None)
    p.record([Change(Action.CREATE, "site", "A", site("one"), None)])
    p.record([Change(Action.UPDATE, "site", "A", site("two"), site("one"))])  # follow-up
    assert p.own[("site", "A")] == (None, site("two"))  # earliest 'before' kept
    reverts, kept = plan_rollback(p, lambda kind, key: site("two"))
    assert [(r.kind, r.key, r.target) for r in reverts] == [("site", "A", None)]
    reverts, kept = plan_rollback(p, lambda kind, key: site("by-rest"))
    assert reverts == [] and "another writer" in kept[("site", "A")]
    restored = PendingCommit.from_json(p.to_json(), {"site": Site})
    assert restored.own == p.own and restored.session == 1


def test_confirm_rules_for_sessions_and_persist_ids() -> None:
    bound = PendingCommit(session=3, persist=None)
    assert bound.may_act(3, None) is None
    assert "session 3" in (bound.may_act(4, None) or "")
    assert bound.may_act(3, "x") is not None
    kept = PendingCommit(session=3, persist="tok")
    assert kept.may_act(9, "tok") is None
    assert kept.may_act(3, None) is not None and kept.may_act(9, "other") is not None
