"""SD-WAN application-aware policies (GBA-6.4.3e): model and pure rendering.

Rules:
- An ``SdwanPolicy`` matches traffic (app name / DSCP / ports / protocol / prefixes),
  names an ``SlaClass`` (max delay, jitter, loss) and a transport preference
  (``ip-private`` / ``otn`` / ``internet``, best first), for traffic from branch
  ``headends`` to ``endpoint``. An app name known to ``APPS`` fills in protocol, ports
  and DSCP the match leaves empty; an unknown app with nothing else to match on is an
  error.
- Rendering is pure: for each headend and each transport a CSPF path restricted to
  links of that transport kind (other kinds excluded) and bounded by the SLA delay is
  computed on the *current* link metrics; jitter (summed, an upper bound) and loss
  (1 - Π(1 - loss)) are checked on it. Each transport becomes one candidate path of
  the branch's ``SrPolicy`` (colour = the policy's colour), preference falling with the
  transport's rank; a transport that breaches the SLA or has no path is an *invalid*
  candidate path naming why, so RFC 9256 selection makes the best SLA-meeting transport
  active — failover is re-rendering with new metrics.
- If no transport meets the SLA, the most preferred reachable transport stays valid
  (best effort) and the decision says ``sla_met: false``.
- Output: ``SteeringRule``s (match → colour/endpoint; fwmark = colour), the
  ``SrPolicy``s, ``SrPolicyIntent``s for the chosen transport, and one
  ``SdwanDecision`` per branch explaining the choice. Pushing is the programmer's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from pydantic import Field, model_validator

from controller.errors import ValidationError
from controller.models import InterconnectKind, Model, Name
from controller.models.base import Entity, register
from srv6.models import (
    MAX_U32,
    CandidatePath,
    Constraints,
    PathResult,
    ProtocolOrigin,
    SrPolicy,
    SrPolicyIntent,
    SteeringMatch,
    SteeringRule,
)
from srv6.paths import Topology, compute_path

#: A small application catalogue: name -> (protocol, dst ports, DSCP).
APPS: dict[str, tuple[str, str | None, int | None]] = {
    "rtp-video": ("udp", "5004-5005", 34),
    "video-analytics": ("udp", "5600", 34),
    "sip": ("udp", "5060", 24),
    "voice": ("udp", "16384-32767", 46),
    "https": ("tcp", "443", None),
    "ssh": ("tcp", "22", 16),
    "dns": ("udp", "53", None),
    "bulk-backup": ("tcp", "873", 8),
}


class SlaClass(Model):
    """``name``, ``max_delay_ms``, ``max_jitter_ms``, ``max_loss_pct`` (0–100); None =
    no bound."""

    name: Name
    max_delay_ms: float | None = Field(default=None, gt=0)
    max_jitter_ms: float | None = Field(default=None, ge=0)
    max_loss_pct: float | None = Field(default=None, ge=0, le=100)


@register
class SdwanPolicy(Entity):
    """An SD-WAN policy: ``name``, ``match``, ``sla``, ``transports`` (preference, best
    first), ``headends`` (branch edges), ``endpoint``, ``color`` (of the SR policies it
    renders), ``priority`` (steering rule order, lower first)."""

    KIND = "sdwan-policy"
    name: Name
    match: SteeringMatch
    sla: SlaClass
    transports: list[InterconnectKind] = Field(min_length=1)
    headends: list[Name] = Field(min_length=1)
    endpoint: Name
    color: int = Field(ge=1, le=MAX_U32)
    priority: int = Field(default=1000, ge=0, le=32767)

    @property
    def key(self) -> str:
        return self.name

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if len(set(self.transports)) != len(self.transports):
            raise ValueError("transports lists a kind twice")
        if self.endpoint in self.headends:
            raise ValueError(f"endpoint {self.endpoint!r} is also a headend")
        m = self.match
        if m.app is not None and m.app not in APPS and not any(
                (m.protocol, m.dst_ports, m.src_ports, m.dscp, m.dst, m.src)):
            raise ValueError(f"unknown app {m.app!r} and nothing else to match on "
                             f"(known apps: {', '.join(sorted(APPS))})")
        return self

    def resolved_match(self) -> SteeringMatch:
        """The match with catalogue defaults for the app filled in."""
        m = self.match
        if m.app is None or m.app not in APPS:
            return m
        proto, ports, dscp = APPS[m.app]
        return m.model_copy(update={
            "protocol": m.protocol or proto,
            "dst_ports": m.dst_ports or ports,
            "dscp": m.dscp if m.dscp is not None else dscp})


class TransportCheck(Model):
    """One transport tried for a branch: ``transport``, ``ok`` (SLA met), ``path``,
    ``jitter_ms``, ``loss_pct``, ``reason``."""

    transport: InterconnectKind
    ok: bool
    path: PathResult
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    reason: str = ""


class SdwanDecision(Model):
    """Per (policy, headend): ``chosen`` transport (None if nothing reachable),
    ``sla_met``, ``checks`` (every transport in preference order), ``reason``."""

    policy: str
    headend: str
    endpoint: str
    chosen: InterconnectKind | None
    sla_met: bool
    checks: list[TransportCheck]
    reason: str


class SdwanRendering(Model):
    rules: list[SteeringRule] = Field(default_factory=list)
    policies: list[SrPolicy] = Field(default_factory=list)
    intents: list[SrPolicyIntent] = Field(default_factory=list)
    decisions: list[SdwanDecision] = Field(default_factory=list)


def render(topo: Topology, policies: Sequence[SdwanPolicy]) -> SdwanRendering:
    """Render every policy for every headend on the current topology metrics."""
    colors: dict[tuple[str, int], str] = {}
    out = SdwanRendering()
    for pol in policies:
        topo.node(pol.endpoint, f"sdwan.{pol.name}.endpoint")
        for h in pol.headends:
            topo.node(h, f"sdwan.{pol.name}.headends")
            if (h, pol.color) in colors:
                raise ValidationError.single(
                    f"sdwan.{pol.name}.color",
                    f"colour {pol.color} at {h} is already used by {colors[(h, pol.color)]}",
                    "give each SD-WAN policy its own colour")
            colors[(h, pol.color)] = pol.name
            decision, sr = _branch(topo, pol, h)
            out.decisions.append(decision)
            out.policies.append(sr)
            out.rules.append(SteeringRule(
                name=f"{pol.name}-{pol.endpoint}", headend=h, match=pol.resolved_match(),
                color=pol.color, endpoint=pol.endpoint, priority=pol.priority,
                fwmark=pol.color, source=f"sdwan:{pol.name}"))
            if decision.chosen is not None:
                out.intents.append(SrPolicyIntent(
                    headend=h, endpoint=pol.endpoint, color=pol.color,
                    name=f"sdwan-{pol.name}",
                    constraints=_constraints(topo, pol, decision.chosen)))
    return out


def _constraints(topo: Topology, pol: SdwanPolicy, kind: InterconnectKind) -> Constraints:
    other = sorted(e.key for e in topo.edges if e.kind != str(kind))
    return Constraints(max_delay_ms=pol.sla.max_delay_ms, exclude_links=other)


def _check(topo: Topology, pol: SdwanPolicy, h: str, kind: InterconnectKind) -> TransportCheck:
    res = compute_path(topo, h, pol.endpoint, _constraints(topo, pol, kind))
    if not res.ok:
        why = ("no path over this transport" if res.failed_constraint == "exclude_links"
               else f"{res.failed_constraint}: {res.reason}")
        return TransportCheck(transport=kind, ok=False, path=res, reason=why)
    edges = [topo.edges[topo.edge_by_key[k]] for k in res.links]
    jitter = sum(e.jitter_ms for e in edges)
    keep = 1.0
    for e in edges:
        keep *= 1 - e.loss_pct / 100
    loss = (1 - keep) * 100
    sla = pol.sla
    breaches = []
    if sla.max_jitter_ms is not None and jitter > sla.max_jitter_ms:
        breaches.append(f"jitter {jitter:.3g} ms > {sla.max_jitter_ms:g}")
    if sla.max_loss_pct is not None and loss > sla.max_loss_pct:
        breaches.append(f"loss {loss:.3g} % > {sla.max_loss_pct:g}")
    return TransportCheck(
        transport=kind, ok=not breaches, path=res, jitter_ms=round(jitter, 6),
        loss_pct=round(loss, 6),
        reason=("SLA breached: " + ", ".join(breaches)) if breaches
        else f"meets SLA {sla.name} (delay {res.delay_ms:g} ms)")


def _branch(topo: Topology, pol: SdwanPolicy, h: str) -> tuple[SdwanDecision, SrPolicy]:
    checks = [_check(topo, pol, h, kind) for kind in pol.transports]
    good = [c for c in checks if c.ok]
    reachable = [c for c in checks if c.path.ok]
    best_effort: TransportCheck | None = None
    if good:
        chosen: TransportCheck | None = good[0]
        reason = f"{good[0].transport} {good[0].reason}"
        skipped = checks[:checks.index(good[0])]
        if skipped:
            reason += "; failed over from " + "; ".join(
                f"{c.transport} ({c.reason})" for c in skipped)
    elif reachable:
        chosen = best_effort = reachable[0]
        reason = (f"no transport meets SLA {pol.sla.name}; best effort on "
                  f"{reachable[0].transport} ({reachable[0].reason})")
    else:
        chosen = None
        reason = "no transport reaches the endpoint: " + "; ".join(
            f"{c.transport} ({c.reason})" for c in checks)
    cps = []
    n = len(checks)
    for rank, c in enumerate(checks):
        if c.path.segment_list is None:
            continue  # nothing to install for a transport without a path
        invalid = "" if (c.ok or c is best_effort) else c.reason
        cps.append(CandidatePath(
            preference=100 * (n - rank), protocol_origin=ProtocolOrigin.PCEP,
            discriminator=rank + 1, name=f"{pol.name} via {c.transport}",
            segment_lists=[c.path.segment_list], invalid_reason=invalid))
    sr = SrPolicy(headend=h, endpoint=pol.endpoint, color=pol.color,
                  name=f"sdwan-{pol.name}", candidate_paths=cps)
    return SdwanDecision(policy=pol.name, headend=h, endpoint=pol.endpoint,
                         chosen=None if chosen is None else chosen.transport,
                         sla_met=bool(good), checks=checks, reason=reason), sr
