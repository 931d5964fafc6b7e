"""REST routes of grading and resource statistics (WP-3.1.4, WP-3.1.5):
``GET /api/v1/grades``, ``POST /api/v1/recommend``, ``GET /api/v1/compute-ids``.

Rules:
- Grades are what site agents measured (``telemetry.grading``); nothing is graded
  without a benchmark.
- ``/recommend`` answers the sites able to run a workload of a capability class at a
  rate or tier, best first, and why the others were left out; an unknown tier is a
  422 naming the tiers.
- ``/compute-ids`` is the resource index (WP-3.1.4): each admitted compute identifier
  with its site, resource, vendor/owner CA, lifecycle (onboarded, last seen, state,
  history) and usage statistics read from the journal (reported values: samples,
  min / mean / max, last; time online).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from controller.api.deps import RT, Caller
from controller.errors import ValidationError
from controller.models import ComputeMetrics
from controller.store.base import JournalQuery
from telemetry.grading import ComputeGrade, RecommendRequest, recommend, tier_rate, to_json
from telemetry.models import ComputeLifecycle, LifecycleState


def online_seconds(lc: ComputeLifecycle, now: datetime) -> float:
    """Seconds spent online since onboarding, from the lifecycle history."""
    events = sorted(lc.history, key=lambda e: e.at)
    total, since = 0.0, None
    state = LifecycleState.ONLINE
    since = lc.onboarded_at
    for e in events:
        if state is LifecycleState.ONLINE and since is not None:
            total += max(0.0, (e.at - since).total_seconds())
        state, since = e.state, e.at
    if state is LifecycleState.ONLINE and since is not None:
        total += max(0.0, (now - since).total_seconds())
    return total


def usage_stats(store: Any, lc: ComputeLifecycle) -> dict[str, Any]:
    entries = store.journal(JournalQuery(kind="resource", key=f"{lc.site}/{lc.resource}",
                                         limit=10_000))
    values = [float(e.value["value"]) for e in entries
              if e.value is not None and e.value.get("value") is not None]
    now = datetime.now(UTC)
    age = max((now - lc.onboarded_at).total_seconds(), 1e-9)
    on = online_seconds(lc, now)
    return {"samples": len(values), "min": min(values, default=None),
            "mean": sum(values) / len(values) if values else None,
            "max": max(values, default=None), "last": values[-1] if values else None,
            "online_s": round(on, 3), "online_share": round(min(on / age, 1.0), 4)}


def router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["compute"])

    @r.get("/grades", summary="Measured compute grades per node (WP-3.1.5)")
    def grades(rt: RT, who: Caller) -> dict[str, Any]:
        items = [g.to_json_dict() for g in sorted(rt.store.list(ComputeGrade),
                                                  key=lambda g: g.key)]
        return {"items": items, "total": len(items)}

    @r.post("/recommend", summary="Which sites can run a workload of this class and rate")
    def recommend_route(rt: RT, who: Caller, body: RecommendRequest) -> dict[str, Any]:
        if body.tier is not None:
            try:
                tier_rate(body.tier)
            except ValueError as exc:
                raise ValidationError.single("body.tier", str(exc)) from exc
            if body.capability != "neural":
                raise ValidationError.single("body.tier", "tiers grade the neural class",
                                             "set capability: neural or give min_rate")
        metrics = {m.site: m for m in rt.store.list(ComputeMetrics) if m.service == "*"}
        recs, left_out = recommend(body, rt.store.list(ComputeGrade), metrics)
        return {"request": body.model_dump(), "items": [to_json(x) for x in recs],
                "left_out": left_out}

    @r.get("/compute-ids", summary="Resource index, lifecycle and usage per compute "
           "identifier (WP-3.1.4)")
    def compute_ids(rt: RT, who: Caller) -> dict[str, Any]:
        items = []
        for lc in sorted(rt.store.list(ComputeLifecycle), key=lambda x: (x.site, x.resource)):
            items.append({**lc.to_json_dict(), "usage": usage_stats(rt.store, lc)})
        return {"items": items, "total": len(items)}

    return r
