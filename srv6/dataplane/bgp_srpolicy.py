"""BGP SR Policy backend: a ``PolicyProgrammer`` for routers that take SR policies over BGP
(SAFI 73, RFC 9830 / RFC 9831; GBA-6.4.3c "SRv6 end-to-end fast provisioning").

Rules:
- CPN is the originating speaker (the controller role of RFC 9256 §5): it keeps one BGP
  session to the router and advertises one candidate path per ``SrPolicyRoute`` in the
  node's desired state. The protocol itself is sans-I/O (``bgp_session``, ``bgp_wire``);
  this module is the asyncio adapter: TCP connect (optionally from inside a network
  namespace), OPEN, keepalives every hold/3, the hold timer, reconnect after
  ``connect_retry`` s, and a full re-advertisement whenever the session comes back or
  the router asks for it (ROUTE-REFRESH).
- The speaker runs its event loop on its own thread, so the synchronous
  ``PolicyProgrammer`` lifecycle (load → diff → commit / rollback) can drive it like
  any other backend. Every send waits until the bytes are written to the socket.
- ``read_actual`` is the Adj-RIB-Out: what this session has advertised and the router
  holds for as long as the session is up (RFC 4271 §9.2). A session that is down reads
  as ``ConnectionError`` naming the peer, the state and the last error — never as an
  empty router (that would make a reconciler think everything needs re-adding, which is
  true only once the session is back, and then the speaker re-advertises by itself).
- A change is one UPDATE: a changed candidate path replaces the old one atomically on
  the router (implicit withdraw, RFC 4271 §3.1) — the make-before-break the contract
  expects. A delete is an MP_UNREACH_NLRI.
- The router refuses what it did not negotiate: a policy of a family (ipv4-srpolicy /
  ipv6-srpolicy) the peer did not announce fails that op with ``CommitError`` naming
  the fix, and the transaction rolls back. Kernel routes (seg6, seg6local) are refused:
  routers allocate their own local SIDs and steer by colour.
- Closing the programmer ends the session with a Cease NOTIFICATION, so the router drops
  the policies — unless Graceful Restart (RFC 4724, ``graceful_restart`` s) was
  negotiated: then the connection is just closed and the router keeps them as stale for
  the restart time; the next session announces the R bit, re-advertises, and sends
  End-of-RIB only after the programmer's first commit, so a controller restart tears
  nothing down and stale policies CPN no longer wants are dropped by the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from controller.errors import CommitError, ConnectionError, CpnError, LocalProtocolError

from . import bgp_wire as w
from .agent import _socket_in_netns
from .bgp_session import BgpSession, Established, PeerClosed, SessionError
from .programmer import Result, TransactionalProgrammer
from .state import NodeState, RouteKey, RouteOp, SrPolicyRoute

log = logging.getLogger("cpn.srv6.bgp")

FAMILIES = {"ipv4": (w.AFI_IP, w.SAFI_SR_POLICY), "ipv6": (w.AFI_IP6, w.SAFI_SR_POLICY)}


@dataclass(frozen=True, slots=True)
class BgpPeer:
    """Where and how to reach the router.

    ``address``/``port``: the router's BGP address; ``peer_as``/``local_as``: AS numbers
    (equal = iBGP); ``router_id``: CPN's BGP Identifier (IPv4 dotted); ``hold_time`` s
    proposed; ``connect_retry`` s between connection attempts; ``families``: SR policy
    families to announce (``ipv4``, ``ipv6``); ``netns``: open the TCP connection from
    inside this network namespace (labs); ``next_hop``: the MP_REACH next hop (default:
    our address on the connection); ``graceful_restart``: announce Graceful Restart
    (RFC 4724) with this restart time in s (0 = off).
    """

    address: str
    peer_as: int
    local_as: int
    router_id: str
    port: int = 179
    hold_time: int = 90
    connect_retry: float = 5.0
    families: tuple[str, ...] = ("ipv4", "ipv6")
    netns: str | None = None
    next_hop: str | None = None
    graceful_restart: int = 0


class BgpSpeaker:
    """The asyncio side: one session to ``peer``, kept up until ``stop``."""

    def __init__(self, peer: BgpPeer, name: str = "") -> None:
        self.peer = peer
        self.name = name or peer.address
        self.state = "idle"
        self.last_error = ""
        self.established_at = 0.0
        self.sessions = 0  # how many times the session came up
        self.refreshes = 0  # ROUTE-REFRESH requests answered
        self.graceful = False  # Graceful Restart negotiated on the current session
        self._synced = False  # the programmer committed its state in this process
        self._eor_due = False  # End-of-RIB held back until then
        self.peer_open: w.Open | None = None
        self.families: tuple[tuple[int, int], ...] = ()
        self._rib: dict[RouteKey, SrPolicyRoute] = {}
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._session: BgpSession | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._local = ""
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"bgp-{self.name}")
        self._task: asyncio.Task[None] | None = None

    # -- sync API (any thread) ---------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._loop.call_soon_threadsafe(self._spawn)

    def _spawn(self) -> None:
        self._task = self._loop.create_task(self._run())

    def stop(self, timeout: float = 3.0, graceful: bool = False) -> None:
        """End the session: with a Cease NOTIFICATION (the router drops CPN's policies),
        or — ``graceful`` and Graceful Restart negotiated — by closing the connection,
        so the router keeps them as stale for the restart time (RFC 4724 §4.2)."""
        if self._stopping:
            return
        self._stopping = True
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(graceful and self.graceful),
                                                 self._loop).result(timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._loop.is_running():
            self._loop.close()

    def wait_established(self, timeout: float) -> bool:
        return self._up.wait(timeout)

    @property
    def established(self) -> bool:
        return self._up.is_set()

    def adj_rib_out(self) -> dict[RouteKey, SrPolicyRoute]:
        with self._lock:
            return dict(self._rib)

    def advertise(self, route: SrPolicyRoute, timeout: float = 10.0) -> None:
        self._call(self._advertise(route), timeout)

    def withdraw(self, routes: Iterable[SrPolicyRoute], timeout: float = 10.0) -> None:
        self._call(self._withdraw(list(routes)), timeout)

    def _call(self, coro: Coroutine[Any, Any, None], timeout: float) -> None:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            fut.result(timeout)
        except TimeoutError as exc:
            fut.cancel()
            raise ConnectionError(f"{self.name}: BGP send to {self.peer.address} timed out "
                                  f"after {timeout} s") from exc

    # -- loop side ---------------------------------------------------------------------
    def _require_up(self) -> tuple[BgpSession, asyncio.StreamWriter]:
        if self._session is None or self._writer is None or not self._up.is_set():
            raise ConnectionError(self.down_reason())
        return self._session, self._writer

    def down_reason(self) -> str:
        why = f": {self.last_error}" if self.last_error else ""
        return (f"{self.name}: BGP session to {self.peer.address}:{self.peer.port} is "
                f"{self.state}{why} (fix: check the router's neighbour config for "
                f"{self.peer.router_id} AS {self.peer.local_as}, and reachability)")

    async def _advertise(self, route: SrPolicyRoute) -> None:
        session, writer = self._require_up()
        data = session.advertise(route, self.peer.next_hop or self._local)
        await self._send(writer, data)
        with self._lock:
            self._rib[route.key] = route

    async def _withdraw(self, routes: list[SrPolicyRoute]) -> None:
        session, writer = self._require_up()
        await self._send(writer, session.withdraw(routes))
        with self._lock:
            for r in routes:
                self._rib.pop(r.key, None)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        try:
            writer.write(data)
            await writer.drain()
        except OSError as exc:
            raise ConnectionError(f"{self.name}: BGP send to {self.peer.address} failed: "
                                  f"{exc}") from exc

    def synced(self, timeout: float = 10.0) -> None:
        """The programmer committed its desired state: send the End-of-RIB held back
        since the session came up (the router then drops stale policies)."""
        self._synced = True
        if self._eor_due and self._up.is_set():
            self._call(self._end_of_rib(), timeout)

    async def _end_of_rib(self) -> None:
        session, writer = self._require_up()
        if self._eor_due:
            self._eor_due = False
            await self._send(writer, session.end_of_rib())
            log.info("%s: End-of-RIB sent to %s", self.name, self.peer.address)

    async def _shutdown(self, graceful: bool) -> None:
        if self._session is not None and self._writer is not None and not graceful:
            with contextlib.suppress(Exception):
                self._writer.write(self._session.close())
                await asyncio.wait_for(self._writer.drain(), 1.0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        addr = (self.peer.address, self.peer.port)
        if self.peer.netns:
            netns = self.peer.netns
            sock = await asyncio.to_thread(_socket_in_netns, netns, addr, 5.0)
            sock.setblocking(False)
            return await asyncio.open_connection(sock=sock)
        return await asyncio.wait_for(asyncio.open_connection(*addr), 5.0)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._one_session()
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, CpnError) as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("%s: BGP session to %s: %s", self.name, self.peer.address,
                            self.last_error)
            finally:
                self._up.clear()
                self.state = "idle" if not self._stopping else "closed"
                if self._writer is not None:
                    self._writer.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._writer.wait_closed(), 1.0)
                self._session, self._writer = None, None
            if not self._stopping:
                self.state = "connect-retry"
                await asyncio.sleep(self.peer.connect_retry)

    async def _one_session(self) -> None:
        self.state = "connect"
        reader, writer = await self._connect()
        self._local = str(writer.get_extra_info("sockname")[0])
        gr = self.peer.graceful_restart
        session = BgpSession(self.peer.local_as, self.peer.router_id, self.peer.peer_as,
                             self.peer.hold_time,
                             tuple(FAMILIES[f] for f in self.peer.families),
                             restart_time=gr or None, restarting=bool(gr) and not self.sessions)
        self._session, self._writer = session, writer
        sock: socket.socket | None = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(session.start())
        await writer.drain()
        self.state = session.state
        keepalive: asyncio.Task[None] | None = None
        try:
            while True:
                hold, _ = session.timers()
                # before the peer's OPEN: a generous hold (RFC 4271 §8.2.2 suggests 4 min)
                limit = hold if session.state == "established" and hold else \
                    (hold or None) if session.state == "open_confirm" else 240.0
                try:
                    data = await asyncio.wait_for(reader.read(65536), limit)
                except TimeoutError:
                    writer.write(session.close(w.Notification(4, 0)))
                    raise ConnectionError(f"hold timer expired ({limit:.0f} s)") from None
                if not data:
                    raise ConnectionError("the router closed the connection")
                try:
                    events = session.receive_data(data)
                except SessionError as exc:
                    writer.write(w.encode_notification(exc.notification))
                    await writer.drain()
                    raise
                for ev in events:
                    if isinstance(ev, w.Open):
                        writer.write(session.keepalive())
                        await writer.drain()
                    elif isinstance(ev, Established):
                        keepalive = asyncio.ensure_future(self._keepalives(session, writer))
                        await self._came_up(session, writer)
                    elif isinstance(ev, w.RouteRefresh):
                        await self._replay(session, writer, ev.afi)
                        self.refreshes += 1
                        log.info("%s: ROUTE-REFRESH from %s (AFI %d): Adj-RIB-Out re-sent",
                                 self.name, self.peer.address, ev.afi)
                    elif isinstance(ev, PeerClosed):
                        raise ConnectionError(f"the router sent NOTIFICATION {ev.notification}")
                self.state = session.state
        finally:
            if keepalive is not None:
                keepalive.cancel()
                await asyncio.gather(keepalive, return_exceptions=True)

    async def _came_up(self, session: BgpSession, writer: asyncio.StreamWriter) -> None:
        self.state = "established"
        self.sessions += 1
        self.peer_open, self.families = session.peer, session.negotiated_families
        self.established_at = time.time()
        self.graceful = session.graceful_restart
        await self._replay(session, writer, None)
        if self.graceful:
            # End-of-RIB once CPN's state is complete: at once when the programmer has
            # committed in this process, else after its first commit (a restarted
            # controller must not make the router drop the policies it kept)
            self._eor_due = not self._synced
            if self._synced:
                writer.write(session.end_of_rib())
                await writer.drain()
        self.last_error = ""
        self._up.set()
        assert session.peer is not None
        log.info("%s: BGP session to %s up (peer AS %d, id %s, families %s, %d policies "
                 "re-advertised)", self.name, self.peer.address, session.peer.asn,
                 session.peer.router_id, session.negotiated_families, len(self._rib))

    async def _replay(self, session: BgpSession, writer: asyncio.StreamWriter,
                      afi: int | None) -> None:
        """Send the whole Adj-RIB-Out again (session re-established, ROUTE-REFRESH)."""
        nh = self.peer.next_hop or self._local
        for route in self.adj_rib_out().values():
            if afi is not None and (w.AFI_IP if route.family == 4 else w.AFI_IP6) != afi:
                continue
            try:
                writer.write(session.advertise(route, nh))
            except LocalProtocolError as exc:  # family no longer negotiated
                log.warning("%s: cannot re-advertise %s: %s", self.name, route.key, exc)
                with self._lock:
                    self._rib.pop(route.key, None)
        await writer.drain()

    async def _keepalives(self, session: BgpSession, writer: asyncio.StreamWriter) -> None:
        _, interval = session.timers()
        if not interval:
            return
        with contextlib.suppress(OSError, LocalProtocolError):
            while session.state == "established":
                await asyncio.sleep(interval)
                writer.write(session.keepalive())
                await writer.drain()


class BgpSrPolicyProgrammer(TransactionalProgrammer):
    """``PolicyProgrammer`` for a router taking SR policies over BGP from CPN.

    ``connect_timeout``: how long the constructor waits for the session (0 = do not
    wait; the speaker keeps trying in the background either way).
    """

    def __init__(self, node: str, peer: BgpPeer, connect_timeout: float = 10.0) -> None:
        super().__init__(node)
        self.peer = peer
        self.speaker = BgpSpeaker(peer, name=node)
        self.speaker.start()
        if connect_timeout:
            self.speaker.wait_established(connect_timeout)

    def close(self) -> None:
        """End the session. With Graceful Restart negotiated the router keeps the
        policies for the restart time (a controller restart tears nothing down; load an
        empty state and commit first to remove them); otherwise it drops them."""
        self.speaker.stop(graceful=self.peer.graceful_restart > 0)

    def commit(self) -> Result:
        res = super().commit()
        if not res.failed:
            self.speaker.synced()
        return res

    def status(self) -> dict[str, object]:
        """Session state for status pages and logs."""
        peer = self.speaker.peer_open
        names = {w.AFI_IP: "ipv4-srpolicy", w.AFI_IP6: "ipv6-srpolicy"}
        return {"node": self.node, "peer": f"{self.peer.address}:{self.peer.port}",
                "state": self.speaker.state, "established": self.speaker.established,
                "peer_as": peer.asn if peer else None,
                "peer_router_id": peer.router_id if peer else None,
                "hold_time": min(self.peer.hold_time, peer.hold_time) if peer else None,
                "families": [names[afi] for afi, _ in self.speaker.families],
                "graceful_restart": self.speaker.graceful,
                "sessions": self.speaker.sessions, "refreshes": self.speaker.refreshes,
                "last_error": self.speaker.last_error,
                "policies": len(self.speaker.adj_rib_out())}

    def _dump(self) -> NodeState:
        if not self.speaker.established:
            raise ConnectionError(self.speaker.down_reason())
        return NodeState(self.speaker.adj_rib_out())

    def _apply(self, op: RouteOp) -> None:
        route = op.route
        if not isinstance(route, SrPolicyRoute):
            raise CommitError(f"{self.node}: {op}: a router programmed over BGP SR Policy "
                              "takes SR policies, not kernel routes (fix: render an "
                              "SrPolicyRoute for this node, or give it programmer: netlink)")
        try:
            if op.kind == "delete":
                self.speaker.withdraw([route])
            else:
                self.speaker.advertise(route)
        except LocalProtocolError as exc:
            raise CommitError(f"{self.node}: {op}: {exc}") from exc
