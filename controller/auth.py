"""Bearer-token authentication and role checks for the REST API.

Rules:
- Only SHA-256 digests of tokens are stored (config ``auth.tokens`` or the
  store's token table, written by ``cpn token create``).
- Roles: ``operator`` may do everything; ``tenant`` may read and may manage jobs
  of its own tenant; ``viewer`` may only read.
- A positive lookup is cached for a few seconds; revocation takes effect within
  that time.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from controller.errors import AuthError, ForbiddenError
from controller.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: token ``name``, ``role``, ``tenant`` (for role tenant)."""

    name: str
    role: Role
    tenant: str | None = None

    def require_write(self) -> None:
        if self.role is not Role.OPERATOR:
            raise ForbiddenError(f"role {self.role.value} may not change this "
                                 "(needs role operator)")

    def require_tenant_access(self, tenant: str) -> None:
        if self.role is Role.OPERATOR:
            return
        if self.role is Role.TENANT and self.tenant == tenant:
            return
        raise ForbiddenError(f"role {self.role.value} of tenant {self.tenant!r} may not "
                             f"change jobs of tenant {tenant!r}")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "cpn_" + secrets.token_urlsafe(32)


class TokenLookup:
    """Finds principals by token: static config tokens first, then the store table."""

    def __init__(self, store: object, static: dict[str, Principal] | None = None,
                 ttl_s: float = 5.0) -> None:
        self._store = store
        self._static = dict(static or {})
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._ttl = ttl_s

    @staticmethod
    def _digest(header: str | None) -> str:
        if not header:
            raise AuthError("missing bearer token: send 'Authorization: Bearer <token>' "
                            "(create one with 'cpn token create --role viewer')")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("malformed Authorization header: expected 'Bearer <token>'")
        return digest(token.strip())

    def cached(self, header: str | None) -> Principal | None:
        """The principal of a config token or of a store token verified less than the
        ttl ago, without touching the store (None: ask ``authenticate``). Raises
        ``AuthError`` for a missing or malformed header."""
        return self._known(self._digest(header))

    def _known(self, d: str) -> Principal | None:
        if d in self._static:
            return self._static[d]
        hit = self._cache.get(d)
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def authenticate(self, header: str | None) -> Principal:
        """The caller's principal; looks the token up in the store (which may wait for
        a committing writer) unless ``cached`` knows it."""
        d = self._digest(header)
        known = self._known(d)
        if known is not None:
            return known
        row = self._store.find_token(d)  # type: ignore[attr-defined]
        if row is None:
            raise AuthError("invalid or revoked token")
        principal = Principal(row[0], Role(row[1]), row[2])
        self._cache[d] = (time.monotonic() + self._ttl, principal)
        return principal
