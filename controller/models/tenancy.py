"""Tenants, users and quotas (GBA-6.2 account management, WP-3.3.3 quota tree).

Rules:
- Tenants form a tree through ``parent`` (organisation → department → team);
  a tenant's quota bounds the sum of its own and its children's usage.
- A user belongs to one tenant and has one role: operator (write everything),
  tenant (its own tenant's jobs), viewer (read only).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from controller.models.base import Entity, Model, Name, register


class Role(StrEnum):
    OPERATOR = "operator"
    TENANT = "tenant"
    VIEWER = "viewer"


class Quota(Model):
    """Upper bounds; ``None`` means unlimited. ``cpu_cores``, ``gpu``, ``npu``,
    ``memory_gib``, ``jobs`` (concurrent), ``bandwidth_mbps``; ``borrowing`` lets the
    tenant use idle capacity beyond its quota (reclaimable)."""

    cpu_cores: float | None = Field(default=None, ge=0)
    gpu: float | None = Field(default=None, ge=0)
    npu: float | None = Field(default=None, ge=0)
    memory_gib: float | None = Field(default=None, ge=0)
    jobs: int | None = Field(default=None, ge=0)
    bandwidth_mbps: float | None = Field(default=None, ge=0)
    borrowing: bool = False


@register
class Tenant(Entity):
    """A tenant (organisation or team): ``name``, ``parent``, ``quota``, ``description``."""

    KIND = "tenant"
    name: Name
    parent: Name | None = None
    quota: Quota = Field(default_factory=Quota)
    description: str = ""

    @property
    def key(self) -> str:
        return self.name


@register
class User(Entity):
    """A user: ``name``, ``tenant``, ``role``."""

    KIND = "user"
    name: Name
    tenant: Name | None = None
    role: Role = Role.VIEWER

    @property
    def key(self) -> str:
        return self.name
