"""Alarm objects (GBA-6.7 monitoring and alarms, GBT-8.2 user-set thresholds).

Rules:
- One ``Alarm`` per (``type``, ``resource``): raising it again re-activates the same
  object (``count`` + 1, ``last_seen`` moved, acknowledgement reset) so an operator sees
  one line per problem, not one per occurrence. ``first_seen`` never moves.
- Severities are X.733's: critical, major, minor, warning; ``cleared`` is the state of a
  cleared alarm, which keeps the severity it was raised with in ``raised_severity``.
- An alarm may belong to a ``tenant`` (an accelerator instance a tenant rents); tenants
  see only their own alarms, operators and viewers see all.
- A shelved alarm (``shelved_until`` in the future) is hidden from the default list
  and from the active counts until the time passes or it is unshelved.
- ``AlarmThreshold`` is a user-set rule (GBT-8 "instance anomaly detection with
  user-set alarm thresholds"): a numeric field of every object of one kind
  (``instance``, ``card``, ``metrics`` …) compared with a bound.
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from controller.models.base import Entity, Name, register
from controller.models.job import utcnow


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    CLEARED = "cleared"


#: Worst first (for sorting and for the console's colours).
SEVERITY_ORDER: tuple[Severity, ...] = (Severity.CRITICAL, Severity.MAJOR, Severity.MINOR,
                                        Severity.WARNING, Severity.CLEARED)


def alarm_id(type_: str, resource: str) -> str:
    """Stable id of the alarm (``type``, ``resource``): usable in a URL path."""
    return "A" + hashlib.sha1(f"{type_}|{resource}".encode()).hexdigest()[:12]


@register
class Alarm(Entity):
    """One alarm. Fields: ``id`` (stable, from type and resource), ``type`` (e.g.
    ``site-overloaded``, ``bgp-session-down``), ``resource`` (what it is about, e.g.
    ``MEC-1/video``), ``source`` (the component that raised it), ``severity``,
    ``raised_severity``, ``text``, ``tenant``, ``first_seen``, ``last_seen``,
    ``cleared_at``, ``count`` (times raised), ``acknowledged``, ``acked_by``,
    ``acked_at``, ``ack_note``, ``shelved_until``, ``shelved_by``."""

    KIND = "alarm"
    id: str = Field(pattern=r"^A[0-9a-f]{12}$")
    type: str = Field(min_length=1, max_length=64)
    resource: str = Field(min_length=1, max_length=256)
    source: str = ""
    severity: Severity
    raised_severity: Severity
    text: str = ""
    tenant: Name | None = None
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    cleared_at: datetime | None = None
    count: int = Field(default=1, ge=1)
    acknowledged: bool = False
    acked_by: str | None = None
    acked_at: datetime | None = None
    ack_note: str = ""
    shelved_until: datetime | None = None
    shelved_by: str | None = None

    @property
    def key(self) -> str:
        return self.id

    @property
    def active(self) -> bool:
        return self.severity is not Severity.CLEARED

    def shelved(self, now: datetime) -> bool:
        return self.shelved_until is not None and self.shelved_until > now


class ThresholdOp(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="


OPS: dict[ThresholdOp, Callable[[Any, Any], bool]] = {
    ThresholdOp.GT: operator.gt, ThresholdOp.GE: operator.ge, ThresholdOp.LT: operator.lt,
    ThresholdOp.LE: operator.le, ThresholdOp.EQ: operator.eq, ThresholdOp.NE: operator.ne,
}


@register
class AlarmThreshold(Entity):
    """A user-set alarm rule (GBT-8). Fields: ``name``; ``kind`` (stored kind whose
    objects are checked, e.g. ``instance``, ``card``, ``metrics``); ``field`` (dotted
    path into the object, e.g. ``spec.throughput`` or ``l0.util_pct``); ``op``;
    ``value``; ``severity``; ``match`` (key prefix; empty = every object);
    ``text`` (shown in the alarm)."""

    KIND = "alarm-threshold"
    name: Name
    kind: str = Field(min_length=1, max_length=64)
    field: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    op: ThresholdOp = ThresholdOp.GT
    value: float
    severity: Severity = Severity.WARNING
    match: str = ""
    text: str = ""

    @property
    def key(self) -> str:
        return self.name

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v

    @model_validator(mode="after")
    def _not_cleared(self) -> Self:
        if self.severity is Severity.CLEARED:
            raise ValueError("severity: a threshold raises critical, major, minor or warning, "
                             "not cleared")
        return self

    def breached(self, obj: dict[str, Any]) -> float | None:
        """The field's value when ``obj`` breaks the rule, else None."""
        cur: Any = obj
        for part in self.field.split("."):
            if not isinstance(cur, dict) or part not in cur:
                return None
            cur = cur[part]
        if isinstance(cur, bool) or not isinstance(cur, int | float):
            return None
        return float(cur) if OPS[self.op](cur, self.value) else None
