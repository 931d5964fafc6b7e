"""The shared model base (``controller.models.base``): finite numbers everywhere (#15)."""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.errors import issues_from_pydantic
from controller.models import ComputeResource, JobSpec, Quota
from controller.models.base import Strict, non_finite_at

PACKAGES = ("controller", "telemetry", "optical", "srv6", "dns_compute", "scheduler")


def res(**kw: Any) -> dict[str, Any]:
    return {"site": "S", "name": "cpu", "description": "cores", "scope": ["n1"], **kw}


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, "inf", "NaN", "-Infinity"])
def test_non_finite_value_poisoned_the_store_is_refused_naming_the_field(bad: Any) -> None:
    """``"value": 1e999`` was accepted, stored as null, and the next start refused the
    state directory: now the model refuses it, naming the field and the fix."""
    with pytest.raises(pydantic.ValidationError) as exc:
        ComputeResource.model_validate(res(value=bad))
    (issue,) = issues_from_pydantic(exc.value, ("body",))
    assert issue.path == "body.value" and "finite number" in issue.message
    assert "NaN and infinity cannot be stored" in issue.fix


def test_non_finite_job_data_and_quota_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="finite number"):
        JobSpec.model_validate({"name": "j", "data_gib": 1e999})
    with pytest.raises(pydantic.ValidationError, match="finite number"):
        JobSpec.model_validate_json('{"name": "j", "data_gib": 1e999}')
    with pytest.raises(pydantic.ValidationError, match="finite number"):
        Quota.model_validate({"gpu": float("inf")})


def test_non_finite_inside_free_form_attributes_is_refused_with_its_place() -> None:
    with pytest.raises(pydantic.ValidationError) as exc:
        ComputeResource.model_validate(res(value=1, extended={"topo": {"numa": [0, math.nan]}}))
    (issue,) = issues_from_pydantic(exc.value)
    assert issue.path == "extended"
    assert "['topo']['numa'][1]" in issue.message and "nan" in issue.message
    with pytest.raises(pydantic.ValidationError, match="finite"):
        JobSpec.model_validate({"name": "j", "params": {"lr": [1e999]}})
    assert ComputeResource.model_validate(res(value=1, extended={"a": [1.5, "x", None]}))


def test_assignment_is_checked_too() -> None:
    r = ComputeResource.model_validate(res(value=1))
    with pytest.raises(pydantic.ValidationError, match="finite"):
        r.value = math.inf


def test_non_finite_at_finds_the_first_place() -> None:
    assert non_finite_at({"a": 1, "b": [2.0, {"c": -math.inf}]}) == ("['b'][1]['c']",
                                                                      -math.inf)
    assert non_finite_at({"a": 1.0, "b": ["x"]}) is None


def _models() -> list[type[pydantic.BaseModel]]:
    for pkg in PACKAGES:
        root = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(root.__path__, pkg + "."):
            importlib.import_module(info.name)
    seen: list[type[pydantic.BaseModel]] = []
    todo: list[type[Any]] = [pydantic.BaseModel]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] in PACKAGES:
                seen.append(sub)
    return seen


def test_every_model_refuses_non_finite_numbers() -> None:
    """One mechanism for all: every pydantic model in the product derives from
    ``Strict`` (a new model on plain ``BaseModel`` would let 1e999 in again)."""
    models = _models()
    assert len(models) > 50
    plain = sorted(f"{m.__module__}.{m.__qualname__}" for m in models
                   if not issubclass(m, Strict))
    assert plain == [], f"derive these from controller.models.base.Strict: {plain}"
    assert all(m.model_config.get("allow_inf_nan") is False for m in models
               if issubclass(m, Strict))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(value=st.floats(), extended=st.dictionaries(st.text(max_size=4), json_values,
                                                   max_size=4))
def test_whatever_a_model_accepts_survives_a_store_round_trip(value: float,
                                                              extended: dict[str, Any]) -> None:
    """Nothing is accepted that would be refused on load (the store keeps JSON)."""
    try:
        obj = ComputeResource.model_validate(res(value=value, extended=extended))
    except pydantic.ValidationError:
        assert not math.isfinite(value) or non_finite_at(extended) is not None
        return
    stored = obj.model_dump_json()
    assert ComputeResource.model_validate_json(stored) == obj
    assert json.loads(stored)["value"] == value
