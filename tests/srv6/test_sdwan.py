"""SD-WAN rendering (GBA-6.4.3e): app match → SLA → transport preference, failover on SLA
breach from current link metrics, steering rules and SR policies."""

from __future__ import annotations

import pydantic
import pytest

from controller.errors import ValidationError
from controller.models import InterconnectKind, Link, LinkState
from srv6.models import SteeringMatch
from srv6.paths import Topology
from srv6.sdwan import SdwanPolicy, SlaClass, render
from tests.srv6.topos import routers

IP, OTN, INET = InterconnectKind.IP_PRIVATE, InterconnectKind.OTN, InterconnectKind.INTERNET


def topo(r1_r4_jitter: float = 1.0, otn: LinkState = LinkState.UP) -> Topology:
    # R1 = branch edge, R4 = hub; R2 = private PE, R3 = internet PoP
    return Topology.build([
        Link(a="R1", b="R2", kind=IP, delay_ms=2, jitter_ms=0.5),
        Link(a="R2", b="R4", kind=IP, delay_ms=3, jitter_ms=r1_r4_jitter),
        Link(a="R1", b="R4", kind=OTN, delay_ms=4, state=otn),
        Link(a="R1", b="R3", kind=INET, delay_ms=8, jitter_ms=4, loss_pct=0.2),
        Link(a="R3", b="R4", kind=INET, delay_ms=8, jitter_ms=4, loss_pct=0.2),
    ], routers(4))


def video(**kw: object) -> SdwanPolicy:
    base: dict[str, object] = dict(
        name="video", match=SteeringMatch(app="rtp-video"),
        sla=SlaClass(name="realtime", max_delay_ms=20, max_jitter_ms=3, max_loss_pct=0.1),
        transports=[IP, OTN, INET], headends=["R1"], endpoint="R4", color=100)
    return SdwanPolicy.model_validate({**base, **kw})


def test_preferred_transport_when_sla_met() -> None:
    out = render(topo(), [video()])
    (d,) = out.decisions
    assert d.chosen is IP and d.sla_met
    (rule,) = out.rules
    assert rule.match.protocol == "udp" and rule.match.dst_ports == "5004-5005"
    assert rule.match.dscp == 34 and rule.color == 100 and rule.fwmark == 100
    (pol,) = out.policies
    active = pol.active_path()
    assert active is not None and active.segment_lists[0].hops == ["R1", "R2", "R4"]
    assert out.intents[0].constraints.exclude_links == ["R1~R3", "R1~R4", "R3~R4"]


def test_failover_to_otn_when_jitter_breaches_sla() -> None:
    out = render(topo(r1_r4_jitter=5), [video()])
    (d,) = out.decisions
    assert d.chosen is OTN and d.sla_met
    assert "failed over from ip-private (SLA breached: jitter 5.5 ms > 3)" in d.reason
    active = out.policies[0].active_path()
    assert active is not None and active.name == "video via otn"
    ip_cp = [cp for cp in out.policies[0].candidate_paths if cp.name == "video via ip-private"]
    assert ip_cp[0].invalid_reason.startswith("SLA breached")


def test_best_effort_when_no_transport_meets_sla() -> None:
    out = render(topo(r1_r4_jitter=5, otn=LinkState.DOWN), [video()])
    (d,) = out.decisions
    assert d.chosen is IP and not d.sla_met
    assert "no transport meets SLA realtime" in d.reason
    inet = next(c for c in d.checks if c.transport is INET)
    assert "loss" in inet.reason and "jitter 8 ms > 3" in inet.reason
    assert [c.reason for c in d.checks if c.transport is OTN] == ["no path over this transport"]


def test_delay_sla_is_enforced_in_path_computation() -> None:
    out = render(topo(), [video(transports=[INET], sla=SlaClass(name="x", max_delay_ms=10))])
    (d,) = out.decisions
    assert d.chosen is None and "max_delay_ms" in d.reason
    assert out.policies[0].active_path() is None and not out.intents


def test_bad_policies() -> None:
    with pytest.raises(pydantic.ValidationError, match="unknown app 'quake'"):
        video(match=SteeringMatch(app="quake"))
    assert video(match=SteeringMatch(app="quake", dst_ports="27960")).resolved_match().app
    with pytest.raises(pydantic.ValidationError, match="twice"):
        video(transports=[IP, IP])
    with pytest.raises(ValidationError, match="unknown sdwan.video.endpoint 'R9'"):
        render(topo(), [video(endpoint="R9")])
    with pytest.raises(ValidationError, match="colour 100 at R1 is already used"):
        render(topo(), [video(), video(name="other")])
