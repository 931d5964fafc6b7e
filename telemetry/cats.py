"""CATS compute metrics: L0 raw values → L1 normalised categories → L2 one score.

Follows draft-ietf-cats-metric-definition (levels L0/L1/L2) and the CATS
requirements (RFC 10054: R9 damping, R14 declared update period); GBA-6.4.3b
(route by compute and network state). The *same* code runs in the site agent and
in the controller, so a score means the same thing wherever it was computed.

Rules:
- L0 is a dict of raw values whose unit is in the key name (``cpu_pct``,
  ``mem_pct``, ``gpu_free``, ``util_pct``, ``queue_depth``, ``energy_w``,
  ``price_per_hour``, ``delay_ms``, ``jitter_ms``, ``loss_pct`` …). Non-finite values
  are refused with a ``ValidationError`` naming the key; keys without a
  ``MetricSpec`` are kept in L0 but do not feed any score.
- L1: each L0 key with a spec is normalised to 0–1 (1 = best) by its function
  (min-max, sigmoid, z-score) and direction; a category (``compute_norm``,
  ``communication_norm``, ``service_norm``) is the weighted mean of its inputs
  present in L0. A category with no inputs is absent, not zero.
- L2 = 10 × weighted mean of the present categories, clamped to 0–10; no input
  at all ⇒ 0 (unknown is not good). Every function here is monotone in each
  input's declared direction (property-tested).
- Stateful helpers are small and explicit about time (``now`` is passed in):
  ``MetricSmoother`` (EWMA over the measurement window), ``ScoreDamper``
  (dead-band + hold-down on L2, R9), ``Hysteresis`` (overloaded above ``on``,
  cleared below ``off``), ``Staleness`` (no update within 3 declared periods ⇒
  stale, R14).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field, model_validator

from controller.errors import Issue, ValidationError
from controller.models import ComputeMetrics
from controller.models.base import Model, is_name

COMPUTE = "compute_norm"
COMMUNICATION = "communication_norm"
SERVICE = "service_norm"
CATEGORIES: tuple[str, ...] = (COMPUTE, COMMUNICATION, SERVICE)

#: Declared periods missed before a source is stale (R14; issue #3).
STALE_PERIODS = 3


class Category(StrEnum):
    COMPUTE = COMPUTE
    COMMUNICATION = COMMUNICATION
    SERVICE = SERVICE


class NormFn(StrEnum):
    MINMAX = "minmax"
    SIGMOID = "sigmoid"
    ZSCORE = "zscore"


class Direction(StrEnum):
    HIGHER_IS_BETTER = "higher-is-better"
    LOWER_IS_BETTER = "lower-is-better"


class MetricSpec(Model):
    """How one L0 key feeds L1. Fields: ``category``, ``fn``, ``direction``, ``weight``
    within its category; ``lo``/``hi`` (min-max range, in the key's unit), ``mid``/
    ``scale`` (sigmoid centre and width), ``mean``/``std`` (z-score)."""

    category: Category
    fn: NormFn = NormFn.MINMAX
    direction: Direction = Direction.LOWER_IS_BETTER
    weight: float = Field(default=1.0, gt=0)
    lo: float = 0.0
    hi: float = 100.0
    mid: float = 50.0
    scale: float = Field(default=10.0, gt=0)
    mean: float = 0.0
    std: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _range(self) -> MetricSpec:
        if self.fn is NormFn.MINMAX and not self.hi > self.lo:
            raise ValueError(f"min-max needs hi > lo (got lo={self.lo}, hi={self.hi})")
        return self


def _default_metrics() -> dict[str, MetricSpec]:
    lower, higher = Direction.LOWER_IS_BETTER, Direction.HIGHER_IS_BETTER
    c, n, s = Category.COMPUTE, Category.COMMUNICATION, Category.SERVICE
    return {
        "cpu_pct": MetricSpec(category=c, direction=lower, weight=2.0),
        "mem_pct": MetricSpec(category=c, direction=lower),
        "gpu_free": MetricSpec(category=c, direction=higher, hi=8.0),
        "energy_w": MetricSpec(category=c, direction=lower, weight=0.5, hi=2000.0),
        "price_per_hour": MetricSpec(category=c, direction=lower, weight=0.5, hi=100.0),
        "delay_ms": MetricSpec(category=n, fn=NormFn.SIGMOID, mid=20.0, scale=5.0),
        "jitter_ms": MetricSpec(category=n, fn=NormFn.SIGMOID, mid=5.0, scale=2.0),
        "loss_pct": MetricSpec(category=n, hi=5.0, weight=2.0),
        "util_pct": MetricSpec(category=s, direction=lower, weight=2.0),
        "queue_depth": MetricSpec(category=s, fn=NormFn.SIGMOID, mid=50.0, scale=15.0),
    }


class CatsConfig(Model):
    """CATS normalisation config. Fields: ``metrics`` (L0 key → spec), ``weights``
    (category → weight in L2), ``window_s`` (measurement window, s), ``overload_keys``
    (L0 keys whose max drives the overload hysteresis, %), ``overload_on_pct`` /
    ``overload_off_pct``, ``min_change`` (L2 dead-band, score points), ``hold_down_s``
    (minimum time between two published L2 changes, s)."""

    metrics: dict[str, MetricSpec] = Field(default_factory=_default_metrics)
    weights: dict[Category, float] = Field(
        default_factory=lambda: {Category.COMPUTE: 0.5, Category.COMMUNICATION: 0.2,
                                 Category.SERVICE: 0.3})
    window_s: float = Field(default=10.0, gt=0)
    overload_keys: list[str] = Field(default_factory=lambda: ["cpu_pct", "util_pct"])
    overload_on_pct: float = 85.0
    overload_off_pct: float = 70.0
    min_change: float = Field(default=0.25, ge=0, le=10)
    hold_down_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> CatsConfig:
        if self.overload_off_pct > self.overload_on_pct:
            raise ValueError("overload_off_pct must be ≤ overload_on_pct (hysteresis)")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("category weights must be ≥ 0")
        return self


# --- pure functions -------------------------------------------------------------------

def check_l0(l0: dict[str, float], where: str = "l0") -> None:
    """Refuse non-finite or non-numeric L0 values (``ValidationError`` naming the key)."""
    issues = []
    for key, value in l0.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            issues.append(Issue(f"{where}.{key}", f"not a number: {value!r}"))
        elif not math.isfinite(value):
            issues.append(Issue(f"{where}.{key}", f"not finite: {value!r}"))
    if issues:
        raise ValidationError(issues)


def normalise(value: float, spec: MetricSpec) -> float:
    """One L0 value → 0–1 where 1 is best, per ``spec`` (monotone in ``direction``):
    min-max, sigmoid, or a z-score mapped through the standard normal CDF."""
    return compile_spec(spec)(value)


def compile_spec(spec: MetricSpec) -> Callable[[float], float]:
    """The normalisation of one fixed ``spec`` as a closure: the spec's enum tests and
    constants are taken once, since the ingest path runs it for every L0 key."""
    lower = spec.direction is not Direction.HIGHER_IS_BETTER
    if spec.fn is NormFn.MINMAX:
        lo, hi, span = spec.lo, spec.hi, spec.hi - spec.lo

        def minmax(value: float) -> float:
            x = min(max((min(max(value, lo), hi) - lo) / span, 0.0), 1.0)
            return 1.0 - x if lower else x
        return minmax
    if spec.fn is NormFn.SIGMOID:
        mid, scale = spec.mid, spec.scale

        def sigmoid(value: float) -> float:
            z = (value - mid) / scale
            x = min(max(1.0 / (1.0 + math.exp(-max(min(z, 500.0), -500.0))), 0.0), 1.0)
            return 1.0 - x if lower else x
        return sigmoid
    mean, denom = spec.mean, spec.std * math.sqrt(2.0)

    def zscore(value: float) -> float:
        x = min(max(0.5 * (1.0 + math.erf((value - mean) / denom)), 0.0), 1.0)
        return 1.0 - x if lower else x
    return zscore


#: L0 key → (category, weight, compiled normalisation); see ``compile_table``
SpecTable = dict[str, tuple[str, float, Callable[[float], float]]]


def compile_table(cfg: CatsConfig) -> SpecTable:
    """Every spec of ``cfg`` compiled once (``compile_spec``), keyed by L0 key."""
    return {key: (spec.category.value, spec.weight, compile_spec(spec))
            for key, spec in cfg.metrics.items()}


def l1_scores(l0: dict[str, float], cfg: CatsConfig,
              table: SpecTable | None = None) -> dict[str, float]:
    """L0 → L1 categories present in the input (each 0–1, 1 = best). ``table``: the
    compiled specs of ``cfg`` (``compile_table``) when the caller keeps them."""
    acc: dict[str, list[float]] = {}
    _accumulate(l0, table if table is not None else compile_table(cfg), acc)
    return _finish(acc)


def _accumulate(l0: dict[str, float], specs: SpecTable, acc: dict[str, list[float]]) -> None:
    """Add each L0 key's weighted normalised value to its category's [sum, weight]."""
    for key, value in l0.items():
        entry = specs.get(key)
        if entry is None:
            continue
        cat, weight, fn = entry
        tot = acc.get(cat)
        if tot is None:
            acc[cat] = [weight * fn(value), weight]
        else:
            tot[0] += weight * fn(value)
            tot[1] += weight


def _finish(acc: dict[str, list[float]]) -> dict[str, float]:
    return {cat: min(max(s / w, 0.0), 1.0) for cat, (s, w) in acc.items() if w > 0}


@dataclass(frozen=True)
class L1Part:
    """The L1 work on L0 values several records share (a site's own values, copied into
    each of its services' records): ``l0`` (checked finite) and per category the
    [sum, weight] they contribute. ``MetricsTracker.update(..., part=)`` then checks and
    normalises only the keys the record adds."""

    l0: dict[str, float]
    acc: dict[str, tuple[float, float]]


def l1_part(l0: dict[str, float], table: SpecTable) -> L1Part:
    """Check and normalise ``l0`` once for every record that starts with these values."""
    check_l0(l0)
    acc: dict[str, list[float]] = {}
    _accumulate(l0, table, acc)
    return L1Part(dict(l0), {c: (s, w) for c, (s, w) in acc.items()})


def l2_score(l1: dict[str, float], cfg: CatsConfig) -> float:
    """L1 → L2 one score 0–10 (10 best); no usable category ⇒ 0."""
    num = den = 0.0
    weights = cfg.weights  # keyed by Category, a StrEnum: its members hash as their text
    for cat, value in l1.items():
        w = weights.get(cat, 0.0) if cat in CATEGORIES else 0.0  # type: ignore[call-overload]
        num += w * min(max(value, 0.0), 1.0)
        den += w
    if den <= 0:
        return 0.0
    return round(min(max(10.0 * num / den, 0.0), 10.0), 4)


def overload_signal(l0: dict[str, float], cfg: CatsConfig) -> float | None:
    """The % value that drives the overload hysteresis (max of ``overload_keys``)."""
    vals = [l0[k] for k in cfg.overload_keys if k in l0]
    return max(vals) if vals else None


# --- stateful helpers -----------------------------------------------------------------

class Hysteresis:
    """Overloaded when the signal rises *above* ``on``; cleared when it falls *below*
    ``off``. Between the two the state holds, so a signal oscillating in
    [off, on] never flaps."""

    def __init__(self, on: float = 85.0, off: float = 70.0, state: bool = False) -> None:
        if off > on:
            raise ValueError("hysteresis needs off ≤ on")
        self.on, self.off, self.state = on, off, state

    def update(self, value: float) -> bool:
        if value > self.on:
            self.state = True
        elif value < self.off:
            self.state = False
        return self.state


class MetricSmoother:
    """EWMA of each L0 key with time constant ``window_s`` (the CATS measurement
    window): ``alpha = 1 − exp(−dt / window_s)``, so one sample in a quiet period
    moves the value only partly and a step settles in about one window."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.values: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def update(self, l0: dict[str, float], now: float) -> dict[str, float]:
        for key, value in l0.items():
            prev_t = self._last.get(key)
            if prev_t is None or key not in self.values:
                self.values[key] = value
            else:
                dt = max(now - prev_t, 0.0)
                alpha = 1.0 - math.exp(-dt / self.window_s)
                self.values[key] += alpha * (value - self.values[key])
            self._last[key] = now
        return {k: self.values[k] for k in l0}


class ScoreDamper:
    """R9 damping of the published L2: a change smaller than ``min_change`` is not
    published, nor any change within ``hold_down_s`` of the previous one."""

    def __init__(self, min_change: float = 0.25, hold_down_s: float = 0.0) -> None:
        self.min_change, self.hold_down_s = min_change, hold_down_s
        self.published: float | None = None
        self._changed_at = -math.inf

    def update(self, score: float, now: float) -> float:
        if self.published is None or (abs(score - self.published) >= self.min_change
              and now - self._changed_at >= self.hold_down_s):
            self.published, self._changed_at = score, now
        return self.published


class Staleness:
    """Per-source freshness (R14): a source declares its update period; no update
    within ``STALE_PERIODS`` periods ⇒ stale."""

    def __init__(self, periods: int = STALE_PERIODS) -> None:
        self.periods = periods
        self._seen: dict[str, tuple[float, float]] = {}
        self._stale: set[str] = set()

    def touch(self, source: str, now: float, period_s: float) -> bool:
        """Record an update; True when the source was stale and is fresh again."""
        self._seen[source] = (now, period_s)
        was = source in self._stale
        self._stale.discard(source)
        return was

    def is_stale(self, source: str, now: float) -> bool:
        seen = self._seen.get(source)
        return seen is None or now - seen[0] > self.periods * seen[1]

    def newly_stale(self, now: float) -> list[str]:
        """Sources that became stale since the last call (log each once)."""
        out = [s for s in self._seen if s not in self._stale and self.is_stale(s, now)]
        self._stale.update(out)
        return out

    def forget(self, source: str) -> None:
        self._seen.pop(source, None)
        self._stale.discard(source)


class MetricsTracker:
    """The per-(site, service) pipeline: smooth L0 → L1 → L2 → damp, plus hysteresis.
    ``table``: the compiled specs of ``cfg`` (``compile_table``), shared by trackers."""

    def __init__(self, cfg: CatsConfig, smooth: bool = True,
                 table: SpecTable | None = None) -> None:
        self.cfg = cfg
        self.table = table if table is not None else compile_table(cfg)
        self.smoother = MetricSmoother(cfg.window_s) if smooth else None
        self.damper = ScoreDamper(cfg.min_change, cfg.hold_down_s)
        self.hysteresis = Hysteresis(cfg.overload_on_pct, cfg.overload_off_pct)

    def update(self, l0: dict[str, float], now: float, part: L1Part | None = None
               ) -> tuple[dict[str, float], float, bool]:
        """Returns (L1, damped L2, overloaded). Hysteresis sees the raw signal so a
        spike is not hidden by smoothing; the score is smoothed and damped. ``part``:
        L1 work done once on values ``l0`` starts with (the same keys with the same
        values, first — ``l1_part``); used when nothing is smoothed."""
        if part is not None and self.smoother is None:
            rest = {k: v for k, v in l0.items() if k not in part.l0}
            check_l0(rest)
            acc = {c: [s, w] for c, (s, w) in part.acc.items()}
            _accumulate(rest, self.table, acc)
            l1 = _finish(acc)
        else:
            check_l0(l0)
            values = self.smoother.update(l0, now) if self.smoother else l0
            l1 = l1_scores(values, self.cfg, self.table)
        sig = overload_signal(l0, self.cfg)
        overloaded = self.hysteresis.update(sig) if sig is not None else self.hysteresis.state
        return l1, self.damper.update(l2_score(l1, self.cfg), now), overloaded


def build_metrics(site: str, service: str, l0: dict[str, float], cfg: CatsConfig, *,
                  source: str = "agent", period_s: float = 10.0, now: float | None = None,
                  tracker: MetricsTracker | None = None,
                  l1: dict[str, float] | None = None, l2: float | None = None,
                  previous: ComputeMetrics | None = None) -> ComputeMetrics:
    """Build the ``ComputeMetrics`` record for (site, service) from L0 values.

    ``tracker`` (if given) applies smoothing, damping and hysteresis; without it the
    scores are computed directly and ``overloaded`` follows ``previous`` through the
    hysteresis band. ``l1``/``l2`` given by the source (e.g. advertised over BGP)
    take precedence over the computed ones for the keys they carry; without an
    advertised L2, L2 is computed from the merged L1 (advertised L1 values count).
    """
    check_l0(l0)
    ts = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    if tracker is not None:
        c_l1, c_l2, overloaded = tracker.update(l0, ts.timestamp())
    else:
        c_l1 = l1_scores(l0, cfg)
        c_l2 = l2_score(c_l1, cfg)
        hyst = Hysteresis(cfg.overload_on_pct, cfg.overload_off_pct,
                          previous.overloaded if previous else False)
        sig = overload_signal(l0, cfg)
        overloaded = hyst.update(sig) if sig is not None else hyst.state
    out_l1 = {k: min(max(float(v), 0.0), 1.0) for k, v in {**c_l1, **(l1 or {})}.items()}
    if l2 is not None:
        out_l2 = min(max(l2, 0.0), 10.0)
    elif l1:
        out_l2 = l2_score(out_l1, cfg)  # advertised L1 values feed L2 (issue #15)
    else:
        out_l2 = c_l2
    if not (is_name(site) and period_s > 0 and math.isfinite(out_l2)):
        raise ValidationError(Issue("site" if not is_name(site) else "period_s",
                                    f"invalid metrics record for {site!r}/{service!r}"))
    # every field is checked above (L0 finite, L1/L2 clamped), so skip pydantic's
    # re-validation: this runs per BGP route / agent report (bench bgp-ingest)
    return ComputeMetrics.model_construct(
        site=site, service=service, l0=dict(l0), l1=out_l1, l2=out_l2, overloaded=overloaded,
        available=True, stale=False, source=source, period_s=period_s,
        window_s=cfg.window_s, updated_at=ts)
