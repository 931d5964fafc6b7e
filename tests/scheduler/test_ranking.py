"""Tests for scheduler.ranking (GBA-6.4 instance ranking for DNS/resolve)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.models import (
    ComputeMetrics,
    Link,
    LinkState,
    Requirements,
    Router,
    Service,
    ServiceContactInstance,
    Site,
    SiteKind,
)
from scheduler.ranking import RankWeights, rank_instances

SITES = [Site(name=f"s{i}", kind=SiteKind.COMPUTE_CENTRE, region=f"r{i % 2}") for i in range(4)]
ROUTERS = [Router(name=f"R{i}", site=f"s{i}") for i in range(4)]


def svc(max_latency: float | None = None) -> Service:
    return Service(
        name="video", anycast=["2001:db8::1"],
        requirements=Requirements(max_latency_ms=max_latency),
        instances=[ServiceContactInstance(site=f"s{i}", address=f"2001:db8:{i}::10")
                   for i in range(4)],
    )


def chain(delays: list[float]) -> list[Link]:
    return [Link(a=f"R{i}", b=f"R{i + 1}", delay_ms=d) for i, d in enumerate(delays)]


def test_nearest_wins_with_equal_metrics() -> None:
    mets = [ComputeMetrics(site=f"s{i}", service="video", l2=5) for i in range(4)]
    out = rank_instances(svc(), client_node="R0", client_region=None, sites=SITES,
                         routers=ROUTERS, links=chain([5, 5, 5]), metrics=mets)
    assert [c.site for c in out] == ["s0", "s1", "s2", "s3"]
    assert out[0].path_delay_ms == 0.0 and out[3].path_delay_ms == 15.0
    assert all(c.eligible for c in out)


def test_ineligible_reasons() -> None:
    mets = [
        ComputeMetrics(site="s0", service="video", l2=9, overloaded=True),
        ComputeMetrics(site="s1", service="video", l2=9, stale=True),
        ComputeMetrics(site="s2", service="*", l2=9, available=False),
    ]
    out = rank_instances(svc(max_latency=12), client_node="R0", client_region=None,
                         sites=SITES, routers=ROUTERS, links=chain([5, 5, 5]), metrics=mets)
    by = {c.site: c for c in out}
    assert "overloaded" in by["s0"].why_not
    assert "stale" in by["s1"].why_not
    assert "unavailable" in by["s2"].why_not
    assert "max_latency_ms" in by["s3"].why_not  # 15 ms > 12 ms
    assert not any(c.eligible for c in out)


def test_missing_metrics_neutral_and_down_link() -> None:
    links = chain([5, 5, 5])
    links[0] = links[0].model_copy(update={"state": LinkState.DOWN})
    out = rank_instances(svc(), client_node="R0", client_region=None, sites=SITES,
                         routers=ROUTERS, links=links, metrics=[])
    by = {c.site: c for c in out}
    assert by["s0"].eligible and any("no metrics" in r for r in by["s0"].reasons)
    assert not by["s1"].eligible and "no up path" in by["s1"].why_not


def test_client_region_uses_nearest_site() -> None:
    mets = [ComputeMetrics(site=f"s{i}", service="video", l2=5) for i in range(4)]
    out = rank_instances(svc(), client_node=None, client_region="r1", sites=SITES,
                         routers=ROUTERS, links=chain([5, 5, 5]), metrics=mets)
    # r1 holds s1 and s3: both at 0 ms
    assert {out[0].site, out[1].site} == {"s1", "s3"}
    assert out[0].path_delay_ms == 0.0


def test_better_compute_beats_small_delay() -> None:
    mets = [ComputeMetrics(site="s0", service="video", l2=1),
            ComputeMetrics(site="s1", service="video", l2=10)]
    out = rank_instances(svc(), client_node="R0", client_region=None, sites=SITES,
                         routers=ROUTERS, links=chain([2, 50, 50]), metrics=mets,
                         weights=RankWeights(compute=0.8, delay=0.2, weight=0))
    assert out[0].site == "s1"
    assert abs(out[0].score - sum(out[0].reasons.values())) < 1e-6


@settings(max_examples=60, deadline=None)
@given(
    delays=st.lists(st.floats(0, 200), min_size=3, max_size=3),
    l2s=st.lists(st.floats(0, 10), min_size=4, max_size=4),
    over=st.lists(st.booleans(), min_size=4, max_size=4),
    bound=st.none() | st.floats(1, 300),
)
def test_properties(delays: list[float], l2s: list[float], over: list[bool],
                    bound: float | None) -> None:
    mets = [ComputeMetrics(site=f"s{i}", service="video", l2=l2s[i], overloaded=over[i])
            for i in range(4)]
    out = rank_instances(svc(bound), client_node="R0", client_region=None, sites=SITES,
                         routers=ROUTERS, links=chain(delays), metrics=mets)
    assert len(out) == 4
    seen_ineligible = False
    for c in out:
        assert 0 <= c.score <= 100
        if not c.eligible:
            seen_ineligible = True
            assert c.why_not
        else:
            assert not seen_ineligible  # eligible ones come first
            assert c.path_delay_ms is not None
            if bound is not None:
                assert c.path_delay_ms <= bound
    elig = [c.score for c in out if c.eligible]
    assert elig == sorted(elig, reverse=True)
