"""A BGP session that originates SR policies, as a sans-I/O state machine (h11-style).

Rules:
- Bytes in (``receive_data``) → events out; bytes out from ``start``, ``keepalive``,
  ``advertise``, ``withdraw``, ``close``. No sockets, no clocks: the caller
  (``bgp_srpolicy``) owns the TCP connection and the timers and asks ``timers()`` what
  the negotiated hold time and keepalive interval are.
- States (RFC 4271 §8, the part an active speaker that originates routes needs):
  ``idle`` → ``start()`` → ``open_sent`` → peer OPEN → ``open_confirm`` → peer
  KEEPALIVE → ``established``; a NOTIFICATION either way, or ``close()``, → ``closed``.
  A closed session is not reused: the adapter makes a new one to reconnect.
- The peer's OPEN is checked (version, expected AS, hold time 0 or ≥ 3 s); a bad OPEN
  gets the NOTIFICATION RFC 4271 §6.2 prescribes, via ``RemoteProtocolError`` carrying
  it in ``notification``.
- Families: only those both sides announced (``families``) may be advertised; asking
  for another is ``LocalProtocolError`` naming the missing capability.
- Routes the peer sends us are decoded and reported, never acted on: CPN originates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from controller.errors import LocalProtocolError, RemoteProtocolError

from . import bgp_wire as w
from .state import SrPolicyRoute

State = Literal["idle", "open_sent", "open_confirm", "established", "closed"]


@dataclass(frozen=True, slots=True)
class Established:
    """The session came up; ``peer`` is the peer's OPEN."""

    peer: w.Open


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The peer sent NOTIFICATION ``notification``."""

    notification: w.Notification


Event = Established | PeerClosed | w.Open | w.Keepalive | w.Update | w.RouteRefresh


class SessionError(RemoteProtocolError):
    """The peer broke the protocol; ``notification`` is what to send it before closing."""

    def __init__(self, message: str, notification: w.Notification) -> None:
        super().__init__(message)
        self.notification = notification


@dataclass
class BgpSession:
    """One BGP session from CPN (``local_as``, ``router_id``) to a router.

    ``peer_as``: expected AS of the peer (``None`` = accept any); ``hold_time`` we
    propose (s); ``families`` we announce; ``restart_time``: announce Graceful Restart
    (RFC 4724) with this restart time (s), ``None`` = not; ``restarting``: set its R bit
    (the first session after CPN started).
    """

    local_as: int
    router_id: str
    peer_as: int | None = None
    hold_time: int = 90
    families: tuple[tuple[int, int], ...] = ((w.AFI_IP, w.SAFI_SR_POLICY),
                                             (w.AFI_IP6, w.SAFI_SR_POLICY))
    restart_time: int | None = None
    restarting: bool = False
    state: State = "idle"
    peer: w.Open | None = None
    _buf: bytes = field(default=b"", repr=False)

    # -- negotiated values -----------------------------------------------------------
    @property
    def negotiated_families(self) -> tuple[tuple[int, int], ...]:
        if self.peer is None:
            return ()
        return tuple(f for f in self.families if f in self.peer.families)

    @property
    def graceful_restart(self) -> bool:
        """Both sides announced Graceful Restart: the router keeps CPN's policies (as
        stale) for the restart time when the session drops without a NOTIFICATION."""
        return (self.restart_time is not None and self.peer is not None
                and self.peer.restart_time is not None)

    def end_of_rib(self) -> bytes:
        """End-of-RIB markers for every negotiated family (RFC 4724 §2): after them the
        router drops stale policies CPN did not advertise again."""
        if self.state != "established":
            raise LocalProtocolError(f"end_of_rib in state {self.state}")
        return b"".join(w.encode_end_of_rib(afi, safi)
                        for afi, safi in self.negotiated_families)

    def timers(self) -> tuple[float, float]:
        """(hold time, keepalive interval) in s; (0, 0) = no keepalives (RFC 4271 §4.2)."""
        theirs = self.peer.hold_time if self.peer else self.hold_time
        hold = min(self.hold_time, theirs)
        return (float(hold), hold / 3.0) if hold else (0.0, 0.0)

    def context(self, next_hop: str) -> w.PathContext:
        if self.peer is None:
            raise LocalProtocolError("no peer OPEN yet")
        return w.PathContext(local_as=self.local_as, ibgp=self.peer.asn == self.local_as,
                             as4=self.peer.as4, next_hop=next_hop,
                             headend_id=self.peer.router_id)

    # -- output ----------------------------------------------------------------------
    def start(self) -> bytes:
        if self.state != "idle":
            raise LocalProtocolError(f"start() in state {self.state}")
        self.state = "open_sent"
        return w.encode_open(w.Open(self.local_as, self.hold_time, self.router_id,
                                    self.families, restart_time=self.restart_time,
                                    restarting=self.restarting, gr_families=self.families))

    def keepalive(self) -> bytes:
        if self.state not in ("open_confirm", "established"):
            raise LocalProtocolError(f"keepalive in state {self.state}")
        return w.encode_keepalive()

    def _need(self, route: SrPolicyRoute) -> None:
        if self.state != "established":
            raise LocalProtocolError(f"session not established (state {self.state})")
        fam = (w.AFI_IP if route.family == 4 else w.AFI_IP6, w.SAFI_SR_POLICY)
        if fam not in self.negotiated_families:
            name = "ipv4-srpolicy" if fam[0] == w.AFI_IP else "ipv6-srpolicy"
            raise LocalProtocolError(
                f"the peer did not negotiate {name} (AFI {fam[0]}/SAFI 73), so it cannot "
                f"take policy {route.color}/{route.endpoint} (fix: enable {name} for this "
                "neighbour on the router)")

    def advertise(self, route: SrPolicyRoute, next_hop: str) -> bytes:
        self._need(route)
        return w.encode_policy_update(route, self.context(next_hop))

    def withdraw(self, routes: Iterable[SrPolicyRoute]) -> bytes:
        routes = list(routes)
        for r in routes:
            self._need(r)
        return b"".join(w.encode_withdraw(routes))

    def close(self, notification: w.Notification | None = None) -> bytes:
        """Move to ``closed``; the bytes to send (a NOTIFICATION, Cease by default)."""
        was = self.state
        self.state = "closed"
        if was in ("idle", "closed"):
            return b""
        return w.encode_notification(notification or w.Notification(6, 2))  # admin shutdown

    # -- input -----------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        if self.state in ("idle", "closed"):
            raise LocalProtocolError(f"receive_data in state {self.state}")
        try:
            msgs, self._buf = w.split(self._buf + data)
        except RemoteProtocolError as exc:
            raise SessionError(str(exc), w.Notification(1, 1)) from exc
        events: list[Event] = []
        for mtype, body in msgs:
            events.extend(self._handle(mtype, body))
            if self.state == "closed":
                break
        return events

    def _handle(self, mtype: int, body: bytes) -> list[Event]:
        try:
            msg = w.decode(mtype, body)
        except RemoteProtocolError as exc:
            code = {w.OPEN: 2, w.UPDATE: 3}.get(mtype, 1)
            self.state = "closed"
            raise SessionError(str(exc), w.Notification(code, 0 if code != 1 else 3)) from exc
        if isinstance(msg, w.Notification):
            self.state = "closed"
            return [PeerClosed(msg)]
        if self.state == "open_sent":
            if not isinstance(msg, w.Open):
                return self._fsm_error(f"expected OPEN, got message type {mtype}")
            self._check_open(msg)
            self.peer = msg
            self.state = "open_confirm"
            return [msg]  # the caller answers with a KEEPALIVE (RFC 4271 §8.2.2)
        if self.state == "open_confirm":
            if not isinstance(msg, w.Keepalive):
                return self._fsm_error(f"expected KEEPALIVE, got message type {mtype}")
            assert self.peer is not None
            self.state = "established"
            return [Established(self.peer)]
        if isinstance(msg, w.Open):
            return self._fsm_error("OPEN on an established session")
        return [msg]

    def _fsm_error(self, text: str) -> list[Event]:
        self.state = "closed"
        raise SessionError(text, w.Notification(5, 0))

    def _check_open(self, msg: w.Open) -> None:
        def bad(sub: int, text: str) -> None:
            self.state = "closed"
            raise SessionError(text, w.Notification(2, sub))

        if self.peer_as is not None and msg.asn != self.peer_as:
            bad(2, f"peer AS {msg.asn}, expected {self.peer_as} (fix: peer_as in the "
                   "programmer config, or the router's local AS)")
        if msg.hold_time in (1, 2):
            bad(6, f"unacceptable hold time {msg.hold_time} s")
        if msg.router_id == self.router_id:
            bad(3, f"peer uses our BGP identifier {msg.router_id}")
