"""The SR policy reconciler's planning core (pure): intents + topology + SIDs → plan.

Rules:
- ``plan_intents`` takes the ``Topology`` (node SIDs already allocated by ``srv6.sid``),
  the ``SrPolicyIntent``s and a ``Binding`` (who programs which node, interfaces per
  link, what each endpoint decapsulates to, allocated egress SIDs) and returns a
  ``Plan``: the complete desired ``NodeState`` of every programmable node and one
  ``IntentPlan`` per intent. No I/O; the same input gives the same plan.
- Every intent is planned whole or not at all: a failed intent contributes no route
  (never half-programmed) and names the failed constraint, the reason and the fix.
- Paths come from the one CSPF (``srv6.paths.compute_path``) with the intent's
  constraints; ``disjoint_from`` sees the paths of intents planned before it (intents
  without ``disjoint_from`` first, then by key).
- Segment lists: ``strict`` = the node SID of every transit hop, then the endpoint's
  egress SID (End.DX4 / End.DX6): forwarding needs only neighbour reachability;
  ``minimal`` = the CSPF's compressed list over the IGP (``segments.minimal_segments``).
- Routes rendered per intent: at the headend one ``Seg6Route`` per steered prefix (every
  prefix of the endpoint whose colour is the intent's, RFC 9256 §8.4); an ``End``
  ``Seg6LocalRoute`` for each node SID the list crosses; the endpoint's End.DX4/DX6.
  With ``protect``, a link-disjoint backup path is rendered as a second route for the
  same prefix one metric higher (``Seg6Route.backup``), which the kernel uses at the
  next packet when the primary's first link is down (``ignore_routes_with_linkdown``).
- A headend bound to ``bgp-sr-policy`` (``Binding.routers``) gets an ``SrPolicyRoute``
  instead: colour and endpoint (its loopback) of the intent, the segment list with each
  SID's behaviour, preference; the backup is a second candidate path (distinguisher 1,
  preference one lower). Such a router steers by colour and allocates its own SIDs, so
  a path that crosses or ends at one is refused (``device``), and one policy carries one
  address family (``prefixes``).
- Two intents steering the same prefix at the same headend: the higher ``preference``
  wins (ties: the lower key); the other fails naming ``prefixes``.
- ``reconcile(desired, actual)`` → per-node ``RouteOp``s (``srv6.dataplane.state.plan``):
  empty when the network already matches, so re-applying changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

from controller.errors import ValidationError
from srv6.dataplane.state import (
    NodeState,
    Route,
    RouteOp,
    Seg6LocalRoute,
    Seg6Route,
    SrPolicyRoute,
    SrSegment,
    SrSegmentList,
)
from srv6.dataplane.state import plan as plan_node
from srv6.intents.models import PathView
from srv6.models import Constraints, PathResult, SrPolicyIntent
from srv6.paths import Topology, compute_path


@dataclass(frozen=True, slots=True)
class Egress:
    """An endpoint's decapsulation: ``dev``, ``nh4``/``nh6``, ``prefixes`` (prefix →
    colour), ``sid4``/``sid6`` (its End.DX4/End.DX6 SIDs, allocated)."""

    dev: str
    prefixes: Mapping[str, int]
    nh4: str | None = None
    nh6: str | None = None
    sid4: str | None = None
    sid6: str | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """Topology → devices: ``devs`` (node → link key → interface; the nodes here are the
    programmable ones), ``egress`` (endpoint → ``Egress``), ``sid_errors`` (node → why
    its SIDs could not be allocated, e.g. a collision), ``routers`` (nodes that take SR
    policies over BGP, not kernel routes), ``addresses`` (node → loopback, the endpoint
    of an SR policy sent to a router)."""

    devs: Mapping[str, Mapping[str, str]]
    egress: Mapping[str, Egress] = field(default_factory=dict)
    sid_errors: Mapping[str, str] = field(default_factory=dict)
    routers: tuple[str, ...] = ()
    addresses: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IntentPlan:
    """One intent's plan: ``ok`` or ``constraint``/``reason``/``fix``; ``active`` and
    ``backup`` paths; ``prefixes`` steered; ``routes`` (node → routes it needs)."""

    key: str
    ok: bool
    constraint: str | None = None
    reason: str = ""
    fix: str = ""
    device: str | None = None
    active: PathView | None = None
    backup: PathView | None = None
    prefixes: tuple[str, ...] = ()
    routes: Mapping[str, tuple[Route, ...]] = field(default_factory=dict)

    @property
    def headend(self) -> str:
        return self.key.split("~")[0]


@dataclass(frozen=True, slots=True)
class Plan:
    """``nodes``: desired state of every programmable node; ``intents`` by key."""

    nodes: Mapping[str, NodeState]
    intents: Mapping[str, IntentPlan]


#: device of End SIDs (no next hop; independent of any link's state)
END_DEV = "lo"


class _Refusal(Exception):
    def __init__(self, constraint: str, reason: str, fix: str, device: str | None = None
                 ) -> None:
        super().__init__(reason)
        self.constraint, self.reason, self.fix, self.device = constraint, reason, fix, device


def _fail(key: str, r: _Refusal) -> IntentPlan:
    return IntentPlan(key, False, r.constraint, r.reason, r.fix, r.device)


_FIXES = {
    "connectivity": "restore a link between the ends or pick another endpoint",
    "max_delay_ms": "relax max_delay_ms or add a faster link",
    "min_bandwidth_mbps": "lower min_bandwidth_mbps or add capacity",
    "exclude_nodes": "exclude fewer nodes",
    "exclude_links": "exclude fewer links",
    "exclude_srlgs": "exclude fewer SRLGs",
    "affinity": "relax include/exclude affinities or colour more links",
    "disjoint_from": "drop disjoint_from or add a disjoint route",
    "max_sid_depth": "raise max_sid_depth or use segments: minimal",
    "node_sid": "give the node an SRv6 locator",
    "adjacency_sid": "use segments: strict",
}


def _order(intents: Iterable[SrPolicyIntent]) -> list[SrPolicyIntent]:
    return sorted(intents, key=lambda i: (i.constraints.disjoint_from is not None, i.key))


def epoch(topo: Topology, binding: Binding, strict: bool, protect: bool) -> str:
    """A digest of everything but the intents a plan depends on (memo validity)."""
    edges = [(e.key, e.a, e.b, e.igp, e.delay_ms, e.available_mbps, sorted(e.srlgs),
              sorted(e.colors)) for e in topo.edges]
    sids = sorted((u, str(s)) for u, s in topo.node_sids.items())
    text = repr((topo.names, edges, sids, sorted(topo.down_links), binding, strict, protect))
    return hashlib.sha1(text.encode()).hexdigest()


def plan_intents(topo: Topology, intents: Iterable[SrPolicyIntent], binding: Binding, *,
                 strict: bool = True, protect: bool = True,
                 memo: dict[str, tuple[Any, IntentPlan]] | None = None) -> Plan:
    """The desired network for ``intents`` (see the module rules). ``memo`` (owned by
    the caller, kept between calls) reuses an intent's plan when nothing it depends on
    changed (topology, binding, options, its spec, its ``disjoint_from`` path): same
    result, less work."""
    ordered = _order(intents)
    sid_node = {str(sid): topo.names[u] for u, sid in topo.node_sids.items()}
    paths: dict[str, list[str]] = {}
    plans: dict[str, IntentPlan] = {}
    ep = epoch(topo, binding, strict, protect) if memo is not None else ""
    for it in ordered:
        dj = it.constraints.disjoint_from
        fp = (ep, it.model_dump_json(), tuple(paths.get(dj, ())) if dj else None)
        hit = memo.get(it.key) if memo is not None else None
        if hit is not None and hit[0] == fp:
            ip = hit[1]
        else:
            try:
                ip = _plan_one(topo, it, binding, sid_node, paths, strict, protect)
            except _Refusal as r:
                ip = _fail(it.key, r)
            except ValidationError as exc:  # malformed reference (unknown node/link/policy)
                issue = exc.issues[0]
                ip = IntentPlan(it.key, False, issue.path.split(".")[-1], issue.message,
                                issue.fix or "fix the intent")
            if memo is not None:
                memo[it.key] = (fp, ip)
        plans[it.key] = ip
        if ip.ok and ip.active is not None:
            paths[it.key] = ip.active.links
    if memo is not None:
        for gone in set(memo) - set(plans):
            del memo[gone]
    _resolve_prefix_conflicts(plans, {i.key: i for i in ordered})
    nodes: dict[str, list[Route]] = {n: [] for n in binding.devs}
    for ip in plans.values():
        if ip.ok:
            for node, rs in ip.routes.items():
                nodes.setdefault(node, []).extend(rs)
    out: dict[str, NodeState] = {}
    for node, routes in nodes.items():
        dedup: dict[tuple[str, int, str], Route] = {}
        for route in routes:
            dedup.setdefault(route.key, route)
        out[node] = NodeState(dedup)
    return Plan(out, plans)


def _resolve_prefix_conflicts(plans: dict[str, IntentPlan],
                              intents: Mapping[str, SrPolicyIntent]) -> None:
    owner: dict[tuple[str, str], str] = {}
    for key in sorted(plans, key=lambda k: (-intents[k].preference, k)):
        ip = plans[key]
        if not ip.ok:
            continue
        clash = next((owner[(ip.headend, p)] for p in ip.prefixes
                      if (ip.headend, p) in owner), None)
        if clash is not None:
            plans[key] = IntentPlan(
                key, False, "prefixes",
                f"{ip.headend} already steers these prefixes into intent {clash}, which "
                f"has the higher preference (or the lower key)",
                "give the endpoints different prefixes or colours, or raise this "
                "intent's preference")
            continue
        for p in ip.prefixes:
            owner[(ip.headend, p)] = key


def _plan_one(topo: Topology, it: SrPolicyIntent, b: Binding, sid_node: Mapping[str, str],
              paths: Mapping[str, list[str]], strict: bool, protect: bool) -> IntentPlan:
    for field_, node in (("headend", it.headend), ("endpoint", it.endpoint)):
        if node not in topo.index:
            raise _Refusal(field_, f"unknown {field_} {node!r} (not a router or site of the "
                           "topology)", "use a node from the topology")
    if it.headend not in b.devs:
        raise _Refusal("headend", f"no programmer owns headend {it.headend}",
                       f"add intents.nodes.{it.headend}", it.headend)
    eg = b.egress.get(it.endpoint)
    if eg is None:
        raise _Refusal("endpoint", f"endpoint {it.endpoint} has no egress binding (what "
                       "it decapsulates to)", f"add intents.endpoints.{it.endpoint}",
                       it.endpoint)
    prefixes = sorted(p for p, c in eg.prefixes.items() if c == it.color)
    if not prefixes:
        raise _Refusal("color", f"endpoint {it.endpoint} serves no prefix with colour "
                       f"{it.color}", f"colour a prefix {it.color} in intents.endpoints."
                       f"{it.endpoint}.prefixes")
    for node in (it.headend, it.endpoint):
        if node in b.sid_errors:
            raise _Refusal("sid", b.sid_errors[node], "free the SID or move the locator",
                           node)
    res = compute_path(topo, it.headend, it.endpoint, it.constraints, existing=paths,
                       with_segments=not strict)
    if not res.ok:
        c = res.failed_constraint or "connectivity"
        raise _Refusal(c, res.reason, _FIXES.get(c, "relax the constraint"))
    families: list[int] = sorted({int(ip_network(p).version) for p in prefixes})
    routes: dict[str, list[Route]] = {}
    active = _render(topo, it, b, eg, res, families, prefixes, sid_node, strict, routes,
                     backup=False)
    backup = None
    if protect:
        c2 = it.constraints.model_copy(update={
            "exclude_links": sorted({*it.constraints.exclude_links, *res.links})})
        alt = compute_path(topo, it.headend, it.endpoint, c2, existing=paths,
                           with_segments=not strict)
        if alt.ok:
            try:
                backup = _render(topo, it, b, eg, alt, families, prefixes, sid_node, strict,
                                 routes, backup=True)
            except _Refusal:
                backup = None  # an unrenderable backup leaves the intent unprotected
    return IntentPlan(it.key, True, reason=res.reason, active=active, backup=backup,
                      prefixes=tuple(prefixes),
                      routes={n: tuple(rs) for n, rs in routes.items()})


def _segments(topo: Topology, it: SrPolicyIntent, res: PathResult, final: str,
              strict: bool, c: Constraints) -> list[str]:
    if strict:
        segs = [str(topo.node_sids[topo.index[h]]) for h in res.hops[1:-1]
                if topo.index[h] in topo.node_sids]
        missing = [h for h in res.hops[1:-1] if topo.index[h] not in topo.node_sids]
        if missing:
            raise _Refusal("node_sid", f"transit node {missing[0]} has no SRv6 locator",
                           _FIXES["node_sid"], missing[0])
        segs.append(final)
        if len(segs) > c.max_sid_depth:
            raise _Refusal("max_sid_depth", f"the path needs {len(segs)} SIDs > "
                           f"max_sid_depth {c.max_sid_depth}", _FIXES["max_sid_depth"])
        return segs
    from ipaddress import IPv6Address

    from srv6.paths.segments import SegmentError, minimal_segments
    from srv6.paths.spf import Path

    nodes = [topo.index[h] for h in res.hops]
    edges = [topo.edge_by_key[k] for k in res.links]
    path: Path = (nodes, edges)
    try:
        got = minimal_segments(topo, path[0], path[1], max_sid_depth=c.max_sid_depth,
                               final_sid=IPv6Address(final))
    except SegmentError as exc:
        raise _Refusal(exc.constraint, str(exc), _FIXES.get(exc.constraint, "")) from None
    if any(s.edge is not None for s in got):
        raise _Refusal("adjacency_sid", "the path needs an End.X SID, which this "
                       "reconciler does not program", _FIXES["adjacency_sid"])
    return [str(s.sid) for s in got]


def _render(topo: Topology, it: SrPolicyIntent, b: Binding, eg: Egress, res: PathResult,
            families: list[int], prefixes: list[str], sid_node: Mapping[str, str],
            strict: bool, into: dict[str, list[Route]], *, backup: bool) -> PathView:
    """Render one path's routes into ``into`` — all of them, or none on a refusal."""
    routes: dict[str, list[Route]] = {}
    first = res.links[0]
    router = it.headend in b.routers
    dev = b.devs[it.headend].get(first)
    if dev is None and not router:
        raise _Refusal("binding", f"no interface known for link {first} on {it.headend}",
                       f"add intents.nodes.{it.headend}.devs.{first}", it.headend)
    if router and len(families) > 1:
        raise _Refusal("prefixes", f"{it.headend} takes SR policies over BGP: one policy "
                       f"(colour {it.color}, endpoint {it.endpoint}) carries one address "
                       "family", "colour the endpoint's IPv4 and IPv6 prefixes differently",
                       it.headend)
    out: list[Route] = []
    shown: list[str] = []
    for fam in families:
        final = eg.sid4 if fam == 4 else eg.sid6
        if final is None:
            raise _Refusal("sid", f"endpoint {it.endpoint} has no End.DX{fam} SID "
                           "(no locator?)", _FIXES["node_sid"], it.endpoint)
        segs = _segments(topo, it, res, final, strict, it.constraints)
        shown = shown or segs
        if router:
            out.append(_router_policy(it, b, segs, fam, backup))
        for p in prefixes:
            if router or ip_network(p).version != fam:
                continue
            assert dev is not None
            metric = (0 if fam == 4 else 1024) + (1 if backup else 0)
            out.append(Seg6Route(dst=p, segments=tuple(segs), dev=dev, metric=metric,
                                 backup=backup))
        for sid in segs[:-1]:
            node = sid_node.get(sid)
            if node is None or node not in b.devs:
                raise _Refusal("device", f"no programmer owns {node or sid}, which the path "
                               "crosses", f"add intents.nodes.{node}", node)
            if node in b.routers:
                raise _Refusal("device", f"the path crosses {node}, a router programmed "
                               "over BGP SR Policy, whose local SIDs CPN does not program",
                               f"keep {node} off the path (exclude_nodes) or bind it to "
                               "netlink or agent", node)
            # End takes no next hop: bound to lo, so a link going down (the kernel
            # flushes routes of an admin-down device) never takes the SID with it
            routes.setdefault(node, []).append(Seg6LocalRoute(sid=sid, action="End",
                                                              dev=END_DEV))
        if it.endpoint not in b.devs:
            raise _Refusal("device", f"no programmer owns endpoint {it.endpoint}",
                           f"add intents.nodes.{it.endpoint}", it.endpoint)
        if it.endpoint in b.routers:
            raise _Refusal("device", f"endpoint {it.endpoint} is a router programmed over "
                           "BGP SR Policy, whose End.DX SIDs CPN does not program",
                           "end the intent at a node bound to netlink or agent", it.endpoint)
        routes.setdefault(it.endpoint, []).append(
            Seg6LocalRoute(sid=final, action="End.DX4", dev=eg.dev, nh4=eg.nh4) if fam == 4
            else Seg6LocalRoute(sid=final, action="End.DX6", dev=eg.dev, nh6=eg.nh6))
    routes.setdefault(it.headend, []).extend(out)
    for node, rs in routes.items():
        into.setdefault(node, []).extend(rs)
    return PathView(hops=res.hops, links=res.links, segments=shown,
                    delay_ms=round(res.delay_ms, 6))


def _router_policy(it: SrPolicyIntent, b: Binding, segs: list[str], fam: int,
                   backup: bool) -> SrPolicyRoute:
    """The candidate path a BGP SR Policy headend gets for one path of ``it``."""
    endpoint = b.addresses.get(it.endpoint)
    if endpoint is None:
        raise _Refusal("endpoint", f"endpoint {it.endpoint} has no loopback, the endpoint of "
                       f"the SR policy sent to {it.headend}",
                       f"give router {it.endpoint} a loopback", it.endpoint)
    behaviors = ["End"] * (len(segs) - 1) + [f"End.DX{fam}"]
    lst = SrSegmentList(tuple(SrSegment(s, beh) for s, beh in zip(segs, behaviors,
                                                                    strict=True)))
    return SrPolicyRoute(color=it.color, endpoint=endpoint, segment_lists=(lst,),
                         distinguisher=1 if backup else 0,
                         preference=max(it.preference - 1, 0) if backup else it.preference,
                         name=(it.name or it.key)[:255],
                         path_name="backup" if backup else "primary")


def reconcile(desired: Mapping[str, NodeState], actual: Mapping[str, NodeState]
              ) -> dict[str, list[RouteOp]]:
    """Per-node ops turning ``actual`` into ``desired`` (nodes with nothing to do left
    out): the diff the reconciler applies."""
    out: dict[str, list[RouteOp]] = {}
    for node in sorted(set(desired) | set(actual)):
        ops = plan_node(desired.get(node, NodeState()), actual.get(node, NodeState()))
        if ops:
            out[node] = ops
    return out


def apply_ops(actual: NodeState, ops: Iterable[RouteOp]) -> NodeState:
    """``actual`` after ``ops`` (a model of what a programmer's commit does)."""
    routes = dict(actual.routes)
    for op in ops:
        if op.kind == "delete":
            routes.pop(op.route.key, None)
        else:
            routes[op.route.key] = op.route
    return NodeState(routes)
