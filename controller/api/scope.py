"""What a caller may see: tenant isolation of reads (issue #15; GBA-6.5d multi-tenancy).

Rules:
- Operators and viewers see everything (they run the network, not a tenant's share).
- A ``tenant``-role caller sees, of the kinds that belong to a tenant, only its own:
  its own ``Tenant`` record, and objects whose ``tenant`` field names its tenant
  (jobs, users, and any plugin kind with such a field); everything else (sites,
  services, metrics …) it may read as before.
- The journal (``/events``) follows the same rule entry by entry, on the entry's
  new and previous value: a tenant never learns of another tenant's jobs or users.
"""

from __future__ import annotations

from typing import Any

from controller.auth import Principal
from controller.models import Entity, Role, Tenant


def document_visible(who: Principal, kind: str, key: str, doc: dict[str, Any] | None) -> bool:
    """May ``who`` see the object ``kind``/``key`` whose JSON form is ``doc``?"""
    if who.role is not Role.TENANT:
        return True
    if kind == Tenant.KIND:
        return key == who.tenant
    if doc is not None and "tenant" in doc:
        return bool(doc["tenant"] == who.tenant)
    return True


def visible(who: Principal, obj: Entity) -> bool:
    if who.role is not Role.TENANT:
        return True
    tenant = getattr(obj, "tenant", None) if hasattr(obj, "tenant") else None
    return document_visible(who, obj.KIND, obj.key,
                            {"tenant": tenant} if hasattr(obj, "tenant") else None)


def entry_visible(who: Principal, kind: str, key: str, value: dict[str, Any] | None,
                  previous: dict[str, Any] | None) -> bool:
    """A journal entry is visible when each side of it is."""
    return all(document_visible(who, kind, key, d) for d in (value, previous)
               if d is not None) and document_visible(who, kind, key, None)
