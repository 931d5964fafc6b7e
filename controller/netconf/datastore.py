"""NETCONF datastores over the controller's state store (RFC 6241 §7, §8.3, §8.4).

Rules:
- ``running`` IS the controller state (the same store REST writes): one source of
  truth. ``candidate`` is a shared scratch copy of the configurable kinds,
  materialised on the first edit and dropped by commit or discard-changes.
- An edit is applied to a copy of the candidate; the copy replaces the candidate
  only if every entry validates (so a failing edit leaves the candidate unchanged).
- ``commit`` writes the candidate's difference from running in ONE store
  transaction, journaled as ``netconf:<user>``, after the same referential checks REST
  uses — running is never partially applied.
- A confirmed commit records the pre-commit state; if no confirming commit arrives
  within the timeout (or on ``cancel-commit``), running is restored to it.
- Locks: a session holding a lock on a datastore is the only one that may change it.
- Plugin kinds (``controller.netconf.extension``) are also checked against their
  plugin's rules (SR policy intents, slices and SD-WAN policies: ``srv6.rules``, which
  REST uses too): at edit time for the entries the edit touches (so a bad one never
  enters the candidate) and again on the whole candidate at validate / commit (the
  topology may have changed since).
- A configuration container that is not a list (``ConfigContainer``, e.g.
  ``/cpn/scheduler``) is one stored object; with none stored, its ``default(cfg)`` (the
  config file's section) is its value. Commit stores it only while it differs from that.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic

from controller import integrity
from controller.errors import issues_from_pydantic
from controller.logs import key_event
from controller.models import ComputeNode, ComputeResource, Entity, Link, User
from controller.netconf import extension, xmlmap
from controller.netconf.extension import ConfigContainer, ContainerEditError, ListMap
from controller.netconf.xmlmap import XmlDataError

log = logging.getLogger("cpn.netconf")

Snapshot = dict[str, dict[str, Entity]]


@dataclass
class RpcError(Exception):
    """An rpc-error (RFC 6241 §4.3)."""

    tag: str
    message: str
    type: str = "application"
    path: str | None = None
    info: dict[str, str] = field(default_factory=dict)
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.tag}: {self.message}" + (f" at {self.path}" if self.path else "")


def snapshot(store: Any, cfg: Any = None) -> Snapshot:
    """Running: every configurable kind from the store; a container none is stored for
    holds its default (``cfg``: the loaded ``NetworkConfig``, or None)."""
    snap: Snapshot = {m.cls.KIND: {o.key: o for o in store.list(m.cls)}
                      for m in xmlmap.lists()}
    for c in extension.containers():
        stored = store.get(c.cls, c.key)
        snap[c.cls.KIND] = {c.key: stored if stored is not None else c.default(cfg)}
    return snap


def _merge(base: dict[str, Any], patch: dict[str, Any],
           nested: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in patch.items():
        cur = out.get(k)
        if isinstance(v, dict) and isinstance(cur, dict):
            out[k] = _merge(cur, v, nested)
        elif isinstance(v, list) and isinstance(cur, list):
            keys = nested.get(k)
            if keys and all(isinstance(x, dict) for x in v + cur):
                merged = {tuple(str(x.get(f)) for f in keys): x for x in cur}
                for x in v:
                    ident = tuple(str(x.get(f)) for f in keys)
                    merged[ident] = _merge(merged.get(ident, {}), x, nested)
                out[k] = list(merged.values())
            else:
                out[k] = cur + [x for x in v if x not in cur]
        else:
            out[k] = v
    return out


class Datastores:
    """running (the store) + candidate + locks + confirmed-commit state."""

    def __init__(self, store: Any, on_commit: Callable[[str, int], None] | None = None,
                 cfg: Any = None) -> None:
        self.store = store
        self.cfg = cfg  # the loaded NetworkConfig: containers' defaults come from it
        self.candidate: Snapshot | None = None
        self.locks: dict[str, int | None] = {"running": None, "candidate": None}
        self._confirm_timer: asyncio.TimerHandle | None = None
        self._rollback_point: Snapshot | None = None
        self._confirm_session: int | None = None
        self.on_commit = on_commit

    # -- views ---------------------------------------------------------------------
    def view(self, source: str) -> Snapshot:
        if source == "candidate" and self.candidate is not None:
            return self.candidate
        if source not in ("running", "candidate"):
            raise RpcError("invalid-value", f"unknown datastore {source!r}", "protocol")
        return snapshot(self.store, self.cfg)

    def _check_lock(self, target: str, session: int) -> None:
        holder = self.locks.get(target)
        if holder is not None and holder != session:
            raise RpcError("in-use", f"the {target} datastore is locked by session {holder}",
                           "protocol", info={"session-id": str(holder)})

    # -- locks -----------------------------------------------------------------------
    def lock(self, target: str, session: int) -> None:
        if target not in self.locks:
            raise RpcError("invalid-value", f"cannot lock {target!r}", "protocol")
        holder = self.locks[target]
        if holder is not None:
            raise RpcError("lock-denied", f"{target} is already locked by session {holder}",
                           "protocol", info={"session-id": str(holder)})
        if target == "candidate" and self.candidate is not None:
            # RFC 6241 §8.3.5.1: refuse if the candidate has uncommitted changes
            raise RpcError("lock-denied", "the candidate has uncommitted changes; "
                           "discard-changes first", "protocol", info={"session-id": "0"})
        self.locks[target] = session

    def unlock(self, target: str, session: int) -> None:
        if self.locks.get(target) != session:
            raise RpcError("operation-failed", f"{target} is not locked by this session",
                           "protocol")
        self.locks[target] = None

    def release_session(self, session: int) -> None:
        for target, holder in self.locks.items():
            if holder == session:
                self.locks[target] = None
                if target == "candidate":
                    self.candidate = None  # RFC 6241 §8.3.5.2: discard on session end

    # -- edit-config -----------------------------------------------------------------
    def edit(self, target: str, config: Any, session: int, default_operation: str = "merge"
             ) -> None:
        if target != "candidate":
            raise RpcError("operation-not-supported", "edit-config is supported on the "
                           "candidate datastore; commit to apply to running", "protocol")
        self._check_lock("candidate", session)
        self._check_lock("running", session)
        work = copy.copy(self.view("candidate"))
        work = {k: dict(v) for k, v in work.items()}
        root = config.find(xmlmap.Q + "cpn")
        if root is None:
            if len(config):
                raise RpcError("unknown-element", "config must contain the cpn:cpn "
                               f"container in namespace {xmlmap.NS}", "application",
                               path="/", info={"bad-element": str(config[0].tag)})
            return
        touched: list[tuple[str, str]] = []
        singles = {xmlmap.Q + c.element: c for c in extension.containers()}
        lists = xmlmap.by_container()
        for cont in root:
            single = singles.get(cont.tag) if isinstance(cont.tag, str) else None
            if single is not None:
                self._edit_container(work, single, cont, default_operation)
                continue
            m = lists.get(xmlmap.fname(cont.tag).replace("_", "-"))
            if m is None or not str(cont.tag).startswith(xmlmap.Q):
                raise RpcError("unknown-element", f"unknown container {cont.tag!r}",
                               path="/cpn:cpn", info={"bad-element": str(cont.tag)})
            if cont.get(f"{{{xmlmap.BASE_NS}}}operation") == "replace" or \
                    default_operation == "replace":
                work[m.cls.KIND] = {}
            for entry in cont:
                touched.append(self._edit_entry(work, m, entry, default_operation))
        if touched:
            self._rules(work, touched)
        self.candidate = work

    def _rules(self, snap: Snapshot, touched: list[tuple[str, str]] | None) -> None:
        for check in extension.rules():
            found = check(snap, self.store, touched)
            if found is not None:
                m = xmlmap.by_kind()[found.kind]
                raise RpcError(found.tag, found.message,
                               path=xmlmap.entry_path(m, found.key, found.field))

    def _edit_container(self, work: Snapshot, c: ConfigContainer, el: Any, default_op: str
                        ) -> None:
        op = el.get(f"{{{xmlmap.BASE_NS}}}operation") or default_op
        if op in ("delete", "remove"):  # back to the default (the config file's section)
            work[c.cls.KIND] = {c.key: c.default(self.cfg)}
            return
        cur = work.get(c.cls.KIND, {}).get(c.key)
        assert cur is not None
        try:
            new = c.apply_edit(cur, el, default_op)
        except ContainerEditError as exc:
            last = exc.xpath.rsplit("/", 1)[-1].removeprefix("cpn:")
            info = {"bad-element": last} if exc.tag == "unknown-element" else {}
            raise RpcError(exc.tag, str(exc), path=exc.xpath, info=info) from exc
        work[c.cls.KIND] = {c.key: new}

    def _edit_entry(self, work: Snapshot, m: ListMap, entry: Any, default_op: str
                    ) -> tuple[str, str]:
        try:
            data, op = xmlmap.entry_from_xml(entry, m)
        except XmlDataError as exc:
            raise RpcError("unknown-element", str(exc),
                           path=f"/cpn:cpn/cpn:{m.container}/cpn:{m.element}/"
                           + "/".join(f"cpn:{p}" for p in exc.path),
                           info={"bad-element": exc.path[-1]}) from exc
        op = op or (default_op if default_op != "none" else "merge")
        key = xmlmap.key_of(data, m)
        if key is None:
            raise RpcError("missing-element", f"a {m.element} entry needs its key "
                           f"{', '.join(m.keys)}",
                           path=f"/cpn:cpn/cpn:{m.container}/cpn:{m.element}",
                           info={"bad-element": m.keys[0]})
        table = work.setdefault(m.cls.KIND, {})
        existing = table.get(key)
        if op in ("delete", "remove"):
            if existing is None and op == "delete":
                raise RpcError("data-missing", f"{m.element} {key!r} does not exist",
                               path=xmlmap.entry_path(m, key))
            table.pop(key, None)
            return (m.cls.KIND, key)
        if op == "create" and existing is not None:
            raise RpcError("data-exists", f"{m.element} {key!r} already exists",
                           path=xmlmap.entry_path(m, key))
        if op not in ("merge", "replace", "create"):
            raise RpcError("bad-attribute", f"unknown operation {op!r}", "rpc",
                           info={"bad-attribute": "operation"})
        if m.cls is Link:
            data = xmlmap.finish_link(data)
        if op == "merge" and existing is not None:
            base = existing.model_dump(mode="json")
            for h in m.hidden:
                data.pop(h, None)
            data = _merge(base, data, dict(m.nested_keys))
        try:
            obj = m.cls.model_validate(data)
        except pydantic.ValidationError as exc:
            issue = issues_from_pydantic(exc)[0]
            loc = tuple(p for p in exc.errors()[0]["loc"])
            raise RpcError("invalid-value", issue.message,
                           path=xmlmap.entry_path(m, key, loc)) from exc
        if obj.key != key:
            raise RpcError("invalid-value", f"entry key {key!r} does not match its content "
                           f"({obj.key!r})", path=xmlmap.entry_path(m, key))
        table[key] = obj
        return (m.cls.KIND, key)

    # -- validate / commit -----------------------------------------------------------
    def validate(self, source: str = "candidate") -> None:
        snap = self.view(source)
        view = integrity.View(
            sites=snap.get("site", {}), routers=snap.get("router", {}),
            nodes=(n.key for n in self.store.list(ComputeNode)),
            tenants={t.key: t.parent for t in snap.get("tenant", {}).values()},  # type: ignore[attr-defined]
        )
        for m in xmlmap.lists():
            for key, obj in snap.get(m.cls.KIND, {}).items():
                for issue in integrity.check(obj, view):
                    raise RpcError("invalid-value", issue.message + (
                        f" (fix: {issue.fix})" if issue.fix else ""),
                        path=xmlmap.entry_path(m, key, tuple(issue.path.split("."))))
        # deletions must not leave references behind (nodes, resources, users in the store)
        others: list[Entity] = [*self.store.list(ComputeNode), *self.store.list(ComputeResource),
                                *self.store.list(User)]
        for m in xmlmap.lists():
            alive = snap.get(m.cls.KIND, {})
            for obj in self.store.list(m.cls):
                if obj.key in alive:
                    continue
                everything = others + [o for t in snap.values() for o in t.values()]
                refs = integrity.referrers(m.cls.KIND, obj.key, everything)
                if refs:
                    raise RpcError("operation-failed",
                                   f"{m.element} {obj.key!r} is still referred to by "
                                   f"{', '.join(refs[:5])}", path=xmlmap.entry_path(m, obj.key))
        self._rules(snap, None)

    def commit(self, session: int, user: str, *, confirmed: bool = False,
               timeout_s: float = 600.0) -> int:
        """Apply the candidate to running; returns the number of changed objects."""
        self._check_lock("running", session)
        confirming = self._confirm_timer is not None
        if self.candidate is None:
            changed = 0
        else:
            self.validate("candidate")
            before = snapshot(self.store, self.cfg)
            changed = self._apply(self.candidate, f"netconf:{user}",
                                  "confirmed-commit" if confirmed else "commit")
            if confirmed and not confirming:
                self._rollback_point = before
            self.candidate = None
        if confirming:
            self._confirm_timer.cancel()  # type: ignore[union-attr]
            self._confirm_timer = None
            if not confirmed:
                key_event(log, "confirmed commit confirmed", user=user)
                self._rollback_point = None
        if confirmed:
            loop = asyncio.get_running_loop()
            self._confirm_session = session
            self._confirm_timer = loop.call_later(timeout_s, self._timeout_rollback)
        if self.on_commit is not None:
            self.on_commit(user, changed)
        return changed

    def cancel_commit(self, user: str) -> None:
        if self._confirm_timer is None:
            raise RpcError("operation-failed", "no confirmed commit is pending", "protocol")
        self._confirm_timer.cancel()
        self._rollback(f"netconf:{user}", "cancel-commit")

    def _timeout_rollback(self) -> None:
        self._rollback("netconf:confirm-timeout", "confirmed commit not confirmed in time")

    def _rollback(self, actor: str, reason: str) -> None:
        self._confirm_timer = None
        point, self._rollback_point = self._rollback_point, None
        if point is not None:
            n = self._apply(point, actor, f"rollback: {reason}")
            key_event(log, "confirmed commit rolled back", reason=reason, objects=n)

    def _apply(self, desired: Snapshot, actor: str, reason: str) -> int:
        changed = 0
        with self.store.transaction(actor, reason) as txn:
            for m in xmlmap.lists():
                want = desired.get(m.cls.KIND, {})
                for obj in self.store.list(m.cls):
                    if obj.key not in want:
                        txn.delete(m.cls, obj.key)
                for obj in want.values():
                    if self.store.get(m.cls, obj.key) != obj:
                        txn.put(obj)
            for c in extension.containers():
                value = desired.get(c.cls.KIND, {}).get(c.key)
                stored = self.store.get(c.cls, c.key)
                if value is None or value == c.default(self.cfg):
                    if stored is not None:
                        txn.delete(c.cls, c.key)
                elif value != stored:
                    txn.put(value)
            changed = len(txn.changes())
        return changed

    @property
    def confirm_pending(self) -> bool:
        return self._confirm_timer is not None
