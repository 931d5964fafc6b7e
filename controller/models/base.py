"""Shared base for every domain object.

Rules:
- Objects are pydantic v2 models that forbid unknown keys, so a typo in a config
  file or a REST body is an error, not a silently ignored field.
- Every stored object has a ``KIND`` (the store's table name) and a ``key`` (its
  primary key within that kind). The store persists objects by ``(KIND, key)``.
- Units are part of field names (``delay_ms``, ``capacity_mbps``) or stated in the
  field description.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints

#: A name usable as a DNS label and a path segment: letters, digits, '-', '_' and '.'.
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=NAME_RE)]

_NAME = re.compile(NAME_RE)


def is_name(value: str) -> bool:
    return bool(_NAME.match(value))


class Model(BaseModel):
    """Strict base: unknown keys are rejected, assignment is validated."""

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
