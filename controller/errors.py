"""CPN's error tree. Backends convert library exceptions into these at the boundary.

``CpnError`` → ``ValidationError`` (bad input: carries field-path issues),
``NotFoundError``, ``ConflictError`` (state forbids it), ``AuthError``/``ForbiddenError``,
``ConnectionError`` (a device or peer cannot be reached), ``CommitError`` (a southbound
change failed and was rolled back), ``LocalProtocolError`` (we misused a protocol),
``RemoteProtocolError`` (a peer misbehaved).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in some input: ``path`` like ``sites[2].links[0].to``, a human
    ``message`` and, where known, the ``fix``."""

    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} (fix: {self.fix})" if self.fix else text


class CpnError(Exception):
    """Base of every error CPN raises on purpose."""


class ValidationError(CpnError):
    """Input was rejected; ``issues`` name each field path that is wrong."""

    def __init__(self, issues: Sequence[Issue] | Issue, source: str = "") -> None:
        self.issues: list[Issue] = [issues] if isinstance(issues, Issue) else list(issues)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        if len(self.issues) == 1:
            return head + str(self.issues[0])
        lines = [f"{head}{len(self.issues)} problems:"]
        lines.extend(f"  - {issue}" for issue in self.issues)
        return "\n".join(lines)

    @classmethod
    def single(cls, path: str, message: str, fix: str = "") -> ValidationError:
        return cls([Issue(path, message, fix)])


class NotFoundError(CpnError):
    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key
        super().__init__(f"{kind} {key!r} not found")


class ConflictError(CpnError):
    """The request is well-formed but the current state forbids it."""


class AuthError(CpnError):
    """Missing or invalid credentials."""


class ForbiddenError(CpnError):
    """Authenticated, but the role does not allow this."""


class ConnectionError(CpnError):
    """A device, daemon or peer could not be reached."""


class CommitError(CpnError):
    """A southbound change failed; whatever was applied has been rolled back."""


class LocalProtocolError(CpnError):
    """We tried to do something the protocol does not allow."""


class RemoteProtocolError(CpnError):
    """A peer sent something the protocol does not allow."""


def join_path(parts: Iterable[str | int]) -> str:
    """``('sites', 2, 'links', 0, 'to')`` → ``sites[2].links[0].to``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _fix_for(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "remove this key (check its spelling against the documented fields)"
    if kind == "missing":
        return "add this field"
    if kind in ("float_parsing", "int_parsing", "float_type", "int_type"):
        return "give a plain number in the unit named by the field"
    if kind == "finite_number":
        return ("give a finite number: NaN and infinity cannot be stored (1e999 in JSON or "
                "YAML overflows to infinity)")
    if kind == "string_pattern_mismatch":
        return "use letters, digits, '-', '_' or '.', starting with a letter or digit"
    return ""


def issues_from_pydantic(exc: Any, prefix: tuple[str | int, ...] = ()) -> list[Issue]:
    """Our ``Issue``s from a pydantic ``ValidationError``, paths prefixed."""
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p != "__root__")
        msg = err["msg"].removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}" if loc else "unknown key"
        out.append(Issue(join_path(prefix + loc), msg, _fix_for(err)))
    return out
