"""The reconciler's cross-layer step (issue 14 item 4, GBA-5.2, GBA-6.4.3e/f) over
in-memory routers and a recording transport: the OTN path of an on-demand link is
brought up before any route steers onto it, released only after the routes are gone,
and an optical refusal fails the intent naming the optical constraint (nothing
programmed) or moves it to an IP path when one exists."""

from __future__ import annotations

from collections.abc import Collection
from types import SimpleNamespace

import pytest

from controller.models import Link, LinkKind
from controller.store import SqliteStore
from srv6.intents.crosslayer import Transport, TransportResult
from srv6.intents.models import IntentState
from srv6.intents.models import SrPolicyIntentStatus as Status
from srv6.models import SrPolicyIntent
from tests.srv6.intents.test_reconciler import Dead, Net, intent, steering

OTN = "R2~R3"


class Recording:
    """A ``Transport``: lights links on ``ensure`` unless told to refuse; records what
    the headend R1 held at every call."""

    def __init__(self, net: Net, refuse: str = "") -> None:
        self.net, self.refuse = net, refuse
        self.lit: set[str] = set()
        self.calls: list[tuple[str, str, int]] = []

    def on_demand(self) -> Collection[str]:
        return (OTN,)

    def up(self, link: str) -> bool:
        return link in self.lit

    def provisioned(self) -> Collection[str]:
        return sorted(self.lit)

    def ensure(self, link: str) -> TransportResult:
        self.calls.append(("ensure", link, len(steering(self.net))))
        if self.refuse:
            return TransportResult(link, False, f"optical:{self.refuse}",
                                   f"ne1–ne3: {self.refuse}: every channel is lit",
                                   "delete an unused optical path", "xl-R2.R3")
        self.lit.add(link)
        return TransportResult(link, True, path="xl-R2.R3", nes=("ne1", "ne2", "ne3"),
                               channel=1)

    def release(self, link: str) -> TransportResult:
        self.calls.append(("release", link, len(steering(self.net))))
        self.lit.discard(link)
        return TransportResult(link, True, path="xl-R2.R3")


def otn_net(store: SqliteStore, refuse: str = "") -> tuple[Net, Recording]:
    net = Net(store)
    net.put(Link(a="R2", b="R3", kind=LinkKind.OTN, delay_ms=1.0))
    t = Recording(net, refuse)
    assert isinstance(t, Transport)
    net.rec.transport = t
    return net, t


def test_otn_path_is_up_before_the_intent_is_steered_onto_it(store: SqliteStore) -> None:
    net, t = otn_net(store)
    net.put(intent())
    net.rec.reconcile_once(store)
    assert t.calls == [("ensure", OTN, 0)]  # nothing steered when the OTN path was asked
    st = net.status("R1~100~R3")
    assert st.state is IntentState.PROGRAMMED and st.active is not None
    assert OTN in st.active.links and steering(net)
    assert st.reason.endswith(f"over on-demand {OTN} (OTN path xl-R2.R3, channel 1)")
    net.rec.reconcile_once(store)
    assert t.calls == [("ensure", OTN, 0)]  # up: not asked again, not released


def test_otn_path_released_after_the_routes_are_removed(store: SqliteStore) -> None:
    net, t = otn_net(store)
    net.put(intent())
    net.rec.reconcile_once(store)
    with store.transaction("test", "delete") as txn:
        txn.delete(SrPolicyIntent, "R1~100~R3")
    net.rec.reconcile_once(store)
    assert t.calls[-1] == ("release", OTN, 0)  # the headend no longer steered
    assert not t.lit and not steering(net)
    assert net.rec.crosslayer is not None and not net.rec.crosslayer.lit


def test_optical_refusal_fails_the_intent_naming_the_constraint(store: SqliteStore) -> None:
    net, t = otn_net(store, refuse="no-wavelength")
    net.put(intent(exclude_links=["R4~R5"]))  # the OTN link is the only way left
    net.rec.reconcile_once(store)
    st = net.status("R1~100~R3")
    assert st.state is IntentState.FAILED
    assert st.constraint == "optical:no-wavelength"
    assert OTN in st.reason and "every channel is lit" in st.reason
    assert st.fix == "delete an unused optical path"
    assert not net.kernel("R1").routes and not net.kernel("R3").routes  # nothing half-done
    net.rec.reconcile_once(store)  # within RETRY_S: the NEs are not asked again
    assert [c[0] for c in t.calls] == ["ensure"]
    assert net.status("R1~100~R3").constraint == "optical:no-wavelength"


def test_optical_retry_after_the_hold_off_programs_the_intent(store: SqliteStore) -> None:
    net, t = otn_net(store, refuse="no-wavelength")
    now = [0.0]
    net.put(intent(exclude_links=["R4~R5"]))
    net.rec.reconcile_once(store)
    assert net.rec.crosslayer is not None
    net.rec.crosslayer.clock = lambda: now[0]
    net.rec.crosslayer.failed = {k: (r, 0.0) for k, (r, _) in
                                 net.rec.crosslayer.failed.items()}
    t.refuse = ""
    now[0] = net.rec.crosslayer.retry_s + 1
    net.rec.reconcile_once(store)
    assert net.status("R1~100~R3").state is IntentState.PROGRAMMED
    assert t.lit == {OTN}


def test_optical_refusal_with_an_ip_path_left_moves_the_intent(store: SqliteStore) -> None:
    net, t = otn_net(store, refuse="osnr-infeasible")
    net.put(intent())
    net.rec.reconcile_once(store)
    st = net.status("R1~100~R3")
    assert st.state is IntentState.PROGRAMMED and st.active is not None
    assert OTN not in st.active.links and st.active.hops[1] == "R6"
    assert f"not on {OTN}" in st.reason and "osnr-infeasible" in st.reason
    assert not t.lit


def test_no_release_while_a_router_is_frozen(store: SqliteStore) -> None:
    net, t = otn_net(store)
    net.put(intent())
    net.rec.reconcile_once(store)
    dead = Dead("R1")  # unreachable: its routes stay as they are
    dead.kernel = net.progs["R1"].kernel
    net.rec.programmers["R1"] = dead
    with store.transaction("test", "delete") as txn:
        txn.delete(SrPolicyIntent, "R1~100~R3")
    rep = net.rec.reconcile_once(store)
    assert "R1" in rep.frozen
    assert t.lit == {OTN} and steering(net)  # may still carry traffic: kept
    net.rec.programmers["R1"] = net.progs["R1"]
    net.rec.reconcile_once(store)
    assert not t.lit and not steering(net)


def test_passes_wait_for_the_optical_layer_when_otn_links_are_configured(
        store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """At start-up the optical plug-in starts after the reconciler: a pass without its
    transport would program routes over links whose OTN path may not exist (or re-plan
    around working ones); it waits — bounded by STARTUP_WAIT_S."""
    from srv6.intents import crosslayer

    net, t = otn_net(store)
    net.rec.transport = None
    rt = SimpleNamespace(settings=SimpleNamespace(extra={}), cfg=SimpleNamespace(
        sections={"optical": SimpleNamespace(otn_links={OTN: object()})}))
    net.rec.rt = rt  # type: ignore[assignment]
    net.put(intent())
    rep = net.rec.reconcile_once(store)
    assert rep.ops == 0 and not steering(net) and store.get(Status, "R1~100~R3") is None
    rt.settings.extra[crosslayer.TRANSPORT_KEY] = t  # the optical plug-in registered
    net.rec.reconcile_once(store)
    assert t.calls == [("ensure", OTN, 0)] and steering(net)
    # a provider that never comes: after STARTUP_WAIT_S the passes go on without it
    other = SimpleNamespace(settings=SimpleNamespace(extra={}), cfg=rt.cfg)
    now = [1000.0]
    monkeypatch.setattr(crosslayer.time, "monotonic", lambda: now[0])
    since: dict[str, float] = {}
    assert crosslayer.awaiting_transport(other, since)
    now[0] += crosslayer.STARTUP_WAIT_S + 1
    assert not crosslayer.awaiting_transport(other, since)
    assert not crosslayer.awaiting_transport(other, since)  # the error was said once
    rt.cfg.sections.clear()
    assert not crosslayer.awaiting_transport(SimpleNamespace(
        settings=SimpleNamespace(extra={}), cfg=rt.cfg), {})


def test_otn_links_view_shows_up_users_and_held_refusals(store: SqliteStore) -> None:
    from srv6.intents import crosslayer

    net, t = otn_net(store)
    rt = SimpleNamespace(settings=SimpleNamespace(extra={}), store=store)
    assert crosslayer.view(rt)["items"] == []
    assert "optical.otn_links" in crosslayer.view(rt)["transport"]
    rt.settings.extra.update({crosslayer.TRANSPORT_KEY: t, "srv6-intents": net.rec})
    net.put(intent())
    net.rec.reconcile_once(store)
    [row] = crosslayer.view(rt)["items"]
    assert row["link"] == OTN and row["up"] and row["provisioned"]
    assert row["used_by"] == ["R1~100~R3"] and row["last"]["ok"] and row["failed"] is None
    t.lit.clear()
    t.refuse = "no-wavelength"
    net.put(intent(exclude_links=["R4~R5"]))
    net.rec.reconcile_once(store)
    [row] = crosslayer.view(rt)["items"]
    assert not row["up"] and row["failed"]["constraint"] == "optical:no-wavelength"
    assert 0 < row["failed"]["retry_in_s"] <= crosslayer.RETRY_S
