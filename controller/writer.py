"""Validated writes to the store: the single path REST, NETCONF and config share.

Rules:
- ``put`` checks the object's references against the store (``integrity``) in
  the same transaction it writes in, so concurrent writers cannot slip a dangling
  reference in between check and commit.
- ``delete`` refuses to delete something other objects still refer to, naming
  the referrers.
- A failing multi-object change raises and leaves the store exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controller import integrity
from controller.errors import ConflictError, Issue, NotFoundError, ValidationError
from controller.models import ComputeNode, Entity, Router, Site, Tenant
from controller.store.base import Change, Transaction


def view_of(txn: Transaction, store: Any) -> integrity.View:
    """The integrity view as the transaction sees it (committed + staged)."""
    staged = {(c.kind, c.key): c.value for c in txn.changes()}

    def names(cls: type[Entity]) -> set[str]:
        out = {o.key for o in store.list(cls)}
        for (kind, key), value in staged.items():
            if kind == cls.KIND:
                (out.add if value is not None else out.discard)(key)
        return out

    tenants: dict[str, str | None] = {t.name: t.parent for t in store.list(Tenant)}
    for (kind, key), value in staged.items():
        if kind == Tenant.KIND:
            if value is None:
                tenants.pop(key, None)
            else:
                assert isinstance(value, Tenant)
                tenants[key] = value.parent
    return integrity.View(names(Site), names(Router), names(ComputeNode), tenants)


class StateWriter:
    """Checked writes on top of a store."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def put_many(self, objs: Iterable[Entity], actor: str, reason: str = "",
                 *, create_only: bool = False, path_prefix: str = "") -> list[Change]:
        objs = list(objs)
        with self.store.transaction(actor, reason) as txn:
            for obj in objs:
                if create_only and txn.get(type(obj), obj.key) is not None:
                    raise ConflictError(f"{obj.KIND} {obj.key!r} already exists "
                                        "(use PUT to replace it)")
                txn.put(obj)
            view = view_of(txn, self.store)
            issues: list[Issue] = []
            for i, obj in enumerate(objs):
                prefix = path_prefix if len(objs) == 1 else f"{path_prefix}[{i}]"
                for issue in integrity.check(obj, view):
                    path = f"{prefix}.{issue.path}" if prefix else issue.path
                    issues.append(Issue(path, issue.message, issue.fix))
            if issues:
                raise ValidationError(issues)
            changes: list[Change] = txn.changes()
            return changes

    def put(self, obj: Entity, actor: str, reason: str = "", *, create_only: bool = False,
            path_prefix: str = "") -> list[Change]:
        return self.put_many([obj], actor, reason, create_only=create_only,
                             path_prefix=path_prefix)

    def delete(self, kind: type[Entity], key: str, actor: str, reason: str = "") -> None:
        with self.store.transaction(actor, reason) as txn:
            if txn.get(kind, key) is None:
                raise NotFoundError(kind.KIND, key)
            txn.delete(kind, key)
            refs = referrers_after(txn, self.store, kind.KIND, key)
            if refs:
                shown = ", ".join(refs[:5]) + (" …" if len(refs) > 5 else "")
                raise ConflictError(f"{kind.KIND} {key!r} is still referred to by {shown}; "
                                    "delete or change those first")


def referrers_after(txn: Transaction, store: Any, kind: str, key: str) -> list[str]:
    """Objects that would still refer to ``kind``/``key`` once ``txn`` commits (committed
    state with the transaction's staged writes and deletes applied) — the one rule REST,
    NETCONF and config apply use to refuse leaving a reference dangling."""
    staged = {(c.kind, c.key): c.value for c in txn.changes()}
    everything: list[Entity] = []
    kinds: tuple[type[Entity], ...] = (ComputeNode, Router, Tenant, *_referring_kinds())
    for cls in kinds:
        everything.extend(o for o in store.list(cls) if (cls.KIND, o.key) not in staged)
        everything.extend(v for (k, _), v in staged.items() if k == cls.KIND and v is not None)
    return integrity.referrers(kind, key, everything)


def _referring_kinds() -> tuple[type[Entity], ...]:
    from controller.models import ComputeResource, Link, Service, User

    return (ComputeResource, Link, Service, User)
