"""The ``netconf:`` config section (cheap to import: the plugin module loads it).

Rules: users map SSH public keys to the REST roles (operator / tenant / viewer);
``max_message_bytes`` bounds one NETCONF message (larger closes the session).
"""

from __future__ import annotations

from pydantic import Field

from controller.models import Model, Role


class NetconfUser(Model):
    """An SSH user: ``name``, ``role``, ``tenant``, and ``authorized_key`` (one OpenSSH
    public key line) or ``authorized_keys_file``."""

    name: str = Field(min_length=1)
    role: Role = Role.VIEWER
    tenant: str | None = None
    authorized_key: str | None = None
    authorized_keys_file: str | None = None


class NetconfSection(Model):
    """``netconf:`` — ``listen`` HOST:PORT, ``host_key`` path (generated if missing),
    ``max_message_bytes``, ``users``."""

    listen: str = "127.0.0.1:8830"
    host_key: str | None = None
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=4096)
    users: list[NetconfUser] = Field(default_factory=list)


__all__ = ["NetconfSection", "NetconfUser"]
