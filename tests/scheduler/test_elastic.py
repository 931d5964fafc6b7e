"""Elastic replica scaling (WP-3.3.3)."""

from __future__ import annotations

import pytest

from controller.models import ComputeMetrics, Service, ServiceContactInstance
from scheduler.elastic import Autoscaler, ScalePolicy, desired_replicas


def test_desired_replicas_formula_and_bounds() -> None:
    p = ScalePolicy(target_pct=50, max_replicas=10)
    assert desired_replicas(2, 100, p) == 4
    assert desired_replicas(4, 52, p) == 4  # inside tolerance
    assert desired_replicas(4, 10, p) == 1
    assert desired_replicas(8, 100, p) == 10  # clamped
    with pytest.raises(ValueError, match="target_pct"):
        ScalePolicy(target_pct=0)


def test_autoscaler_scales_up_at_once_and_down_slowly() -> None:
    svc = Service(name="v", anycast=["2001:db8::1"], instances=[
        ServiceContactInstance(site="a", address="2001:db8::a"),
        ServiceContactInstance(site="b", address="2001:db8::b")])
    hot = [ComputeMetrics(site="a", service="v", l0={"util_pct": 90}),
           ComputeMetrics(site="b", service="v", overloaded=True)]
    cold = [ComputeMetrics(site="a", service="v", l0={"util_pct": 5}),
            ComputeMetrics(site="b", service="v", l0={"util_pct": 5})]
    sc = Autoscaler(ScalePolicy(target_pct=50, window=3))
    assert sc.recommend(svc, hot) == 4
    assert sc.recommend(svc, cold) == 4  # stabilised: the recent peak holds
    sc2 = Autoscaler(ScalePolicy(target_pct=50, window=1))
    assert sc2.recommend(svc, cold) == 1
    stale = [ComputeMetrics(site="a", service="v", l0={"util_pct": 99}, stale=True)]
    assert Autoscaler().recommend(svc, stale) == 2  # no usable data: keep
