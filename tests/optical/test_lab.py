"""Lab: 6 netconfd NEs (ring + chords + one OMSP span), driven only over NETCONF.

Shows (issue 7): an OTN path provisioned end to end and present in every NE's running
datastore; an NE fault mid-provision ⇒ full rollback naming the NE and the rpc-error;
fiber cuts ⇒ OMSP 1+1 switch keeps a path up, an unprotected path is restored, and
the IP link riding on it goes down/up with the new route's SRLGs (GBA-6.4.2e).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.errors import CommitError
from controller.models import Link
from controller.models.link import LinkState
from controller.ops.models import Alarm, Severity
from controller.store import SqliteStore
from labs.optical.fixture import OpticalLab
from optical.models import PathState, Rate
from optical.rwa import Request, plan
from optical.service import OpticalController
from tests.conftest import have, needs_netns

pytestmark = [needs_netns, pytest.mark.lab,
              pytest.mark.skipif(not have("netconfd"), reason="needs netconfd")]


@pytest.fixture(scope="module")
def lab() -> Iterator[OpticalLab]:
    with OpticalLab(6) as lab:
        yield lab


async def running_xcs(lab: OpticalLab, ne: str) -> dict[str, Any]:
    """Read an NE's running datastore with a fresh NETCONF session (not the controller's)."""
    dev = lab.device(ne)
    try:
        snap = await dev.discover()
        return {"xcs": snap.config.xcs, "odus": snap.config.odus}
    finally:
        await dev.close()


def test_otn_path_end_to_end_and_rollback_on_ne_fault(lab: OpticalLab) -> None:
    async def go() -> None:
        ctl = OpticalController(lab.devices())
        await ctl.start()
        try:
            assert len(ctl.snaps) == 6
            p = await ctl.create_path(Request("otn1", "ne1", "ne3", Rate.G100,
                                              odu_type="ODU4"))
            assert p.state is PathState.ACTIVE and p.odu is not None
            route = p.working.nodes
            for ne in route:
                got = (await running_xcs(lab, ne))
                assert got["xcs"]["otn1"].channel == p.working.channel
            for ne in (route[0], route[-1]):
                assert (await running_xcs(lab, ne))["odus"]["otn1"].type == "ODU4"
            # Inject a fault on the tail NE: a local xc occupies the channel the plan uses.
            pl = plan(ctl.network(), Request("bad", "ne2", "ne4"))
            assert pl.working is not None
            tail = pl.working.nodes[-1]
            deg = ctl.snaps[tail].config.degree_of(pl.working.fibers[-1])
            lab.command(tail, f"occupy {deg} {pl.working.channel}")
            try:
                with pytest.raises(CommitError, match=rf"NE {tail}: .*unique"):
                    await ctl.create_path(Request("bad", "ne2", "ne4"))
            finally:
                lab.command(tail, "release")
            assert ctl.paths["bad"].state is PathState.FAILED
            for ne in pl.working.nodes:
                assert "bad" not in (await running_xcs(lab, ne))["xcs"], f"{ne} kept the xc"
            await ctl.delete_path("otn1")
            assert "otn1" not in (await running_xcs(lab, route[0]))["xcs"]
        finally:
            await ctl.stop()
    asyncio.run(go())


def test_fiber_cuts_protect_and_restore_with_cross_layer(lab: OpticalLab,
                                                         store: SqliteStore) -> None:
    with store.transaction("test", "ip link over OTN") as txn:
        txn.put(Link(a="r1", b="r3", kind="otn"))

    def on_ip(key: str, up: bool, srlgs: list[str]) -> None:
        link = store.get(Link, key)
        assert link is not None
        with store.transaction("optical", "cross-layer") as txn:
            txn.put(link.model_copy(update={"state": LinkState.UP if up else LinkState.DOWN,
                                            "srlgs": srlgs}))

    async def go() -> None:
        ctl = OpticalController(lab.devices(), on_ip_link=on_ip)
        await ctl.start()
        try:
            prot = await ctl.create_path(Request("omsp1", "ne5", "ne1"))
            assert "f0-1" in prot.working.fibers
            unp = await ctl.create_path(Request("ip1", "ne1", "ne3"), ip_links=("r1~r3",))
            assert unp.working.fibers == ("f1-2", "f2-3")
            ip = store.get(Link, "r1~r3")
            assert ip is not None and ip.srlgs == ["duct-1", "duct-2"]
            # Cut the OMSP-protected span: NE switches, the path stays up.
            lab.cut("f0-1")
            assert await ctl.wait_for(lambda: any(h.startswith("omsp:f0-1")
                                                  for h in prot.history), 15)
            assert prot.state is PathState.ACTIVE
            # the switch may be seen first from the far-end NE's view; ne0's own
            # snapshot follows on its next refresh
            assert await ctl.wait_for(lambda: ctl.snaps["ne0"].state.active.get(
                "omsp-f0-1") == "protect", 10)
            assert any(a.type == "los" and a.resource == "f0-1" for a in ctl.alarms())
            # GBA-6.7: the NE's alarm reaches the controller's alarm store
            eng, aid = _alarm_store_sees(ctl, store)
            # Cut an unprotected fiber: restoration moves ip1 to a new route.
            lab.cut("f2-3")
            assert await ctl.wait_for(lambda: unp.state is PathState.ACTIVE
                                      and "f2-3" not in unp.working.fibers, 20), unp.history
            new = unp.working
            for ne in new.nodes:
                assert new.id in (await running_xcs(lab, ne))["xcs"]
            assert "ip1" not in (await running_xcs(lab, "ne2"))["xcs"], "old xc kept"
            link = store.get(Link, "r1~r3")
            assert link is not None
            assert link.state is LinkState.UP and "duct-2" not in link.srlgs
            # the span repaired: the NE clears its alarm, so does the alarm store
            lab.repair("f0-1")
            assert await ctl.wait_for(lambda: not any(
                a.resource == "f0-1" and a.type == "los" for a in ctl.alarms()), 20)
            eng.run_pass()
            alarm = store.get(Alarm, aid)
            assert alarm is not None and not alarm.active and alarm.count == 1
        finally:
            lab.repair("f0-1")
            lab.repair("f2-3")
            await ctl.stop()
    asyncio.run(go())


def _alarm_store_sees(ctl: OpticalController, store: SqliteStore) -> tuple[Any, str]:
    """Run the alarm engine's optical source over the running optical controller: the
    NE's loss-of-signal on f0-1 becomes a major ``optical-ne-alarm`` in the store."""
    import tempfile
    from types import SimpleNamespace

    from controller.ops.engine import AlarmEngine
    from controller.runtime import Runtime, Settings

    rt = Runtime(None, Settings(state=Path(tempfile.mkdtemp(prefix="cpn-optical-alarm-")),
                                extra={"optical": SimpleNamespace(ctl=ctl)}), store=store)
    eng = AlarmEngine()
    eng.rt = rt
    rt.alarm_sources["optical"] = eng._optical
    eng.run_pass()
    hits = [a for a in store.list(Alarm) if a.type == "optical-ne-alarm"
            and a.resource.endswith(":f0-1") and a.active]
    assert hits and hits[0].severity is Severity.MAJOR and "los" in hits[0].text
    return eng, hits[0].id
