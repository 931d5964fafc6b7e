"""Compute grading and recommendation (WP-3.1.5, GBA-6.7 "measurement and grading into
standard logical units", GBA App. ResNet-50 tiers).

Rules:
- A *benchmark* is measured on the node by the site agent (``run_benchmark``): real
  numpy work timed with a monotonic clock — integer ops (logic class), FP32 matrix
  multiply (parallel class) and a three-layer MLP forward pass over a batch (neural
  class, samples/s). Nothing is assumed: no result, no grade.
- The neural figure is stated in the GBA appendix's unit, ResNet-50 images/s: the
  measured FP32 rate divided by ResNet-50's forward cost (``RESNET50_GFLOP`` = 8.2
  GFLOP per 224×224 image, 4.1 G multiply-adds).
- *Logical units*: one unit is one B1.small (145 ResNet-50 img/s); ``units`` = measured
  img/s / 145. The *tier* is the largest of B1.small (145), B1.medium (390), B1.large
  (801) whose rate the node reaches within ``TIER_TOLERANCE`` (10 %); below B1.small the
  tier is ``sub-B1.small``.
- Capability classes: logic (CPU integer work, G ops/s), parallel (FP32 GFLOPS),
  neural (img/s). Accelerators the agent does not measure keep their declared figures.
- ``recommend`` ranks sites for a request (class, minimum rate or tier, count): a site
  qualifies when its best grade meets the rate; usable and less loaded sites first
  (CATS L2), then more headroom; each answer says why, and refusals say what was missing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field

from controller.models import ComputeMetrics
from controller.models.base import Entity, Model, Name, register
from controller.models.job import utcnow

RESNET50_GFLOP = 8.2
TIERS: tuple[tuple[str, float], ...] = (("B1.small", 145.0), ("B1.medium", 390.0),
                                        ("B1.large", 801.0))
UNIT_IMG_S = TIERS[0][1]
TIER_TOLERANCE = 0.10
CLASSES = ("logic", "parallel", "neural")


class Benchmark(Model):
    """One measured benchmark run: ``node``, ``logic_gops`` (integer G ops/s),
    ``fp32_gflops``, ``mlp_samples_s`` (3-layer MLP inference, samples/s),
    ``threads`` (BLAS threads seen), ``seconds`` (wall time spent), ``measured_at``."""

    node: str = Field(min_length=1, max_length=128)
    logic_gops: float = Field(ge=0, allow_inf_nan=False)
    fp32_gflops: float = Field(ge=0, allow_inf_nan=False)
    mlp_samples_s: float = Field(ge=0, allow_inf_nan=False)
    threads: int = Field(default=1, ge=1)
    seconds: float = Field(ge=0, allow_inf_nan=False)
    measured_at: datetime = Field(default_factory=utcnow)


class Grade(Model):
    """``resnet50_img_s`` (estimated), ``units`` (B1.small units), ``tier``, ``classes``
    (class → figure: logic G ops/s, parallel GFLOPS, neural img/s)."""

    resnet50_img_s: float
    units: float
    tier: str
    classes: dict[str, float]


@register
class ComputeGrade(Entity):
    """A node's grade (WP-3.1.5): ``site``, ``node``, ``benchmark``, ``grade``,
    ``history`` (last 16 figures of ResNet-50 img/s, for usage statistics)."""

    KIND = "compute-grade"
    site: Name
    node: str = Field(min_length=1, max_length=128)
    benchmark: Benchmark
    grade: Grade
    history: list[float] = Field(default_factory=list, max_length=16)

    @property
    def key(self) -> str:
        return f"{self.site}/{self.node}"


def tier_of(img_s: float) -> str:
    tier = "sub-B1.small"
    for name, rate in TIERS:
        if img_s >= rate * (1 - TIER_TOLERANCE):
            tier = name
    return tier


def tier_rate(name: str) -> float:
    for tier, rate in TIERS:
        if tier == name:
            return rate
    raise ValueError(f"unknown tier {name!r}; use one of {', '.join(t for t, _ in TIERS)}")


def grade(b: Benchmark) -> Grade:
    img_s = b.fp32_gflops / RESNET50_GFLOP
    return Grade(resnet50_img_s=round(img_s, 3), units=round(img_s / UNIT_IMG_S, 4),
                 tier=tier_of(img_s),
                 classes={"logic": round(b.logic_gops, 3), "parallel": round(b.fp32_gflops, 3),
                          "neural": round(img_s, 3)})


def run_benchmark(node: str, budget_s: float = 1.5, size: int = 384) -> Benchmark:
    """Measure this machine (about ``budget_s`` seconds of CPU, split in three)."""
    import numpy as np

    rng = np.random.default_rng(7)
    part = budget_s / 3
    t_start = time.perf_counter()
    # logic: integer multiply-xor-shift over a vector (4 ops per element per round)
    v = rng.integers(0, 2**31, size=1 << 18, dtype=np.int64)
    ops, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < part:
        v = ((v * 1103515245) ^ (v >> 7)) + 12345
        ops += 4 * v.size
    logic = ops / (time.perf_counter() - t0) / 1e9
    # parallel: FP32 matrix multiply
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < part:
        a @ b
        n += 1
    gflops = 2 * size**3 * n / (time.perf_counter() - t0) / 1e9
    # neural: 784-256-128-10 MLP forward over batches of 64
    w1 = rng.random((784, 256), dtype=np.float32)
    w2 = rng.random((256, 128), dtype=np.float32)
    w3 = rng.random((128, 10), dtype=np.float32)
    x = rng.random((64, 784), dtype=np.float32)
    samples, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < part:
        h = np.maximum(x @ w1, 0)
        h = np.maximum(h @ w2, 0)
        (h @ w3).argmax(axis=1)
        samples += x.shape[0]
    mlp = samples / (time.perf_counter() - t0)
    return Benchmark(node=node, logic_gops=logic, fp32_gflops=gflops, mlp_samples_s=mlp,
                     threads=_blas_threads(), seconds=time.perf_counter() - t_start)


def _blas_threads() -> int:
    import os

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return max(1, int(os.environ[var]))
    return os.cpu_count() or 1


class RecommendRequest(Model):
    """What a workload needs: ``capability`` (logic / parallel / neural), ``min_rate``
    (in the class's unit: G ops/s, GFLOPS, img/s) or ``tier`` (neural, e.g.
    ``B1.medium``), ``count`` (nodes needed, default 1)."""

    capability: str = Field(default="neural", pattern="^(logic|parallel|neural)$")
    min_rate: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    tier: str | None = None
    count: int = Field(default=1, ge=1, le=10_000)


@dataclass(frozen=True, slots=True)
class Recommendation:
    site: str
    nodes: tuple[str, ...]
    rate: float
    tier: str
    l2: float | None
    why: str


def recommend(req: RecommendRequest, grades: Sequence[ComputeGrade],
              metrics: Mapping[str, ComputeMetrics]) -> tuple[list[Recommendation],
                                                              list[str]]:
    """(qualifying sites best first, reasons the others were left out). Pure."""
    need = req.min_rate if req.min_rate is not None else (
        tier_rate(req.tier) * (1 - TIER_TOLERANCE) if req.tier else 0.0)
    by_site: dict[str, list[ComputeGrade]] = {}
    for g in grades:
        by_site.setdefault(g.site, []).append(g)
    out, left_out = [], []
    for site, gs in sorted(by_site.items()):
        fit = sorted((g for g in gs if g.grade.classes[req.capability] >= need),
                     key=lambda g: -g.grade.classes[req.capability])
        m = metrics.get(site)
        if m is not None and not m.usable:
            left_out.append(f"{site}: {'stale' if m.stale else 'unavailable'}")
            continue
        if m is not None and m.overloaded:
            left_out.append(f"{site}: overloaded")
            continue
        if len(fit) < req.count:
            best = max(g.grade.classes[req.capability] for g in gs)
            left_out.append(f"{site}: {len(fit)} of {req.count} nodes reach {need:g} "
                            f"({req.capability}; best {best:g})")
            continue
        chosen = fit[:req.count]
        rate = min(g.grade.classes[req.capability] for g in chosen)
        out.append(Recommendation(
            site, tuple(g.node for g in chosen), rate, chosen[-1].grade.tier,
            m.l2 if m is not None else None,
            f"{len(chosen)} node(s) at ≥ {rate:g} {req.capability}"
            + (f", L2 {m.l2:g}" if m is not None else ", no load reported")))
    out.sort(key=lambda r: (-(r.l2 if r.l2 is not None else -1.0), -r.rate, r.site))
    return out, left_out


def to_json(r: Recommendation) -> dict[str, Any]:
    return {"site": r.site, "nodes": list(r.nodes), "rate": r.rate, "tier": r.tier,
            "l2": r.l2, "why": r.why}
