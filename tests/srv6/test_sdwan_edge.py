"""SD-WAN policies pushed to a Linux edge with two underlays: SLA probes, failover on a
loss breach (nftables loss injection), fallback with hysteresis, a dead probe source
reported and not mistaken for a breach, an unknown underlay refused (issue 14)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from controller.models import InterconnectKind
from controller.store import SqliteStore
from labs.netns import Lab, wait_for
from labs.sdwan_edge import edge_lab, failover_round, run_edges, sender, status
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


def _journal(store: SqliteStore, key: str) -> list[Any]:
    from controller.store import JournalQuery

    return store.journal(JournalQuery(key=key))
