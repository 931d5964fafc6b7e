"""Referential rules across objects, shared by config loading and the REST API.

Rules checked (each returns ``Issue``s with a path relative to the object):
- a node's and a resource's site exists; an exclusive resource's scope names
  nodes of its site; a shared resource's scope is ``*`` or nodes of its site;
- a link's endpoints are known sites or routers;
- a router's site (if any) exists;
- a service instance's site exists;
- a tenant's parent exists and the tenant tree has no cycle;
- a user's tenant exists.

Plugin packages add cross-object rules of their own as ``RuleCheck`` functions (a
whole snapshot in, the first ``RuleIssue`` out); NETCONF runs them on a candidate
(``controller.netconf.extension``), REST on the store with one change applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from controller.errors import Issue
from controller.models import (
    ComputeNode,
    ComputeResource,
    Entity,
    Link,
    Router,
    Service,
    Tenant,
    User,
)


@dataclass(frozen=True)
class RuleIssue:
    """A broken cross-object rule: the entry (``kind``, ``key``), the ``field`` path inside
    it (field names, and list positions as ints: NETCONF turns them into key
    predicates), a ``message`` for a person and the NETCONF rpc-error ``tag``
    (``invalid-value``; ``operation-failed`` when the request is well-formed but cannot
    be carried out; ``data-missing`` with ``app_tag`` ``instance-required`` for a
    reference to something that does not exist, RFC 7950 §15.5)."""

    kind: str
    key: str
    field: tuple[str | int, ...]
    message: str
    tag: str = "invalid-value"
    app_tag: str | None = None

    @classmethod
    def missing(cls, kind: str, key: str, field: tuple[str | int, ...], message: str
                ) -> RuleIssue:
        """A reference to something that does not exist."""
        return cls(kind, key, field, message, "data-missing", "instance-required")


@dataclass(frozen=True, slots=True)
class MissingReference(Issue):
    """An ``Issue`` that is a reference to something that does not exist (NETCONF:
    ``data-missing`` / ``instance-required``)."""


def parse_path(path: str) -> tuple[str | int, ...]:
    """``instances[0].site`` → ``('instances', 0, 'site')`` (an Issue path as parts)."""
    parts: list[str | int] = []
    for dotted in path.split(".") if path else []:
        name, *idx = dotted.replace("]", "").split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in idx if i.isdigit())
    return tuple(parts)


#: ``check(snapshot, store, touched)``: ``snapshot`` maps kind -> key -> entity (the
#: candidate); ``touched`` limits the report to the (kind, key) entries an edit changed,
#: None checks everything. Returns the first problem found, or None.
RuleCheck = Callable[[dict[str, dict[str, Entity]], Any, "Iterable[tuple[str, str]] | None"],
                     "RuleIssue | None"]


class View:
    """What the rules may look up: names of existing things."""

    def __init__(
        self,
        sites: Iterable[str],
        routers: Iterable[str],
        nodes: Iterable[str],
        tenants: dict[str, str | None],
    ) -> None:
        self.sites = set(sites)
        self.routers = set(routers)
        self.nodes = set(nodes)  # "site/node"
        self.tenants = dict(tenants)  # name -> parent


def _known(name: str, pool: set[str], what: str, path: str) -> list[Issue]:
    if name in pool:
        return []
    hint = ", ".join(sorted(pool)[:8]) or "none defined"
    return [MissingReference(path, f"unknown {what} {name!r}", f"use one of: {hint}")]


def check(obj: Entity, view: View) -> list[Issue]:
    """Issues for ``obj`` given what exists; paths are relative to ``obj``."""
    rule = _RULES.get(type(obj))
    return rule(obj, view) if rule else []


def _node(obj: ComputeNode, v: View) -> list[Issue]:
    return _known(obj.site, v.sites, "site", "site")


def _resource(obj: ComputeResource, v: View) -> list[Issue]:
    issues = _known(obj.site, v.sites, "site", "site")
    if issues:
        return issues
    site_nodes = {n.split("/", 1)[1] for n in v.nodes if n.startswith(obj.site + "/")}
    for i, owner in enumerate(obj.scope):
        if owner == "*":
            continue
        if owner not in site_nodes:
            what = "owner node" if not obj.shareable else "node in sharing range"
            issues.append(MissingReference(
                f"scope[{i}]", f"unknown {what} {owner!r} in site {obj.site!r}",
                f"use one of: {', '.join(sorted(site_nodes)) or 'no nodes defined'}"
                + ("" if not obj.shareable else " or '*'"),
            ))
    return issues


def _link(obj: Link, v: View) -> list[Issue]:
    pool = v.sites | v.routers
    return _known(obj.a, pool, "site or router", "a") + _known(
        obj.b, pool, "site or router", "b")


def _router(obj: Router, v: View) -> list[Issue]:
    return _known(obj.site, v.sites, "site", "site") if obj.site else []


def _service(obj: Service, v: View) -> list[Issue]:
    out: list[Issue] = []
    for i, inst in enumerate(obj.instances):
        out += _known(inst.site, v.sites, "site", f"instances[{i}].site")
    return out


def _tenant(obj: Tenant, v: View) -> list[Issue]:
    if obj.parent is None:
        return []
    issues = _known(obj.parent, set(v.tenants) - {obj.name}, "parent tenant", "parent")
    if issues:
        return issues
    seen = {obj.name}
    cur: str | None = obj.parent
    while cur is not None:
        if cur in seen:
            return [Issue("parent", f"tenant tree has a cycle through {cur!r}",
                          "make the tenant tree a tree")]
        seen.add(cur)
        cur = v.tenants.get(cur)
    return []


def _user(obj: User, v: View) -> list[Issue]:
    return _known(obj.tenant, set(v.tenants), "tenant", "tenant") if obj.tenant else []


_RULES: dict[type[Entity], Callable[..., list[Issue]]] = {
    ComputeNode: _node,
    ComputeResource: _resource,
    Link: _link,
    Router: _router,
    Service: _service,
    Tenant: _tenant,
    User: _user,
}

#: Kinds that other objects refer to; deleting one that is referenced is refused.
def referrers(kind: str, key: str, objects: Iterable[Entity]) -> list[str]:
    """Keys of objects that refer to ``kind``/``key`` (to refuse dangling deletes)."""
    out: list[str] = []
    for o in objects:
        refs: set[str] = set()
        if kind == "site":
            if isinstance(o, ComputeNode | ComputeResource):
                refs.add(o.site)
            elif isinstance(o, Link):
                refs |= {o.a, o.b}
            elif isinstance(o, Router) and o.site:
                refs.add(o.site)
            elif isinstance(o, Service):
                refs |= {i.site for i in o.instances}
        elif kind == "router" and isinstance(o, Link):
            refs |= {o.a, o.b}
        elif kind == "node" and isinstance(o, ComputeResource):
            # a resource's scope names nodes of its site ("site/node" is the node's key)
            refs |= {f"{o.site}/{n}" for n in o.scope if n != "*"}
        elif kind == "tenant":
            if isinstance(o, User) and o.tenant:
                refs.add(o.tenant)
            elif isinstance(o, Tenant) and o.parent:
                refs.add(o.parent)
        if key in refs:
            out.append(f"{o.KIND} {o.key}")
    return out
