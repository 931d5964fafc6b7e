"""Renderer: SR policy model (``srv6.models``) → desired kernel state per node.

Rules:
- Pure: policies, local SIDs and a little placement data in, ``{node: NodeState}`` out.
- The headend of a policy gets one ``Seg6Route`` per steered prefix, carrying the
  segment list of the active candidate path (RFC 9256 §2.9). Several active segment
  lists (weighted ECMP) are not expressible as one Linux seg6 route: the one with the
  highest weight is used (ties: first) and ``RenderNotes`` says so.
- H.Encaps.Red is rendered as H.Encaps (the pyroute2 0.9.7 encoder has no
  ``encap.red`` mode); the wire SRH then also carries the first SID, which is valid.
- Every ``LocalSid`` becomes a ``Seg6LocalRoute`` on its node; its ``interface`` or the
  node's default device is the route's ``dev``.
- A policy whose prefixes are unknown or whose node has no device is an error naming
  the policy (GBA-6.4.3c: never program half a policy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.errors import Issue, ValidationError
from srv6.models import LocalSid, SidBehavior, SrPolicy

from .state import NodeState, Route, Seg6LocalRoute, Seg6Route


@dataclass
class RenderNotes:
    """Non-fatal remarks from rendering (policy key → text)."""

    notes: dict[str, str] = field(default_factory=dict)


def policy_route(policy: SrPolicy, prefix: str, dev: str, table: int = 254) -> Seg6Route:
    """The headend steering route for one prefix of ``policy`` (its active path)."""
    lists = policy.active_segment_lists()
    if not lists:
        raise ValidationError.single(f"sr_policies.{policy.key}.candidate_paths",
                                     "no valid candidate path with a usable segment list",
                                     "compute a path or add a candidate path")
    best = max(lists, key=lambda sl: sl.weight)
    return Seg6Route(dst=prefix, segments=tuple(str(s) for s in best.sids), dev=dev,
                     mode="encap", table=table)


def local_route(sid: LocalSid, default_dev: str) -> Seg6LocalRoute:
    action = str(sid.behavior)
    nh4 = str(sid.nexthop) if sid.behavior is SidBehavior.END_DX4 else None
    nh6 = str(sid.nexthop) if sid.behavior in (SidBehavior.END_X, SidBehavior.END_DX6) \
        else None
    return Seg6LocalRoute(sid=str(sid.sid), action=action,  # type: ignore[arg-type]
                          dev=sid.interface or default_dev, nh4=nh4, nh6=nh6)


def render(policies: Iterable[SrPolicy], local_sids: Iterable[LocalSid],
           prefixes: Mapping[str, Iterable[str]], devices: Mapping[str, str],
           notes: RenderNotes | None = None) -> dict[str, NodeState]:
    """Desired state per node.

    ``prefixes``: policy key → destination prefixes steered into it at the headend;
    ``devices``: node → default device for its routes.
    """
    per_node: dict[str, list[Route]] = {}
    issues: list[Issue] = []
    for pol in policies:
        where = f"sr_policies.{pol.key}"
        dev = devices.get(pol.headend)
        pfx = list(prefixes.get(pol.key, ()))
        if dev is None:
            issues.append(Issue(f"{where}.headend", f"no device known on {pol.headend!r}"))
            continue
        if not pfx:
            issues.append(Issue(where, "no destination prefix steered into the policy",
                                "give the policy's prefixes (steering rule or endpoint)"))
            continue
        lists = pol.active_segment_lists()
        if notes is not None and len(lists) > 1:
            notes.notes[pol.key] = (f"{len(lists)} active segment lists; Linux seg6 "
                                    "routes carry one: highest weight used")
        try:
            per_node.setdefault(pol.headend, []).extend(
                policy_route(pol, p, dev) for p in pfx)
        except ValidationError as exc:
            issues.extend(exc.issues)
    for sid in local_sids:
        dev = sid.interface or devices.get(sid.node)
        if dev is None:
            issues.append(Issue(f"local_sids.{sid.sid}.node", f"no device known on {sid.node!r}"))
            continue
        per_node.setdefault(sid.node, []).append(local_route(sid, dev))
    if issues:
        raise ValidationError(issues, source="dataplane render")
    out: dict[str, NodeState] = {}
    for node, routes in per_node.items():
        try:
            out[node] = NodeState.of(routes)
        except ValidationError as exc:
            raise ValidationError(exc.issues, source=f"dataplane render ({node})") from None
    for node in devices:
        out.setdefault(node, NodeState())
    return out
