"""Sessions the controller holds with the network (BGP peers, telemetry agents …).

Rules:
- Plugins report transitions: ``up(kind, peer)`` / ``down(kind, peer, reason)``; a
  peer ``expect``-ed but never up is ``idle``. The table is in memory: after a
  restart sessions are re-established and reported again.
- A session down — or expected and not up within ``grace_s`` — is an alarm
  condition (``bgp-session-down`` …, critical for BGP: compute awareness of that site
  is lost) until it comes back.
- Counters per kind (``ups``, ``downs``) feed ``/metrics``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from controller.ops.engine import Condition
from controller.ops.models import Severity


@dataclass(slots=True)
class Session:
    """``kind`` (bgp, telemetry …), ``peer``, ``state`` (up / down / idle), ``since``
    (wall clock, s), ``reason``, ``site``, ``ups`` / ``downs`` (transitions seen)."""

    kind: str
    peer: str
    state: str = "idle"
    since: float = field(default_factory=time.time)
    reason: str = ""
    site: str | None = None
    ups: int = 0
    downs: int = 0


class SessionTable:
    def __init__(self, grace_s: float = 90.0) -> None:
        self.grace_s = grace_s
        self.sessions: dict[tuple[str, str], Session] = {}
        self._lock = threading.Lock()

    def _get(self, kind: str, peer: str, site: str | None) -> Session:
        s = self.sessions.get((kind, peer))
        if s is None:
            s = self.sessions[(kind, peer)] = Session(kind, peer, site=site)
        elif site is not None:
            s.site = site
        return s

    def expect(self, kind: str, peer: str, site: str | None = None) -> None:
        with self._lock:
            self._get(kind, peer, site)

    def up(self, kind: str, peer: str, site: str | None = None) -> None:
        with self._lock:
            s = self._get(kind, peer, site)
            if s.state != "up":
                s.state, s.since, s.reason = "up", time.time(), ""
                s.ups += 1

    def down(self, kind: str, peer: str, reason: str = "", site: str | None = None) -> None:
        with self._lock:
            s = self._get(kind, peer, site)
            if s.state != "down":
                s.state, s.since = "down", time.time()
                s.downs += 1
            s.reason = reason

    def forget(self, kind: str) -> None:
        with self._lock:
            for k in [k for k in self.sessions if k[0] == kind]:
                del self.sessions[k]

    def snapshot(self) -> list[Session]:
        with self._lock:
            return [Session(**{f: getattr(s, f) for f in Session.__slots__})  # type: ignore[attr-defined]
                    for s in self.sessions.values()]

    def conditions(self) -> list[Condition]:
        now = time.time()
        out = []
        for s in self.snapshot():
            sev = Severity.CRITICAL if s.kind == "bgp" else Severity.MAJOR
            where = f" (site {s.site})" if s.site else ""
            if s.state == "down":
                out.append(Condition(f"{s.kind}-session-down", s.peer, sev,
                                     f"{s.kind} session with {s.peer}{where} down: "
                                     f"{s.reason or 'closed'}"))
            elif s.state == "idle" and now - s.since > self.grace_s:
                out.append(Condition(f"{s.kind}-session-down", s.peer, sev,
                                     f"{s.kind} session with {s.peer}{where} not established "
                                     f"within {self.grace_s:g} s"))
        return out
