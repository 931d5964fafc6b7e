"""Shared base for every domain object.

Rules:
- Objects are pydantic v2 models that forbid unknown keys, so a typo in a config
  file or a REST body is an error, not a silently ignored field.
- Every stored object has a ``KIND`` (the store's table name) and a ``key`` (its
  primary key within that kind). The store persists objects by ``(KIND, key)``.
- Units are part of field names (``delay_ms``, ``capacity_mbps``) or stated in the
  field description.
- Numbers are finite. Every pydantic model in CPN derives from ``Strict`` (directly or
  through ``Model``), which refuses NaN and ±infinity in typed float fields and anywhere
  inside free-form values (``extended``, ``params`` …). JSON's ``1e999`` and YAML's
  ``.inf`` parse to infinity, which JSON cannot store (it would be written as ``null``
  and the row would no longer load), so it is refused at the boundary with the field's
  path (issue #15). ``tests/controller/test_models_base.py`` keeps every model on it.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

#: A name usable as a DNS label and a path segment: letters, digits, '-', '_' and '.'.
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=NAME_RE)]

_NAME = re.compile(NAME_RE)


def is_name(value: str) -> bool:
    return bool(_NAME.match(value))


def non_finite_at(value: Any) -> tuple[str, float] | None:
    """Where inside ``value`` (a free-form JSON-like value) the first NaN or ±infinity
    sits and what it is: ``("", inf)`` for ``value`` itself, ``("['a'][0]", nan)`` below
    it, or None when all is finite. Nested pydantic models are skipped (they checked
    themselves)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else ("", value)
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        if isinstance(v, float | dict | list | tuple):
            below = non_finite_at(v)
            if below is not None:
                return f"[{k!r}]{below[0]}", below[1]
    return None


class Strict(BaseModel):
    """Root of every CPN pydantic model: unknown keys rejected, numbers finite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        # Typed float fields are covered by allow_inf_nan=False; this catches non-finite
        # numbers inside free-form values (dict[str, Any], list[Any]).
        if isinstance(value, dict | list | tuple):
            found = non_finite_at(value)
            if found is not None:
                raise PydanticCustomError(
                    "finite_number", "Input should be a finite number, not {value} (at "
                    "{where})", {"value": repr(found[1]), "where": found[0]})
        return value


class Model(Strict):
    """Strict base: unknown keys are rejected, assignment is validated, numbers finite."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class Entity(Model):
    """A model the state store persists. Subclasses set ``KIND`` and ``key``."""

    KIND: ClassVar[str] = ""

    @property
    def key(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


#: kind name -> Entity subclass; filled by ``register``.
ENTITY_KINDS: dict[str, type[Entity]] = {}


def register(cls: type[Entity]) -> type[Entity]:
    """Class decorator: make ``cls`` storable under ``cls.KIND`` (duplicates refused)."""
    if not cls.KIND:
        raise ValueError(f"{cls.__name__} has no KIND")
    existing = ENTITY_KINDS.get(cls.KIND)
    if existing is not None and existing is not cls:
        raise ValueError(f"entity kind {cls.KIND!r} already registered by {existing.__name__}")
    ENTITY_KINDS[cls.KIND] = cls
    return cls
