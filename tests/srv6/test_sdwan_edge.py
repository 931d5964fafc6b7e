"""SD-WAN policies pushed to a Linux edge with two underlays: SLA probes, failover on a
loss breach (nftables loss injection), fallback with hysteresis, a dead probe source
reported and not mistaken for a breach, an unknown underlay refused (issue 14)."""

from __future__ import annotations

import shutil
import time
from typing import Any

import pytest

from controller.models import InterconnectKind
from controller.store import SqliteStore
from labs.netns import Lab, wait_for
from labs.sdwan_edge import (
    delay_round,
    edge_lab,
    failover_round,
    run_edges,
    sender,
    shape,
    status,
)
from srv6.models import SteeringMatch
from srv6.sdwan import SdwanPolicy, SlaClass
from srv6.sdwan_edge import (
    Figures,
    choose,
)
from tests.conftest import needs_netns

SLA = SlaClass(name="video", max_delay_ms=50, max_loss_pct=5)
OK = Figures(delay_ms=1, jitter_ms=0.1, loss_pct=0, samples=10)
LOSSY = Figures(delay_ms=1, jitter_ms=0.1, loss_pct=30, samples=10)
DOWN = Figures(source="down", error="ub: Network is unreachable")


def test_choose_fails_over_falls_back_with_hysteresis_and_ignores_dead_sources() -> None:
    prefs = ["ip-private", "internet"]
    assert choose(prefs, {"ip-private": OK, "internet": OK}, SLA, None, {}, 0, 2) == (
        "ip-private", "first placement")
    new, why = choose(prefs, {"ip-private": LOSSY, "internet": OK}, SLA, "ip-private", {},
                      0, 2)
    assert new == "internet" and "breaches" in why
    # recovered for 1 s only: hold; for 2 s: fall back
    figs = {"ip-private": OK, "internet": OK}
    assert choose(prefs, figs, SLA, "internet", {"ip-private": 9.0}, 10.0, 2)[0] == "internet"
    assert choose(prefs, figs, SLA, "internet", {"ip-private": 8.0}, 10.0, 2)[0] == \
        "ip-private"
    # the active underlay's probe source is dead: reported, not a breach
    new, why = choose(prefs, {"ip-private": DOWN, "internet": OK}, SLA, "ip-private", {},
                      0, 2)
    assert new == "ip-private" and "probe source down" in why


def policy(name: str = "video", transports: tuple[str, ...] = ("ip-private", "internet"),
           color: int = 100) -> SdwanPolicy:
    return SdwanPolicy(name=name, match=SteeringMatch(protocol="udp", dst_ports="5004"),
                       sla=SLA, transports=[InterconnectKind(t) for t in transports],
                       headends=["E"], endpoint="H", color=color)


@needs_netns
@pytest.mark.lab
def test_edge_fails_over_on_loss_and_falls_back(store: SqliteStore) -> None:
    with Lab("sdw") as lab:
        e, h, sec = edge_lab(lab)
        with store.transaction("test", "policies") as txn:
            txn.put(policy())
            txn.put(policy("vault", ("otn", "internet"), 200))
        comp = run_edges(store, sec)
        try:
            bad = status(store, "E~vault")
            assert bad.state == "failed" and bad.constraint == "transports"
            assert "otn" in bad.reason and "underlays" in bad.fix
            wait_for(lambda: status(store).active == "ip-private", 5, "first placement")
            with sender(e):
                t_fail, t_back = failover_round(store, h)
                st = status(store)
                assert st.switches >= 3 and st.last_switch is not None
                # the switch away was journaled with the probe figures that caused it
                away = [x for x in _journal(store, "E~video") if "-> internet" in x.reason]
                assert away and "ip-private: delay" in away[0].reason
                assert "loss" in away[0].reason and "breaches the SLA" in away[0].reason
                print(f"sdwan: failover {t_fail * 1e3:.0f} ms, fallback {t_back * 1e3:.0f} ms")
                assert t_fail < 3.0 and t_back >= sec.recover_s
                # a dead probe source (its interface down at the edge) is reported, not
                # mistaken for a breach: no switch
                n = status(store).switches
                e.run(["ip", "link", "set", "ub", "down"])
                runner = comp.runners["E"]
                wait_for(lambda: runner.figures()["internet"].source == "down", 3,
                         "probe source reported down")
                time.sleep(0.5)
                assert status(store).switches == n and status(store).active == "ip-private"
        finally:
            for r in comp.runners.values():
                r.stop()


@needs_netns
@pytest.mark.lab
@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3 (Debian iperf3)")
def test_edge_fails_over_on_queue_delay_from_congestion_and_falls_back(
        store: SqliteStore) -> None:
    """No netem here: the delay breach is made by filling a narrow (HTB-shaped)
    ip-private underlay with an iperf3 UDP flood; the queue delay the probes see rises
    past the SLA's bound → failover; the flood stops → fallback after the hysteresis."""
    sla = SlaClass(name="video", max_delay_ms=20)  # a delay bound only
    with Lab("sdd") as lab:
        e, h, sec = edge_lab(lab)
        shape(h, "ha", mbit=4, queue_bytes=30_000)  # full queue ≈ 60 ms
        with store.transaction("test", "policies") as txn:
            txn.put(policy().model_copy(update={"sla": sla}))
        comp = run_edges(store, sec)
        try:
            wait_for(lambda: status(store).active == "ip-private", 5, "first placement")
            calm = comp.runners["E"].figures()["ip-private"]
            assert calm.delay_ms is not None and calm.delay_ms < 5, calm
            t_fail, t_back, away = delay_round(store, e, h)
            sw = away.last_switch
            assert sw is not None and sw.from_ == "ip-private" and sw.to == "internet"
            hot = sw.figures["ip-private"]
            assert hot.delay_ms is not None and hot.delay_ms > sla.max_delay_ms, hot
            assert "breaches the SLA" in sw.why
            print(f"sdwan delay breach: {hot.delay_ms:.1f} ms queue delay (calm "
                  f"{calm.delay_ms:.2f} ms), failover {t_fail * 1e3:.0f} ms, fallback "
                  f"{t_back * 1e3:.0f} ms")
            assert t_fail < 5.0 and t_back >= sec.recover_s
        finally:
            for r in comp.runners.values():
                r.stop()


@needs_netns
@pytest.mark.lab
def test_otn_underlay_is_provisioned_before_use_and_released_after(
        store: SqliteStore) -> None:
    """The edge's otn underlay rides an OTN path on netconfd NEs: unavailable while no
    optical layer is registered (the policy runs on internet, the reason says why);
    with it, the path is provisioned and read back before the underlay carries the app;
    the policy deleted → the path is deleted on the NEs."""
    from labs.optical.fixture import OpticalLab
    from labs.sdwan_edge import OTN_LINK, ne_xcs, otn_transport, rx_packets
    from srv6.sdwan_edge import SdwanEdges

    with Lab("sdo") as lab, OpticalLab(4) as optical, otn_transport(optical) as t:
        e, h, sec = edge_lab(lab, otn=True)
        with store.transaction("test", "policies") as txn:
            txn.put(policy("vault", ("otn", "internet"), 200))
        comp = SdwanEdges(sec)
        try:
            comp.sync(store)  # no optical layer yet
            runner = comp.runners["E"]
            wait_for(lambda: status(store, "E~vault").active == "internet", 5,
                     "first placement on the underlay that is up")
            assert "no optical transport" in runner.figures()["otn"].error
            assert ne_xcs(optical) == {}
            comp.transport = t
            comp.sync(store)  # returns once the OTN path is up and read back
            ready = status(store, "E~vault").last_switch
            up = comp.otn_events[-1]
            assert up.ok and up.link == OTN_LINK and up.path == "xl-E.H"
            lit = ne_xcs(optical)  # our own NETCONF sessions
            assert set(lit) == set(up.nes) and all(x == ["xl-E.H"] for x in lit.values())
            wait_for(lambda: status(store, "E~vault").active == "otn", 10,
                     "the policy on the otn underlay")
            st = status(store, "E~vault")
            assert st.last_switch is not None and ready is not None
            assert st.last_switch.at > ready.at and "fallback" in st.last_switch.why
            before = rx_packets(h, "ho")
            with sender(e):
                time.sleep(1.0)
            assert rx_packets(h, "ho") - before > 100  # the app rides the OTN underlay
            with store.transaction("test", "delete") as txn:
                txn.delete(SdwanPolicy, "vault")
            comp.sync(store)
            gone = comp.otn_events[-1]
            assert gone.ok and not list(t.provisioned())
            assert ne_xcs(optical) == {}  # deleted on every NE
            assert "released" in runner.figures()["otn"].error
            print(f"sdwan otn underlay: provisioned+read back {up.elapsed_ms:.0f} ms on "
                  f"{'-'.join(up.nes)} ch {up.channel}; released {gone.elapsed_ms:.0f} ms")
        finally:
            for r in comp.runners.values():
                r.stop()


def _journal(store: SqliteStore, key: str) -> list[Any]:
    from controller.store import JournalQuery

    return store.journal(JournalQuery(key=key))
