"""CATS L0→L1→L2, hysteresis, damping, staleness (issue #3; RFC 10054 R9/R14)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import ValidationError
from telemetry.cats import (
    COMMUNICATION,
    COMPUTE,
    SERVICE,
    CatsConfig,
    Direction,
    Hysteresis,
    MetricSmoother,
    MetricSpec,
    MetricsTracker,
    NormFn,
    ScoreDamper,
    Staleness,
    build_metrics,
    l1_scores,
    l2_score,
    normalise,
)

CFG = CatsConfig()
KEYS = sorted(CFG.metrics)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
l0s = st.dictionaries(st.sampled_from(KEYS), finite, max_size=len(KEYS))


def test_idle_site_scores_high_and_busy_site_low() -> None:
    idle = l2_score(l1_scores({"cpu_pct": 5, "util_pct": 5, "delay_ms": 2}, CFG), CFG)
    busy = l2_score(l1_scores({"cpu_pct": 95, "util_pct": 95, "delay_ms": 40}, CFG), CFG)
    assert idle > 8.5
    assert busy < 1.5


def test_minmax_directions_and_clamp() -> None:
    spec = MetricSpec(category=COMPUTE, lo=0, hi=100)
    assert normalise(25, spec) == pytest.approx(0.75)
    assert normalise(-50, spec) == 1.0
    up = spec.model_copy(update={"direction": Direction.HIGHER_IS_BETTER})
    assert normalise(25, up) == pytest.approx(0.25)
    assert normalise(1e9, up) == 1.0


def test_category_absent_when_no_input_and_empty_scores_zero() -> None:
    l1 = l1_scores({"cpu_pct": 50}, CFG)
    assert set(l1) == {COMPUTE}
    assert l2_score({}, CFG) == 0.0
    assert l1_scores({"unknown_key": 1.0}, CFG) == {}


def test_non_finite_l0_refused_with_key_named() -> None:
    with pytest.raises(ValidationError, match=r"l0\.cpu_pct"):
        build_metrics("MEC-1", "video", {"cpu_pct": math.nan}, CFG)


def test_bad_config_refused() -> None:
    with pytest.raises(ValueError, match="hi > lo"):
        MetricSpec(category=COMPUTE, lo=5, hi=5)
    with pytest.raises(ValueError, match="hysteresis"):
        CatsConfig(overload_on_pct=60, overload_off_pct=70)


@given(l0s)
def test_l2_always_in_range(l0: dict[str, float]) -> None:
    l1 = l1_scores(l0, CFG)
    assert all(0.0 <= v <= 1.0 for v in l1.values())
    assert 0.0 <= l2_score(l1, CFG) <= 10.0


@given(l0s, st.sampled_from(KEYS), finite, st.floats(min_value=0, max_value=1e5))
def test_l2_monotone_in_each_input_direction(l0: dict[str, float], key: str, base: float,
                                            delta: float) -> None:
    spec = CFG.metrics[key]
    worse, better = dict(l0), dict(l0)
    worse[key], better[key] = base, base + delta
    if spec.direction is Direction.LOWER_IS_BETTER:
        worse, better = better, worse
    assert l2_score(l1_scores(better, CFG), CFG) >= l2_score(l1_scores(worse, CFG), CFG)


@given(st.sampled_from(list(NormFn)), st.sampled_from(list(Direction)), finite, finite)
def test_every_normaliser_is_bounded_and_monotone(fn: NormFn, d: Direction, a: float,
                                                  b: float) -> None:
    spec = MetricSpec(category=SERVICE, fn=fn, direction=d, mean=10, std=3)
    lo, hi = sorted((a, b))
    x, y = normalise(lo, spec), normalise(hi, spec)
    assert 0 <= x <= 1 and 0 <= y <= 1
    assert (y >= x) if d is Direction.HIGHER_IS_BETTER else (y <= x)


@given(st.booleans(), st.lists(st.floats(min_value=70, max_value=85), min_size=1))
def test_hysteresis_never_flaps_between_70_and_85(start: bool, signal: list[float]) -> None:
    h = Hysteresis(85, 70, state=start)
    assert {h.update(v) for v in signal} == {start}


def test_hysteresis_sets_above_on_and_clears_below_off() -> None:
    h = Hysteresis(85, 70)
    assert [h.update(v) for v in (80, 86, 75, 71, 69, 84)] == [False, True, True, True,
                                                               False, False]


@given(st.floats(min_value=0.5, max_value=9.5), st.lists(st.floats(-0.1, 0.1), min_size=1))
def test_damper_hides_oscillation_below_dead_band(base: float, wiggle: list[float]) -> None:
    d = ScoreDamper(min_change=0.25)
    d.update(base, 0.0)
    assert {d.update(base + w, float(i + 1)) for i, w in enumerate(wiggle)} == {base}


def test_damper_hold_down_delays_second_change() -> None:
    d = ScoreDamper(min_change=0.25, hold_down_s=5)
    assert d.update(5.0, 0) == 5.0
    assert d.update(8.0, 6) == 8.0
    assert d.update(2.0, 7) == 8.0  # within hold-down of the previous change
    assert d.update(2.0, 11.5) == 2.0


def test_smoother_settles_over_the_window() -> None:
    s = MetricSmoother(window_s=10)
    assert s.update({"cpu_pct": 0}, 0)["cpu_pct"] == 0
    one = s.update({"cpu_pct": 100}, 1)["cpu_pct"]
    assert 5 < one < 15  # 1 − e^(−0.1) ≈ 9.5 %
    late = s.update({"cpu_pct": 100}, 51)["cpu_pct"]
    assert late > 99


@given(st.lists(st.sampled_from([72.0, 83.0]), min_size=2, max_size=40))
def test_tracker_score_and_overload_stable_on_oscillating_load(seq: list[float]) -> None:
    tr = MetricsTracker(CatsConfig())
    outs = [tr.update({"cpu_pct": v, "util_pct": v}, float(i)) for i, v in enumerate(seq)]
    assert {o[2] for o in outs} == {False}
    # the smoothed + damped score moves at most a few times, never every sample
    changes = sum(1 for a, b in itertools.pairwise(outs) if a[1] != b[1])
    assert changes <= max(2, len(seq) // 4)


def test_staleness_after_three_declared_periods() -> None:
    st_ = Staleness()
    st_.touch("bgp:MEC-1", 0.0, period_s=2.0)
    st_.touch("agent:MEC-2", 0.0, period_s=10.0)
    assert st_.newly_stale(5.9) == []
    assert st_.newly_stale(6.1) == ["bgp:MEC-1"]
    assert st_.newly_stale(7.0) == []  # reported once
    assert st_.touch("bgp:MEC-1", 8.0, 2.0) is True
    assert not st_.is_stale("bgp:MEC-1", 9.0)


def test_build_metrics_record() -> None:
    m = build_metrics("MEC-1", "video", {"cpu_pct": 90.0, "delay_ms": 3.0}, CFG,
                      source="bgp", period_s=5, now=1000.0)
    assert m.key == "MEC-1/video" and m.source == "bgp" and m.overloaded
    assert set(m.l1) == {COMPUTE, COMMUNICATION}
    assert m.l2 == l2_score(m.l1, CFG)
    # previous overloaded + 75 % (inside the band) stays overloaded
    m2 = build_metrics("MEC-1", "video", {"cpu_pct": 75.0}, CFG, previous=m)
    assert m2.overloaded
    # an advertised L2 wins over the computed one
    m3 = build_metrics("MEC-1", "video", {}, CFG, l2=7.5, l1={SERVICE: 0.4})
    assert m3.l2 == 7.5 and m3.l1 == {SERVICE: 0.4}


@given(site=st.dictionaries(st.sampled_from(["cpu_pct", "mem_pct", "gpu_free", "energy_w",
                                             "price_per_hour", "load1"]),
                            st.floats(0, 2000), max_size=6),
       util=st.floats(0, 100), queue=st.floats(0, 200))
def test_l1_part_gives_the_same_scores_as_the_whole_record(site: dict[str, float],
                                                          util: float, queue: float) -> None:
    """The ingest normalises a site's values once (``l1_part``) for all its service
    records: L1, L2 and overload equal a tracker fed the whole record."""
    from telemetry.cats import MetricsTracker, compile_table, l1_part

    table = compile_table(CFG)
    part = l1_part(site, table)
    for l0 in (dict(site), {**site, "util_pct": util, "queue_depth": queue}):
        whole = MetricsTracker(CFG, smooth=False, table=table).update(l0, 1.0)
        fast = MetricsTracker(CFG, smooth=False, table=table).update(l0, 1.0, part=part)
        assert fast == whole
