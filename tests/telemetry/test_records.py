"""Records built without re-validation equal, serialise and store like the model's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.models import ComputeMetrics, ComputeResource
from telemetry.records import construct, replace

TS = datetime(2026, 12, 5, tzinfo=UTC)
FIELDS = dict(site="MEC-1", service="video", l0={"cpu_pct": 50.0}, l1={"compute_norm": 0.5},
              l2=5.0, overloaded=False, available=True, stale=False, source="agent",
              period_s=10.0, window_s=10.0, updated_at=TS)


def test_construct_equals_the_validated_model() -> None:
    built = construct(ComputeMetrics, **FIELDS)
    model = ComputeMetrics(**FIELDS)
    assert built == model
    assert built.model_dump_json() == model.model_dump_json()
    assert built.key == "MEC-1/video"


def test_construct_refuses_a_missing_or_unknown_field() -> None:
    partial = {k: v for k, v in FIELDS.items() if k != "updated_at"}
    with pytest.raises(TypeError, match=r"missing \['updated_at'\]"):
        construct(ComputeMetrics, **partial)
    with pytest.raises(TypeError, match=r"unknown \['colour'\]"):
        construct(ComputeMetrics, **partial, colour=1)


@given(value=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
       extended=st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=3))
def test_replace_equals_model_copy(value: float, extended: dict[str, int]) -> None:
    res = ComputeResource(site="MEC-1", name="gpu", description="d", value=1.0,
                          scope=["n"], extended={"k": 1})
    fast = replace(res, value=value, extended={**res.extended, **extended})
    slow = res.model_copy(update={"value": value, "extended": {**res.extended, **extended}})
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert res.value == 1.0  # the original is untouched


def test_replace_refuses_an_unknown_field() -> None:
    res = ComputeResource(site="MEC-1", name="gpu", description="d", value=1.0, scope=["n"])
    with pytest.raises(TypeError, match="no field"):
        replace(res, colour=1)
