"""Controller rules for SR policy intents, slices and SD-WAN policies (pure).

These are the cross-object checks the SRv6 package defines (``srv6.models``,
``srv6.slices``), run on a whole candidate datastore (NETCONF) or on the store with one
change applied (REST, ``rest_check``). ``check`` returns the first problem found as a
``RuleIssue``, naming the entry and the field.

Rules:
- An intent's ``headend`` and ``endpoint`` are topology nodes (routers or sites,
  ``srv6.models.check_policy_nodes``); its ``constraints/exclude-nodes`` are nodes and
  ``constraints/exclude-links`` are links; ``constraints/disjoint-from`` names another
  intent or a stored SR policy; an intent for a ``slice`` needs that slice to exist and
  to have the intent's colour (a slice's policies carry the slice's colour).
- A slice's flows start and end on topology nodes, its colour is no other slice's, and
  the candidate's slices are admitted by ``srv6.slices.plan_slices`` on the candidate
  topology (slices already in running first, so a new slice never displaces a running
  one's guarantee). A refused slice is an error naming the failed constraint and the
  links that lack room (``operation-failed``: the request is well-formed, the network
  cannot carry it).
- An SD-WAN policy's headends and endpoint are topology nodes; its colour is not a
  slice's colour (slice colours are HTB class ids).
- ``touched`` limits the report to entries an edit just changed (edit-time check);
  ``None`` checks everything (validate / commit).
- REST: a PUT/POST is checked for the object it writes; a DELETE is refused when it
  would break an intent that was fine before (its slice or disjoint-from target gone).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controller.errors import CpnError
from controller.integrity import RuleIssue
from controller.models import Entity, Link, Router, Site
from srv6.models import LinkAffinity, LocalSid, Locator, Slice, SrPolicy, SrPolicyIntent
from srv6.sdwan import SdwanPolicy

Snapshot = dict[str, dict[str, Entity]]


def _nodes(snap: Snapshot) -> set[str]:
    return set(snap.get(Router.KIND, {})) | set(snap.get(Site.KIND, {}))


def _unknown(nodes: set[str], name: str) -> str:
    hint = ", ".join(sorted(nodes)[:8]) or "none defined"
    return f"unknown node {name!r} (not a router or site; use one of: {hint})"


def _intent(i: SrPolicyIntent, snap: Snapshot, nodes: set[str], policies: set[str]
            ) -> RuleIssue | None:
    def issue(field: tuple[str | int, ...], msg: str) -> RuleIssue:
        return RuleIssue(i.KIND, i.key, field, msg)

    def missing(field: tuple[str | int, ...], msg: str) -> RuleIssue:
        return RuleIssue.missing(i.KIND, i.key, field, msg)

    for field in ("headend", "endpoint"):
        if getattr(i, field) not in nodes:
            return missing((field,), f"{field}: {_unknown(nodes, getattr(i, field))}")
    c = i.constraints
    for n_at, n in enumerate(c.exclude_nodes):
        if n not in nodes:
            return missing(("constraints", "exclude_nodes", n_at), _unknown(nodes, n))
    links = set(snap.get(Link.KIND, {}))
    for l_at, lk in enumerate(c.exclude_links):
        if lk not in links:
            return missing(("constraints", "exclude_links", l_at), f"unknown link {lk!r}")
    if c.disjoint_from is not None and c.disjoint_from not in policies:
        return missing(("constraints", "disjoint_from"),
                       f"no SR policy or intent {c.disjoint_from!r} to be disjoint from")
    if i.slice is not None:
        sl = snap.get(Slice.KIND, {}).get(i.slice)
        if sl is None:
            return missing(("slice",), f"unknown slice {i.slice!r}")
        assert isinstance(sl, Slice)
        if sl.color != i.color:
            return issue(("color",), f"colour {i.color} is not slice {i.slice!r}'s colour "
                         f"{sl.color}")
    return None


def _slice_ends(s: Slice, nodes: set[str]) -> RuleIssue | None:
    for at, f in enumerate(s.flows):
        for leaf, end in (("headend", f.headend), ("endpoint", f.endpoint)):
            if end not in nodes:
                return RuleIssue.missing(s.KIND, s.key, ("flows", at, leaf),
                                         _unknown(nodes, end))
    return None


#: path-computation constraint -> the slice leaf it comes from
_SLICE_FIELD = {"min_bandwidth_mbps": "guaranteed_mbps", "max_delay_ms": "max_delay_ms",
                "color": "color", "flows": "flows", "connectivity": "flows"}


def _admission(slices: list[Slice], snap: Snapshot, store: Any, running: set[str]
               ) -> RuleIssue | None:
    from srv6.paths import Topology
    from srv6.slices import plan_slices

    if not slices:
        return None
    ordered = sorted(slices, key=lambda s: (s.name not in running, s.name))
    colors: dict[int, str] = {}
    for s in ordered:
        if s.color in colors:
            return RuleIssue(s.KIND, s.key, ("color",), f"colour {s.color} is already "
                             f"slice {colors[s.color]!r}'s; give every slice its own colour")
        colors[s.color] = s.name
    try:
        topo = Topology.build(
            snap.get(Link.KIND, {}).values(),  # type: ignore[arg-type]
            snap.get(Router.KIND, {}).values(),  # type: ignore[arg-type]
            snap.get(Site.KIND, {}).values(),  # type: ignore[arg-type]
            affinities=store.list(LinkAffinity), locators=store.list(Locator),
            local_sids=store.list(LocalSid))
        plan = plan_slices(topo, ordered)
    except CpnError as exc:
        return RuleIssue(Slice.KIND, ordered[0].key, (), str(exc))
    for adm in plan.admissions:
        if not adm.admitted:
            where = f" (links lacking room: {', '.join(adm.links)})" if adm.links else ""
            field = _SLICE_FIELD.get(adm.failed_constraint or "")
            return RuleIssue(Slice.KIND, adm.slice, (field,) if field else (),
                             f"slice {adm.slice} refused: {adm.failed_constraint}: "
                             f"{adm.reason}{where}", "operation-failed")
    return None


def check(snap: Snapshot, store: Any, touched: Iterable[tuple[str, str]] | None = None
          ) -> RuleIssue | None:
    """The first rule broken by the srv6 entries of ``snap`` (``touched`` only, if given)."""
    want = None if touched is None else set(touched)

    def wanted(obj: Entity) -> bool:
        return want is None or (obj.KIND, obj.key) in want

    nodes = _nodes(snap)
    intents = snap.get(SrPolicyIntent.KIND, {})
    policies = set(intents) | {p.key for p in store.list(SrPolicy)}
    for obj in intents.values():
        if wanted(obj):
            assert isinstance(obj, SrPolicyIntent)
            found = _intent(obj, snap, nodes, policies - {obj.key})
            if found:
                return found
    slices = [s for s in snap.get(Slice.KIND, {}).values() if isinstance(s, Slice)]
    for s in slices:
        if wanted(s):
            found = _slice_ends(s, nodes)
            if found:
                return found
    if any(wanted(s) for s in slices):
        running = {s.key for s in store.list(Slice)}
        found = _admission(slices, snap, store, running)
        if found and (want is None or (Slice.KIND, found.key) in want):
            return found
    slice_colors = {s.color: s.name for s in slices}
    for obj in snap.get(SdwanPolicy.KIND, {}).values():
        if not wanted(obj):
            continue
        assert isinstance(obj, SdwanPolicy)
        for i, h in enumerate(obj.headends):
            if h not in nodes:
                return RuleIssue.missing(obj.KIND, obj.key, ("headends", i),
                                         f"headends[{i}]: {_unknown(nodes, h)}")
        if obj.endpoint not in nodes:
            return RuleIssue.missing(obj.KIND, obj.key, ("endpoint",),
                                     _unknown(nodes, obj.endpoint))
        if obj.color in slice_colors:
            return RuleIssue(obj.KIND, obj.key, ("color",), f"colour {obj.color} is slice "
                             f"{slice_colors[obj.color]!r}'s colour")
    return None


#: kinds the rules read; the REST check snapshots these from the store
RULE_KINDS: tuple[type[Entity], ...] = (Router, Site, Link, SrPolicyIntent, Slice, SdwanPolicy)


def store_snapshot(store: Any) -> Snapshot:
    return {cls.KIND: {o.key: o for o in store.list(cls)} for cls in RULE_KINDS}


def rest_check(store: Any, kind: type[Entity], key: str, obj: Entity | None) -> None:
    """Check a REST write (``obj``) or delete (``obj`` None) of an SRv6 config object
    against the rules; raise ``ValidationError``/``ConflictError`` naming the problem."""
    from controller.errors import ConflictError, ValidationError, join_path

    snap = store_snapshot(store)
    if obj is not None:
        snap[kind.KIND][key] = obj
        found = check(snap, store, [(kind.KIND, key)])
        if found is not None:
            path = join_path(("body", *found.field))
            if found.tag == "operation-failed":
                raise ConflictError(f"{found.message} (at {path})")
            raise ValidationError.single(path, found.message)
        return
    intents = [(SrPolicyIntent.KIND, k) for k in snap[SrPolicyIntent.KIND]]
    before = check(snap, store, intents)
    snap[kind.KIND].pop(key, None)
    after = check(snap, store, [t for t in intents if t != (kind.KIND, key)])
    if after is not None and after != before:
        raise ConflictError(f"deleting {kind.KIND} {key!r} would break "
                            f"{after.kind} {after.key!r}: {after.message}; change or "
                            "delete it first")
