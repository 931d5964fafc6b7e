"""Controller logic on in-memory NEs: all-or-nothing, pending/backoff, bad NE data,
reconcile, restoration choice, RFC 8345 view, plugin wiring."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.errors import CommitError, RemoteProtocolError
from controller.store import JournalQuery, SqliteStore
from labs.optical.fixture import ne_config, ring_fibers
from optical.codec import parse_snapshot
from optical.component import OpticalComponent
from optical.config import OpticalSection
from optical.device import FakeDevice
from optical.models import NeSnapshot, NeState, PathState
from optical.persist import OpticalPathRecord, from_record
from optical.rwa import Request
from optical.service import OpticalController
from optical.topology import network_json


def fakes() -> dict[str, FakeDevice]:
    fib = ring_fibers(6)
    return {f"ne{i}": FakeDevice(f"ne{i}", ne_config(f"ne{i}", fib)) for i in range(6)}


def test_rejecting_ne_rolls_back_the_others() -> None:
    devs = fakes()
    devs["ne3"].reject = "invalid-value: channel in use"

    async def go() -> None:
        ctl = OpticalController(devs)
        await ctl.start()
        with pytest.raises(CommitError, match="NE ne3: edit-config rejected: invalid-value"):
            await ctl.create_path(Request("p", "ne1", "ne3"))
        assert ctl.paths["p"].state is PathState.FAILED
        await ctl.stop()
    asyncio.run(go())
    assert all(not d.running.xcs for d in devs.values())
    assert "cancel-commit" in devs["ne1"].rpcs


def test_unreachable_ne_leaves_path_pending_then_retried() -> None:
    devs = fakes()

    async def go() -> None:
        ctl = OpticalController(devs, retry_base_s=0.01)
        await ctl.start()
        devs["ne2"].reachable = False
        path = await ctl.create_path(Request("p", "ne1", "ne3"))
        assert path.state is PathState.PENDING and "ne2" in path.error
        assert not devs["ne1"].running.xcs  # nothing half-done meanwhile
        devs["ne2"].reachable = True
        ok = await ctl.wait_for(lambda: path.state.value == "active", 5)
        assert ok and path.state.value == "active"
        assert "p" in devs["ne2"].running.xcs
        await ctl.stop()
    asyncio.run(go())


class Garbled(FakeDevice):
    garble = False

    async def discover(self) -> NeSnapshot:
        if self.garble:
            return parse_snapshot(self.name, "<data><device xmlns='urn:cpn:params:xml:ns:"
                                  "yang:cpn-optical-device'><link><id>x</id></link></device>"
                                  "</data>")
        return await super().discover()


def test_invalid_ne_data_is_ignored_and_previous_topology_kept() -> None:
    with pytest.raises(RemoteProtocolError, match="missing <remote-ne>"):
        parse_snapshot("ne9", "<data><device xmlns='urn:cpn:params:xml:ns:yang:"
                       "cpn-optical-device'><link><id>x</id></link></device></data>")
    devs = fakes()
    g = Garbled("ne0", devs["ne0"].running)
    devs["ne0"] = g

    async def go() -> None:
        ctl = OpticalController(devs)
        await ctl.start()
        before = ctl.snaps["ne0"]
        g.garble = True
        assert await ctl.refresh("ne0") is before
        assert ctl.snaps["ne0"].config.links.keys() == before.config.links.keys()
        await ctl.stop()
    asyncio.run(go())


def test_reconcile_readds_missing_and_removes_stale() -> None:
    devs = fakes()

    async def go() -> None:
        ctl = OpticalController(devs)
        await ctl.start()
        await ctl.create_path(Request("p", "ne1", "ne3"))
        ne2 = devs["ne2"]
        xcs = dict(ne2.running.xcs)
        stale = dataclasses.replace(xcs["p"], name="old", channel=40)
        xcs.pop("p")
        xcs["old"] = stale
        ne2.running = dataclasses.replace(ne2.running, xcs=xcs)
        await ctl.refresh("ne2")
        edit = await ctl.reconcile("ne2")
        assert [x.name for x in edit.xcs] == ["p"] and edit.delete == (("och-xc", "old"),)
        assert set(ne2.running.xcs) == {"p"}
        await ctl.stop()
    asyncio.run(go())


def test_cut_on_1plus1_path_switches_and_unprotected_is_restored() -> None:
    devs = fakes()

    async def go() -> None:
        ctl = OpticalController(devs)
        await ctl.start()
        prot = await ctl.create_path(Request("pp", "ne2", "ne4", protect=True))
        unp = await ctl.create_path(Request("up", "ne2", "ne4"))
        assert prot.protect is not None
        cut = unp.working.fibers[0]
        assert cut in prot.working.fibers
        for ne in ("ne2", "ne3"):
            devs[ne].state = NeState(links={cut: "down"})
            await ctl.refresh(ne)
        await ctl.evaluate()
        assert prot.active == "protect" and prot.state is PathState.ACTIVE
        assert unp.state is PathState.ACTIVE and cut not in unp.working.fibers
        assert unp.working.id in devs["ne4"].running.xcs
        await ctl.stop()
    asyncio.run(go())


def test_rfc8345_shape() -> None:
    devs = fakes()

    async def go() -> dict[str, object]:
        ctl = OpticalController(devs)
        await ctl.start()
        await ctl.create_path(Request("p", "ne1", "ne3"))
        out = network_json(ctl.snaps, ctl.paths)
        await ctl.stop()
        return out
    out = asyncio.run(go())
    net = out["ietf-network:networks"]["network"][0]  # type: ignore[index]
    assert net["network-id"] == "optical"
    assert {n["node-id"] for n in net["node"]} == {f"ne{i}" for i in range(6)}
    link = next(lk for lk in net["ietf-network-topology:link"] if lk["link-id"] == "f0-1,ne0")
    assert link["source"] == {"source-node": "ne0", "source-tp": "degree-1"}
    assert link["destination"]["dest-node"] == "ne1"
    assert net["cpn-optical-device:paths"][0]["state"] == "active"


def test_plugin_has_no_component_without_section() -> None:
    from optical import plugin

    class Rt:
        cfg = None
    assert plugin.components(Rt()) == []  # type: ignore[arg-type]
    from labs.plugin import BENCHES  # the lab registers the benches, not the package

    assert {"rwa", "optical-provision", "restoration"} <= set(BENCHES)


def test_paths_are_journaled_and_resumed_after_a_restart(tmp_path: Path) -> None:
    """A restarted controller knows its paths again (optical.persist): it re-sends a
    cross-connect an NE lost meanwhile, and never plans a new path onto a channel a
    surviving path still lights (without the records it would: same route, first fit,
    and the NE refuses the duplicate channel)."""
    devs = fakes()
    store = SqliteStore(tmp_path / "state.db")
    comp = OpticalComponent(OpticalSection())
    comp.rt = SimpleNamespace(store=store)  # type: ignore[assignment]

    async def first() -> None:
        ctl = OpticalController(devs, on_path=comp._store_path)
        await ctl.start()
        await ctl.create_path(Request("p1", "ne1", "ne3"))
        await ctl.create_path(Request("p2", "ne0", "ne2"))
        await ctl.delete_path("p2")
        await ctl.stop()
    asyncio.run(first())
    recs = store.list(OpticalPathRecord)
    assert [r.id for r in recs] == ["p1"] and recs[0].state is PathState.ACTIVE
    story = [e.reason for e in store.journal(JournalQuery(key="p2"))]
    assert story[0].startswith("optical path p2: active") and story[-1].endswith("deleted")
    assert all(e.actor == "optical" for e in store.journal(JournalQuery(key="p1")))
    store.close()
    # the NE ne2 lost p1's cross-connect while the controller was down
    devs["ne2"].running = dataclasses.replace(
        devs["ne2"].running, xcs={k: v for k, v in devs["ne2"].running.xcs.items()
                                  if k != "p1"})
    store = SqliteStore(tmp_path / "state.db")
    comp.rt = SimpleNamespace(store=store)  # type: ignore[assignment]

    async def second() -> None:
        ctl = OpticalController(devs, on_path=comp._store_path)
        await ctl.start([from_record(r) for r in store.list(OpticalPathRecord)])
        p1 = ctl.paths["p1"]
        assert p1.state is PathState.ACTIVE and "p1" in devs["ne2"].running.xcs
        p3 = await ctl.create_path(Request("p3", "ne1", "ne3"))
        assert p3.state is PathState.ACTIVE and p3.working.channel != p1.working.channel
        await ctl.stop()
    asyncio.run(second())
    assert {r.id for r in store.list(OpticalPathRecord)} == {"p1", "p3"}
    store.close()


def test_deleting_a_failed_path_touches_no_ne() -> None:
    devs = fakes()
    devs["ne3"].reject = "invalid-value: channel in use"

    async def go() -> None:
        ctl = OpticalController(devs)
        await ctl.start()
        with pytest.raises(CommitError):
            await ctl.create_path(Request("p", "ne1", "ne3"))
        devs["ne3"].reject = None
        before = {n: list(d.rpcs) for n, d in devs.items()}
        await ctl.delete_path("p")
        assert "p" not in ctl.paths
        assert {n: d.rpcs for n, d in devs.items()} == before
        await ctl.stop()
    asyncio.run(go())


def test_channels_lit_by_foreign_cross_connects_are_not_planned() -> None:
    # a cross-connect made by hand on ne1/ne2/ne3 lights channel 1 where p would go
    devs = fakes()

    async def go() -> None:
        ctl = OpticalController(devs)
        await ctl.start()
        hand = await ctl.create_path(Request("hand", "ne1", "ne3"))
        ctl.paths.pop("hand")  # the controller forgets it; the NEs keep it lit
        p = await ctl.create_path(Request("p", "ne1", "ne3"))
        assert p.state is PathState.ACTIVE and p.working.nodes == hand.working.nodes
        assert p.working.channel != hand.working.channel
        await ctl.stop()
    asyncio.run(go())
