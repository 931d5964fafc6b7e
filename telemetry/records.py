"""Metric records built on trusted paths without pydantic re-validation.

Rules:
- Only for values that were validated already: a record built from a validated report
  (``telemetry.ingest``) or a validated stored record with a few fields changed
  (``telemetry.precedence``). Input from outside always goes through the model.
- ``construct`` needs every field of the model (nothing is defaulted, so a missing
  field is a ``TypeError`` here instead of a record without it); ``replace`` is
  ``model_copy(update=...)`` without its deep-copy machinery (the new record shares the
  unchanged field values, which CPN never mutates in place).
- The result is an ordinary instance: equal, serialised and stored like one built by
  the model (``tests/telemetry/test_records.py`` checks both against the model).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


def construct(cls: type[M], **values: Any) -> M:
    """An instance of ``cls`` holding ``values`` (every field, already valid)."""
    fields = cls.__pydantic_fields__  # ``model_fields`` is a slow class property
    if len(values) != len(fields) or not values.keys() <= fields.keys():
        missing = sorted(fields.keys() - values.keys())
        extra = sorted(values.keys() - fields.keys())
        raise TypeError(f"{cls.__name__}: construct needs exactly its fields "
                        f"(missing {missing}, unknown {extra})")
    obj = cls.__new__(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def replace(obj: M, **changes: Any) -> M:
    """A copy of ``obj`` with ``changes`` (fields of its model, already valid)."""
    cls = type(obj)
    fields = cls.__pydantic_fields__
    if not changes.keys() <= fields.keys():
        raise TypeError(f"{cls.__name__} has no field(s) "
                        f"{sorted(changes.keys() - fields.keys())}")
    new = cls.__new__(cls)
    values = obj.__dict__.copy()
    values.update(changes)
    _set(new, "__dict__", values)
    _set(new, "__pydantic_fields_set__", obj.__pydantic_fields_set__ | changes.keys())
    _set(new, "__pydantic_extra__", obj.__pydantic_extra__)
    _set(new, "__pydantic_private__", obj.__pydantic_private__)
    return new
