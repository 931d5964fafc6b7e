"""NETCONF datastores over the controller's state store (RFC 6241 §7, §8.3, §8.4).

Rules:
- ``running`` IS the controller state (the same store REST writes): one source of
  truth. ``candidate`` is shared by the sessions and held as its uncommitted changes
  (the entries edits made differ from running): the candidate datastore is running
  with those changes on top, so REST writes made meanwhile show through it, and a
  commit writes only the candidate's own changes — never reverting another writer's.
- An edit is applied to a copy of the candidate; the copy replaces the candidate
  only if every entry validates (so a failing edit leaves the candidate unchanged).
- ``commit`` validates running-plus-changes and writes the changes in ONE store
  transaction (checked inside it, so no other writer slips in between), journaled as
  ``netconf:<user>``, after the same referential checks REST uses — running is never
  partially applied.
- A confirmed commit remembers its own changes (``controller.netconf.confirm``); if no
  confirming commit arrives within the timeout, on ``cancel-commit``, or when the
  issuing session ends (without ``persist``), exactly those changes are reverted.
  Without ``persist`` only the issuing session may commit, confirm or cancel meanwhile;
  with it, any session giving the ``persist-id`` (RFC 6241 §8.4.5.1).
- Locks: a session holding a lock on a datastore is the only one that may change it;
  the candidate lock's holder unlocking (or ending) discards the candidate's
  uncommitted changes (§8.3.5.2).
- ``copy-config`` (§7.3) copies running or an inline ``<config>`` to the candidate
  (running is written only by commit: no :writable-running).
- error-path is an instance path (``xmlmap.instance_path``): list entries by key
  predicates, never positions; a reference to something that does not exist is
  ``data-missing`` with error-app-tag ``instance-required`` (RFC 7950 §15.5).
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
from datetime import UTC, datetime
from typing import Any

import pydantic

from controller import integrity
from controller.errors import issues_from_pydantic
from controller.logs import key_event
from controller.models import ComputeNode, ComputeResource, Entity, Link, User
from controller.netconf import extension, xmlmap
from controller.netconf.confirm import PendingCommit, Revert, plan_rollback
from controller.netconf.extension import ConfigContainer, ContainerEditError, ListMap
from controller.netconf.xmlmap import XmlDataError
from controller.store.base import Change
from controller.writer import referrers_after, view_of

log = logging.getLogger("cpn.netconf")

Snapshot = dict[str, dict[str, Entity]]
#: store metadata key holding the unconfirmed confirmed commit (``confirm.to_json``)
PENDING_META = "netconf.unconfirmed-commit"


@dataclass
class RpcError(Exception):
    """An rpc-error (RFC 6241 §4.3)."""

    tag: str
    message: str
    type: str = "application"
    path: str | None = None
    info: dict[str, str] = field(default_factory=dict)
    severity: str = "error"
    app_tag: str | None = None

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


Diff = dict[tuple[str, str], Entity | None]


class Datastores:
    """running (the store) + candidate (its uncommitted changes) + locks + the pending
    confirmed commit."""

    def __init__(self, store: Any, on_commit: Callable[[str, int], None] | None = None,
                 cfg: Any = None) -> None:
        self.store = store
        self.cfg = cfg  # the loaded NetworkConfig: containers' defaults come from it
        self._diff: Diff | None = None
        self.locks: dict[str, int | None] = {"running": None, "candidate": None}
        self.locked_at: dict[str, str] = {}  # datastore -> when locked (RFC 3339)
        self.pending: PendingCommit | None = None
        self.on_commit = on_commit
        #: what the last rollback kept and why ((kind, key) -> reason), for the operator
        self.last_rollback_kept: dict[tuple[str, str], str] = {}

    # -- views ---------------------------------------------------------------------
    @property
    def candidate(self) -> Snapshot | None:
        """The candidate when it differs from running, else None."""
        return None if self._diff is None else self.view("candidate")

    def discard(self) -> None:
        """discard-changes (RFC 6241 §8.3.4.2): the candidate becomes running again."""
        self._diff = None

    def view(self, source: str) -> Snapshot:
        if source not in ("running", "candidate"):
            raise RpcError("invalid-value", f"unknown datastore {source!r}", "protocol")
        snap = snapshot(self.store, self.cfg)
        if source == "candidate" and self._diff:
            _overlay(snap, self._diff)
        return snap

    def _changes_from(self, work: Snapshot) -> Diff | None:
        """What ``work`` changes relative to running (None: nothing)."""
        running = snapshot(self.store, self.cfg)
        diff: Diff = {}
        for kind in set(work) | set(running):
            mine, theirs = work.get(kind, {}), running.get(kind, {})
            for key in set(mine) | set(theirs):
                if mine.get(key) != theirs.get(key):
                    diff[(kind, key)] = mine.get(key)
        return diff or None

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
        if target == "candidate" and self._diff is not None:
            # RFC 6241 §8.3.5.1: refuse if the candidate has uncommitted changes
            raise RpcError("lock-denied", "the candidate has uncommitted changes; "
                           "discard-changes first", "protocol", info={"session-id": "0"})
        self.locks[target] = session
        self.locked_at[target] = datetime.now(UTC).isoformat(timespec="seconds").replace(
            "+00:00", "Z")

    def lock_state(self) -> dict[str, tuple[int, str] | None]:
        """datastore -> (holding session, since when) or None (``/netconf-state``)."""
        return {t: (h, self.locked_at.get(t, "")) if h is not None else None
                for t, h in self.locks.items()}

    def unlock(self, target: str, session: int) -> None:
        if target not in self.locks:
            raise RpcError("invalid-value", f"cannot unlock {target!r}", "protocol")
        if self.locks.get(target) != session:
            raise RpcError("operation-failed", f"{target} is not locked by this session",
                           "protocol")
        self.locks[target] = None
        if target == "candidate":
            self._diff = None  # RFC 6241 §8.3.5.2: the holder's uncommitted changes go

    def release_session(self, session: int) -> None:
        """The session ended: its locks go (a held candidate lock discards the candidate's
        changes, §8.3.5.2) and its unconfirmed, non-persistent confirmed commit is rolled
        back (§8.4.1)."""
        for target, holder in self.locks.items():
            if holder == session:
                self.locks[target] = None
                if target == "candidate":
                    self._diff = None
        p = self.pending
        if p is not None and p.persist is None and p.session == session:
            self._rollback("netconf:session-end", f"session {session} ended before "
                           "confirming its confirmed commit")

    # -- edit-config / copy-config ---------------------------------------------------
    def edit(self, target: str, config: Any, session: int, default_operation: str = "merge"
             ) -> None:
        if target != "candidate":
            raise RpcError("operation-not-supported", "edit-config is supported on the "
                           "candidate datastore; commit to apply to running", "protocol")
        self._check_lock("candidate", session)
        self._check_lock("running", session)
        work = {k: dict(v) for k, v in self.view("candidate").items()}
        self._edit_into(work, config, default_operation)
        self._diff = self._changes_from(work)

    def copy(self, target: str, source: str | None, config: Any, session: int) -> None:
        """copy-config (RFC 6241 §7.3) to the candidate: from running, the candidate, or
        an inline ``<config>`` (which replaces every configurable list and container)."""
        if target != "candidate":
            raise RpcError("operation-not-supported", f"copy-config to {target} is not "
                           "supported: copy to the candidate, then commit (running is "
                           "written only by commit; no :writable-running)", "protocol")
        self._check_lock("candidate", session)
        self._check_lock("running", session)
        if source == "running":
            self._diff = None
            return
        if source == "candidate":
            return
        if config is None:
            raise RpcError("invalid-value", f"copy-config cannot read from {source!r}; use "
                           "running, candidate or an inline <config>", "protocol")
        self._diff = self._changes_from(self._replaced_by(config))

    def _replaced_by(self, config: Any) -> Snapshot:
        """A whole datastore holding exactly ``config`` (copy-config, validate)."""
        work: Snapshot = {m.cls.KIND: {} for m in xmlmap.lists()}
        for c in extension.containers():
            work[c.cls.KIND] = {c.key: c.default(self.cfg)}
        self._edit_into(work, config, "replace")
        return work

    def validate_config(self, config: Any) -> None:
        """validate of an inline ``<config>`` (RFC 6241 §8.6.4.1): checked as a whole
        datastore holding exactly it; nothing is changed."""
        self._check(self._replaced_by(config))

    def _edit_into(self, work: Snapshot, config: Any, default_operation: str) -> None:
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

    def _rules(self, snap: Snapshot, touched: list[tuple[str, str]] | None) -> None:
        for check in extension.rules():
            found = check(snap, self.store, touched)
            if found is not None:
                m = xmlmap.by_kind()[found.kind]
                obj = snap.get(found.kind, {}).get(found.key)
                raise RpcError(found.tag, found.message, app_tag=found.app_tag,
                               path=xmlmap.instance_path(m, found.key, _dump(obj),
                                                         found.field))

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
            last = exc.xpath.rsplit("/", 1)[-1].removeprefix("cpn:").split("[", 1)[0]
            info = {"bad-element": last} if exc.tag == "unknown-element" else {}
            raise RpcError(exc.tag, str(exc), path=exc.xpath, info=info) from exc
        work[c.cls.KIND] = {c.key: new}

    def _edit_entry(self, work: Snapshot, m: ListMap, entry: Any, default_op: str
                    ) -> tuple[str, str]:
        try:
            data, op = xmlmap.entry_from_xml(entry, m)
        except XmlDataError as exc:
            raise RpcError("unknown-element", str(exc),
                           path=xmlmap.unknown_element_path(m, entry, exc.path),
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
                           path=xmlmap.instance_path(m, key, data, loc)) from exc
        if obj.key != key:
            raise RpcError("invalid-value", f"entry key {key!r} does not match its content "
                           f"({obj.key!r})", path=xmlmap.entry_path(m, key))
        table[key] = obj
        return (m.cls.KIND, key)

    # -- validate / commit -----------------------------------------------------------
    def validate(self, source: str = "candidate") -> None:
        self._check(self.view(source))

    def _check(self, snap: Snapshot) -> None:
        """The referential checks REST applies, on a whole datastore."""
        view = integrity.View(
            sites=snap.get("site", {}), routers=snap.get("router", {}),
            nodes=(n.key for n in self.store.list(ComputeNode)),
            tenants={t.key: t.parent for t in snap.get("tenant", {}).values()},  # type: ignore[attr-defined]
        )
        for m in xmlmap.lists():
            for key, obj in snap.get(m.cls.KIND, {}).items():
                for issue in integrity.check(obj, view):
                    missing = isinstance(issue, integrity.MissingReference)
                    raise RpcError(
                        "data-missing" if missing else "invalid-value",
                        issue.message + (f" (fix: {issue.fix})" if issue.fix else ""),
                        app_tag="instance-required" if missing else None,
                        path=xmlmap.instance_path(m, key, _dump(obj),
                                                  integrity.parse_path(issue.path)))
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
               timeout_s: float = 600.0, persist: str | None = None,
               persist_id: str | None = None) -> int:
        """Apply the candidate's changes to running; returns the number of changed
        objects. Confirms, extends or starts a confirmed commit (RFC 6241 §8.4)."""
        self._check_lock("running", session)
        p = self.pending
        if p is not None:
            refused = p.may_act(session, persist_id)
            if refused is not None:
                raise RpcError("in-use" if persist_id is None else "invalid-value", refused,
                               "protocol", info={"session-id": str(p.session)})
        elif persist_id is not None:
            raise RpcError("invalid-value", f"no confirmed commit with persist-id "
                           f"{persist_id!r} is pending", "protocol")
        changes = self._apply_candidate(f"netconf:{user}",
                                        "confirmed-commit" if confirmed else "commit")
        if p is not None:
            p.cancel_timer()
            if confirmed:  # a follow-up confirmed commit: accumulate, restart the timer
                p.record(changes)
                p.persist = persist if persist is not None else p.persist
            else:
                self.pending = None
                key_event(log, "confirmed commit confirmed", user=user,
                          objects=len(p.own))
        elif confirmed:
            p = PendingCommit(session, persist)
            p.record(changes)
            self.pending = p
        if confirmed:
            assert p is not None
            p.timer = asyncio.get_running_loop().call_later(timeout_s, self._timeout_rollback)
        if p is not None:  # started, extended or confirmed one
            self._save_pending()
        if self.on_commit is not None:
            self.on_commit(user, len(changes))
        return len(changes)

    def _apply_candidate(self, actor: str, reason: str) -> list[Change]:
        """Validate running-plus-changes and write the changes, in one store transaction
        (so no other writer's change can slip between the check and the write)."""
        diff = self._diff
        if not diff:
            return []
        with self.store.transaction(actor, reason) as txn:
            snap = snapshot(self.store, self.cfg)
            _overlay(snap, diff)
            self._check(snap)
            self._stage(txn, diff)
            changes: list[Change] = txn.changes()
        self._diff = None
        return changes

    def _stage(self, txn: Any, diff: Diff) -> None:
        kinds = {m.cls.KIND: m.cls for m in xmlmap.lists()}
        singles = {c.cls.KIND: c for c in extension.containers()}
        for (kind, key), value in diff.items():
            c = singles.get(kind)
            if c is not None:
                stored = txn.get(c.cls, c.key)
                if value is None or value == c.default(self.cfg):
                    if stored is not None:
                        txn.delete(c.cls, c.key)
                elif value != stored:
                    txn.put(value)
                continue
            cls = kinds[kind]
            if value is None:
                if txn.get(cls, key) is not None:
                    txn.delete(cls, key)
            elif txn.get(cls, key) != value:
                txn.put(value)

    def cancel_commit(self, session: int, user: str, persist_id: str | None = None) -> None:
        p = self.pending
        if p is None:
            raise RpcError("operation-failed", "no confirmed commit is pending", "protocol")
        refused = p.may_act(session, persist_id)
        if refused is not None:
            raise RpcError("invalid-value" if persist_id is not None else "in-use", refused,
                           "protocol", info={"session-id": str(p.session)})
        self._rollback(f"netconf:{user}", "cancel-commit")

    def _save_pending(self) -> None:
        self.store.set_meta(PENDING_META, self.pending.to_json() if self.pending else "")

    def _kinds(self) -> dict[str, type[Entity]]:
        kinds = {m.cls.KIND: m.cls for m in xmlmap.lists()}
        return kinds | {c.cls.KIND: c.cls for c in extension.containers()}

    def resume(self) -> None:
        """At start: a confirmed commit left unconfirmed by a crash is rolled back."""
        saved = self.store.get_meta(PENDING_META)
        if not saved:
            return
        try:
            self.pending = PendingCommit.from_json(saved, self._kinds())
        except (ValueError, KeyError, TypeError) as exc:
            log.error("the saved unconfirmed commit cannot be read (%s); nothing rolled "
                      "back — check the journal for the last netconf confirmed-commit", exc)
            self.store.set_meta(PENDING_META, "")
            return
        self._rollback("netconf:restart", "the controller restarted before the confirmed "
                       "commit was confirmed")

    def stop(self) -> None:
        """The controller stops: an unconfirmed commit does not become permanent."""
        if self.pending is not None:
            self._rollback("netconf:shutdown", "the controller stopped before the "
                           "confirmed commit was confirmed")

    def _timeout_rollback(self) -> None:
        self._rollback("netconf:confirm-timeout", "confirmed commit not confirmed in time")

    def _rollback(self, actor: str, reason: str) -> None:
        """Revert exactly the pending confirmed commit's own changes (see ``confirm``)."""
        p, self.pending = self.pending, None
        if p is None:
            return
        p.cancel_timer()
        kinds = self._kinds()

        def current(kind: str, key: str) -> Entity | None:
            return self.store.get(kinds[kind], key) if kind in kinds else None

        blocked: dict[tuple[str, str], str] = {}
        kept: dict[tuple[str, str], str] = {}
        n = 0
        for _ in range(len(p.own) + 1):
            try:
                with self.store.transaction(actor, f"rollback: {reason}") as txn:
                    reverts, kept = plan_rollback(p, current)
                    reverts = [r for r in reverts if (r.kind, r.key) not in blocked]
                    for r in reverts:
                        if r.target is None:
                            txn.delete(kinds[r.kind], r.key)
                        else:
                            txn.put(r.target)
                    found = _broken_references(txn, self.store, reverts)
                    if found:
                        blocked |= found
                        raise _Retry
                    n = len(txn.changes())
                break
            except _Retry:
                continue
        kept |= blocked
        self.last_rollback_kept = kept
        self._save_pending()
        key_event(log, "confirmed commit rolled back", reason=reason, objects=n,
                  kept=len(kept))
        for (kind, key), why in sorted(kept.items()):
            log.warning("confirmed-commit rollback kept %s %r: %s; change it by hand if it "
                        "should go back too", kind, key, why)

    @property
    def confirm_pending(self) -> bool:
        return self.pending is not None


class _Retry(Exception):
    """Abort a rollback transaction to try again without the objects it found blocked."""


def _broken_references(txn: Any, store: Any, reverts: list[Revert]
                       ) -> dict[tuple[str, str], str]:
    """Reverts that would leave a reference dangling (a delete something still refers
    to) or restore an object referring to something gone."""
    out: dict[tuple[str, str], str] = {}
    view = view_of(txn, store)
    for r in reverts:
        if r.target is None:
            refs = referrers_after(txn, store, r.kind, r.key)
            if refs:
                out[(r.kind, r.key)] = (f"still referred to by {', '.join(refs[:5])} "
                                        "(created after the confirmed commit)")
        else:
            issues = integrity.check(r.target, view)
            if issues:
                out[(r.kind, r.key)] = f"its previous value no longer fits: {issues[0]}"
    return out


def _overlay(snap: Snapshot, diff: Diff) -> None:
    for (kind, key), value in diff.items():
        table = snap.setdefault(kind, {})
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


def _dump(obj: Entity | None) -> dict[str, Any]:
    return obj.model_dump(mode="json") if obj is not None else {}
