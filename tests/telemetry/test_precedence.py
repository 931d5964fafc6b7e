"""Source precedence between the site agent and BGP for one (site, service) record
(telemetry.precedence; GBA-6.3 agent reports vs GBA-6.4.3b BGP compute awareness)."""

from __future__ import annotations

from controller.models import ComputeMetrics
from telemetry.precedence import combine


def _agent(util: float, over: bool = False, up: bool = True) -> ComputeMetrics:
    return ComputeMetrics(site="MEC-1", service="video", source="agent",
                          l0={"util_pct": util, "queue_depth": 3.0}, l2=10 - util / 10,
                          overloaded=over, available=up, period_s=1)


def _bgp(price: float = 1.5, util: float = 10.0, up: bool = True) -> ComputeMetrics:
    return ComputeMetrics(site="MEC-1", service="video", source="bgp",
                          l0={"price_per_hour": price, "util_pct": util}, l2=9.0,
                          available=up, period_s=30)


def test_fresh_agent_scores_survive_a_coarse_bgp_update() -> None:
    cur = combine(None, _agent(92.0, over=True))
    out = combine(cur, _bgp(util=10.0))
    assert out.source == "agent" and out.overloaded and out.l2 == cur.l2
    # L0 values merge (BGP adds its price); the scores planning uses stay the agent's
    assert out.l0["price_per_hour"] == 1.5 and out.l0["queue_depth"] == 3.0
    assert out.available and out.l0["route_up"] == 1.0 and out.l0["service_up"] == 1.0


def test_withdraw_takes_the_instance_out_and_an_agent_report_does_not_bring_it_back() -> None:
    cur = combine(combine(None, _agent(30.0)), _bgp(up=False))
    assert not cur.available and cur.source == "agent"
    after = combine(cur, _agent(31.0))
    assert not after.available, "an agent report must not undo a BGP withdraw"
    back = combine(after, _bgp(up=True))
    assert back.available and back.l0["util_pct"] == 10.0 and back.l2 == after.l2


def test_agent_down_is_its_own_flag_and_a_stale_record_has_no_say() -> None:
    cur = combine(combine(None, _bgp()), _agent(50.0, up=False))
    assert not cur.available and cur.source == "agent"
    assert combine(cur, _agent(50.0)).available
    stale = combine(None, _agent(95.0, over=True)).model_copy(update={"stale": True})
    out = combine(stale, _bgp())
    assert out.source == "bgp" and not out.overloaded and not out.stale
    assert "queue_depth" not in out.l0 and out.available


def test_an_older_agent_observation_committed_late_never_replaces_a_newer_one() -> None:
    """Issue 16: every controller of a cluster admits the agent reports sent to it, so
    two replicas may commit one site's records in either order; the newest observation
    must win whatever the commit order. A staleness mark (same time) still applies."""
    from datetime import timedelta

    from telemetry.precedence import merge

    old, new = _agent(30.0), _agent(80.0, over=True)
    new = new.model_copy(update={"updated_at": old.updated_at + timedelta(seconds=1)})
    assert merge(new, old) is None
    assert merge(old, new) == combine(old, new)
    stale = new.model_copy(update={"stale": True})
    out = merge(new, stale)
    assert isinstance(out, ComputeMetrics) and out.stale
    # BGP has one writer (the leader), in the order its session heard: not ordered here
    b1, b2 = _bgp(util=10.0), _bgp(util=50.0, up=False)
    b1 = b1.model_copy(update={"updated_at": b2.updated_at + timedelta(seconds=1)})
    assert merge(b1, b2) is not None
