"""Helpers shared by plug-ins: argument validation and min-max normalisation.

Rules:
- Every plug-in takes a dict of args validated by a pydantic model; a bad value is a
  ``ValueError`` naming the plug-in and the field (WP-3.3.1 invalid policy config).
- ``normalize_minmax`` maps raw scores onto 0–100 (``reverse`` = lower raw is better);
  ``normalize_minmax_batch`` does the same float operations over a numpy array.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from controller.models.base import Strict

if TYPE_CHECKING:
    from scheduler.table import F64

A = TypeVar("A", bound=BaseModel)


class Args(Strict):
    """Refuses unknown keys and non-finite numbers (``Strict``)."""


def parse_args(plugin: str, model: type[A], args: dict[str, Any]) -> A:
    try:
        return model.model_validate(args)
    except PydanticError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "(args)"
        raise ValueError(f"plug-in {plugin!r}, field {field!r}: {err['msg']}") from None


def normalize_minmax(scores: dict[str, float], reverse: bool = False) -> None:
    if not scores:
        return
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    for k, v in scores.items():
        x = 1.0 if span <= 1e-12 else (v - lo) / span
        scores[k] = 100.0 * (1.0 - x if reverse and span > 1e-12 else x)


def normalize_minmax_batch(raw: F64, reverse: bool = False) -> F64:
    import numpy as np

    if not len(raw):
        return raw
    lo, hi = float(raw.min()), float(raw.max())
    span = hi - lo
    if span <= 1e-12:
        return np.full(len(raw), 100.0)
    x = (raw - lo) / span
    return 100.0 * (1.0 - x) if reverse else 100.0 * x
