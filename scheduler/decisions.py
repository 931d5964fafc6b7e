"""Scheduling decisions as stored entities, and "why not here" (GBA-6.5f-8, WP-3.3.4).

Rules:
- A ``SchedulingDecision`` is written by whoever placed something — the scheduler
  component for a job (in the same store transaction as the job's new state), the joint
  placement (``POST /api/v1/scheduler/placement``) for each flow — keyed
  ``<subject_kind>:<subject>`` (``job:j-12``, ``flow:cam-1``). It is the decision with its
  inputs: the chosen site and node, the score of the best candidates, the policy
  (profile), the requests and bounds, and one ``SiteVerdict`` per other site saying why
  it was not chosen. It replaces parsing the journal's reason text: reports and the
  "why not" answer read these fields.
- ``SiteVerdict.constraint`` is one of ``compute-filter`` (a filter plug-in refused the
  site's nodes: not ready, affinity, manual, data …), ``capacity`` (not enough free
  cpu/memory/gpu, or path bandwidth), ``delay-bound`` (path delay over the bound),
  ``srlg`` (shares a risk group it must avoid), ``optical-reach`` (no optical path within
  reach), ``connectivity`` (no path at all), ``not-allowed`` (outside ``allowed_sites``),
  ``score`` (feasible, but scored lower), ``not-evaluated`` (the cycle stopped before it:
  percentage-of-nodes-to-score).
- ``why_not`` is pure: a stored decision in, one line per other site out.
- ``intent``: the SR policy intent that carries the decision's network part, when one
  was created (its status is the reconciler's). ``network`` mirrors that status
  (``scheduler.placement_intents`` writes it): ``failed`` — with the constraint, or the
  reason no intent could be made — means nothing of the network part is programmed and
  DNS does not follow the placement.
- ``service``: the service the placed flow or job serves (the flow's ``service``, the
  job's ``params.service``); DNS answers for it follow the placement
  (``dns_compute.ranking.placements``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from controller.models.base import Entity, Model, register
from controller.models.job import utcnow

Constraint = Literal["compute-filter", "capacity", "delay-bound", "srlg", "optical-reach",
                     "connectivity", "not-allowed", "score", "not-evaluated", "chosen"]


class SiteVerdict(Model):
    """One candidate site: ``site``, ``constraint`` (see the module rules), ``reason``
    (what the filter or planner said), ``node`` (the node it is about, if one),
    ``score`` (weighted total, feasible candidates only), ``figures`` (numbers used:
    delay_ms, bandwidth_mbps, free cpu …)."""

    site: str
    constraint: Constraint
    reason: str = ""
    node: str | None = None
    score: float | None = None
    figures: dict[str, float] = Field(default_factory=dict)


class NetworkPart(Model):
    """The decision's network part as the network carries it: ``state`` (the intent's
    state: pending, programmed, verified, degraded, failed), ``constraint`` (what
    failed, e.g. ``max_delay_ms``), ``reason`` and ``fix`` (for a person)."""

    state: str
    constraint: str | None = None
    reason: str = ""
    fix: str = ""


@register
class SchedulingDecision(Entity):
    """A placement and what it was decided from (see the module rules)."""

    KIND = "scheduling-decision"
    subject_kind: Literal["job", "flow"]
    subject: str
    code: str
    site: str | None = None
    nodes: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    scores: list[tuple[str, float]] = Field(default_factory=list)
    policy: str | None = None
    requests: dict[str, float] = Field(default_factory=dict)
    bounds: dict[str, float] = Field(default_factory=dict)
    candidates: list[SiteVerdict] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict)
    intent: str | None = None
    network: NetworkPart | None = None
    service: str | None = None
    decided_by: str = "scheduler"
    decided_at: datetime = Field(default_factory=utcnow)

    @property
    def key(self) -> str:
        return f"{self.subject_kind}:{self.subject}"


def classify(plugin: str, reason: str) -> Constraint:
    """The constraint family of a filter's refusal (plug-in name + its reason)."""
    text = f"{plugin} {reason}".lower()
    if "srlg" in text:
        return "srlg"
    if "reach" in text or "optical" in text:
        return "optical-reach"
    if "no path" in text:
        return "connectivity"
    if "delay" in text or "latency" in text:
        return "delay-bound"
    if "bandwidth" in text or "insufficient" in text or plugin in (
            "node-resources-fit", "resources", "quota") or "capacity" in text:
        return "capacity"
    return "compute-filter"


def why_not(dec: SchedulingDecision) -> dict[str, Any]:
    """For a person: where it went, and one line per other site saying why not there."""
    lines = []
    for v in sorted(dec.candidates, key=lambda c: (c.constraint == "chosen", c.site)):
        if v.constraint == "chosen":
            continue
        text = {"score": f"feasible but scored lower ({v.score:.1f})"
                if v.score is not None else "feasible but scored lower"}.get(
                    v.constraint, v.reason or v.constraint)
        if v.constraint == "score" and v.reason:
            text += f": {v.reason}"
        lines.append({"site": v.site, "constraint": v.constraint, "why": text,
                      "node": v.node, "figures": v.figures})
    chosen = (f"{dec.subject_kind} {dec.subject} → {dec.site}" if dec.site else
              f"{dec.subject_kind} {dec.subject} not placed ({dec.code}): "
              + "; ".join(dec.reasons))
    return {"decision": dec.key, "code": dec.code, "site": dec.site, "summary": chosen,
            "policy": dec.policy, "intent": dec.intent, "bounds": dec.bounds,
            "service": dec.service,
            "network_part": dec.network.model_dump() if dec.network else None,
            "decided_at": dec.decided_at.isoformat(), "not_chosen": lines}


def flow_decisions(prob: Any, assign: dict[str, Any], solver: str,
                   by: str = "placement") -> list[SchedulingDecision]:
    """The joint placement's decision per flow (``prob``: a
    ``scheduler.placement.PlacementProblem``; ``assign``: flow → (site, links) or None),
    each other site with the first constraint that rules it out, checked in the order
    allowed sites, compute capacity, connectivity, delay bound, path bandwidth."""
    out = []
    for f in prob.flows:
        a = assign.get(f.id)
        site, used = (a[0], list(a[1])) if a else (None, [])
        cands = []
        for s in prob.sites:
            free = {r: s.capacity.get(r, 0.0) - s.used.get(r, 0.0) for r in f.demand}
            figs = {f"free_{r}": v for r, v in free.items()}
            paths = list(prob.paths.get((f.origin, s.name), ()))
            if paths:
                figs["delay_ms"] = min(p.delay_ms for p in paths)
            if s.name == site:
                cands.append(SiteVerdict(site=s.name, constraint="chosen",
                                         reason=f"links {', '.join(used) or 'local'}",
                                         figures=figs))
                continue
            short = [r for r, v in free.items() if f.demand[r] > v + 1e-9]
            within = [p for p in paths if f.max_delay_ms is None
                      or p.delay_ms <= f.max_delay_ms + 1e-9]
            bw = [min((prob.links.get(ln, 0.0) for ln in p.links), default=float("inf"))
                  for p in within]
            if bw and min(bw) != float("inf"):
                figs["bandwidth_mbps"] = max(bw)
            if f.allowed_sites is not None and s.name not in f.allowed_sites:
                c: Constraint = "not-allowed"
                why = f"not in allowed_sites {list(f.allowed_sites)}"
            elif short:
                c, why = "capacity", ", ".join(
                    f"{r}: needs {f.demand[r]:g}, free {free[r]:g}" for r in short)
            elif not paths:
                c, why = "connectivity", f"no path from {f.origin}"
            elif not within:
                c, why = "delay-bound", (f"best path delay {figs['delay_ms']:g} ms > "
                                         f"max_delay_ms {f.max_delay_ms:g}")
            elif f.bandwidth_mbps > max(bw) + 1e-9:
                c, why = "capacity", (f"path bandwidth {max(bw):g} < "
                                      f"{f.bandwidth_mbps:g} Mbit/s")
            else:
                c, why = "score", ("feasible alone; a higher cost in the joint objective, "
                                   "or its capacity went to other flows")
            cands.append(SiteVerdict(site=s.name, constraint=c, reason=why, figures=figs))
        bounds = {"bandwidth_mbps": f.bandwidth_mbps} if f.bandwidth_mbps else {}
        if f.max_delay_ms is not None:
            bounds["max_delay_ms"] = f.max_delay_ms
        out.append(SchedulingDecision(
            subject_kind="flow", subject=f.id, code="success" if site else "unschedulable",
            site=site, reasons=[] if site else ["joint placement left it unplaced"],
            policy=f"joint ({solver})", requests=dict(f.demand), bounds=bounds,
            candidates=cands, decided_by=by,
            inputs={"origin": f.origin, "slice": f.slice, "links": used,
                    "allowed_sites": list(f.allowed_sites) if f.allowed_sites else None,
                    "weights": {k: getattr(prob.weights, k) for k in
                                ("delay", "price", "energy", "load", "interconnect",
                                 "migration")}}))
    return out
