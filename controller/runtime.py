"""The composition root: builds the controller from config and runs it.

Rules:
- This is the one place that wires packages together. Each package offers
  *components* (objects with ``async start(rt)`` and ``async stop()``) through its
  plugin module's ``components(rt)`` (``controller.plugins``, collected by
  ``controller.wiring.build``); the runtime starts them in order and stops them in
  reverse, even when one fails to start.
- Store commits are bridged onto the event bus as ``StateChanged`` events.
- Shutdown on SIGINT/SIGTERM is graceful: components stop, the store closes.
- A component with ``leader_only = True`` writes to the network. On a single
  controller it starts in its place like any other; in a cluster (etcd store) it
  starts when this replica is elected and stops when it steps down, before the
  lease a successor waits for can expire (``controller.cluster``). Every other
  component runs on every replica. A leader-only component may offer
  ``standby(rt)``: run on every follower (at start and after stepping down) to get
  ready to lead without touching the network (its ``stop()`` releases that too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from controller.auth import Principal, TokenLookup
from controller.cluster import EtcdLeadership, SoleLeader, leader_only
from controller.config import NetworkConfig, apply_config
from controller.events import EventBus, StateChanged
from controller.logs import key_event
from controller.ops.alarms import AlarmBook
from controller.ops.sessions import SessionTable
from controller.store import Store, open_store
from controller.store.base import Change
from controller.writer import StateWriter

log = logging.getLogger("cpn.runtime")


@dataclass
class Settings:
    """Where things listen and live: ``api``/``dns`` as (host, port), ``state`` dir,
    ``api_tls`` (cert, key) for HTTPS,
    ``store`` URL (None: the SQLite file ``state/state.db``; ``etcd://h:p,h:p`` for a
    cluster) and ``member`` (this replica's name in a cluster)."""

    api: tuple[str, int] = ("127.0.0.1", 8080)
    dns: tuple[str, int] = ("127.0.0.1", 5353)
    state: Path = Path("./var")
    store: str | None = None
    member: str = ""
    #: durability of the SQLite store: "full", "commit" or "normal" (controller.store.sqlite)
    store_sync: str = "full"
    log_level: str = "info"
    #: (certificate chain, private key) PEM paths: REST over HTTPS when set
    api_tls: tuple[Path, Path] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Component(Protocol):
    """Runs inside the controller. Set ``leader_only = True`` on one that programs the
    network (SRv6, optical, Knot, centre dispatch): it then runs on the leader only."""

    name: str

    async def start(self, rt: Runtime) -> None: ...

    async def stop(self) -> None: ...


class Runtime:
    """Everything a component may use: store, bus, writer, config, settings, metrics."""

    def __init__(self, cfg: NetworkConfig | None, settings: Settings,
                 store: Store | None = None) -> None:
        self.cfg = cfg
        self.settings = settings
        self.store: Store = store or open_store(settings.store or str(settings.state /
                                                                      "state.db"),
                                                member=settings.member,
                                                sync=settings.store_sync)
        self.bus = EventBus()
        self.writer = StateWriter(self.store)
        self.metrics = CollectorRegistry()
        self.alarms = AlarmBook(self.store)
        #: alarm sources: name → function returning the conditions holding now
        #: (``controller.ops.engine``); plugins add theirs
        self.alarm_sources: dict[str, Callable[[], Iterable[Any]]] = {}
        self.sessions = SessionTable()
        #: parts of the console's overview owned by plugins: name → function returning
        #: JSON-able items (``controller.console.view``)
        self.console_views: dict[str, Callable[[], Any]] = {}
        static = {t.digest(): Principal(t.name, t.role, t.tenant)
                  for t in (cfg.tokens if cfg else [])}
        self.tokens = TokenLookup(self.store, static)
        self.components: list[Component] = []
        self.started: list[Component] = []
        self.zone = cfg.zone if cfg else "cpn.example"
        self._pending: list[tuple[list[Change], str, str]] = []
        self.store.subscribe(self._on_commit, with_context=True)
        self.stopping = asyncio.Event() if _has_loop() else None
        member = settings.member or f"{socket.gethostname()}:{settings.api[1]}"
        self.member = member
        self.store.member = member
        self.leadership: SoleLeader | EtcdLeadership
        if self.store.backend == "etcd":
            from controller.store.etcd import EtcdStore

            assert isinstance(self.store, EtcdStore)
            self.leadership = EtcdLeadership(
                self.store, member, f"{'https' if settings.api_tls else 'http'}://"
                f"{settings.api[0]}:{settings.api[1]}")
        else:
            self.leadership = SoleLeader(member)
        #: leader-only components waiting for (or running under) this replica's lead
        self.leader_components: list[Component] = []
        self.leading: list[Component] = []
        #: leader-only components a follower got ready to lead (``standby``)
        self._prepared: set[Component] = set()
        self._role_lock: asyncio.Lock | None = None
        self._role_tasks: set[asyncio.Task[None]] = set()

    def _on_commit(self, changes: list[Change], actor: str, reason: str) -> None:
        self.bus.publish(StateChanged(changes=tuple(changes), actor=actor, reason=reason))

    def apply_config(self) -> None:
        if self.cfg is None:
            return
        from controller.store.base import StoreConflict

        for attempt in range(20):
            try:  # replicas of a cluster start together and apply the same config
                res = apply_config(self.store, self.cfg)
                break
            except StoreConflict:
                if attempt == 19:
                    raise
                import time

                time.sleep(0.05 * (attempt + 1))
        if res.unchanged:
            log.info("config %s unchanged since last apply; state kept as stored",
                     self.cfg.source)
        else:
            key_event(log, "config applied", source=self.cfg.source, created=res.created,
                      updated=res.updated, deleted=res.deleted)

    async def start(self, components: list[Component]) -> None:
        loop = asyncio.get_running_loop()
        self.bus.bind(loop)
        self.stopping = asyncio.Event()
        self._role_lock = asyncio.Lock()
        self.components = components
        elected = self.leadership.elected
        for comp in components:
            if elected and leader_only(comp):
                self.leader_components.append(comp)
                continue
            try:
                await comp.start(self)
            except Exception as exc:
                log.error("component %s failed to start: %s", comp.name, exc)
                await self.stop()
                raise
            self.started.append(comp)
            log.info("component %s started", comp.name)
        if elected:
            bind = getattr(self.store, "bind_loop", None)
            if bind is not None:
                bind(loop)
            await self._standby()
            await self.leadership.start(self._role_changed)

    def when_leading(self, name: str, start: Callable[[], Awaitable[None]],
                     stop: Callable[[], Awaitable[None]]) -> None:
        """For a component that only partly writes to the network (the DNS component
        serves answers everywhere but publishes to Knot from the leader only): run
        ``start``/``stop`` as a leader-only duty named ``name``. Call it from the
        component's ``start`` and only when ``rt.leadership.elected``."""
        self.leader_components.append(_Duty(name, start, stop))

    def _role_changed(self, leader: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._apply_role(leader))
        self._role_tasks.add(task)
        task.add_done_callback(self._role_tasks.discard)

    async def _apply_role(self, leader: bool) -> None:
        """Start the leader-only components on election, stop them on stepping down."""
        assert self._role_lock is not None
        async with self._role_lock:
            if leader and self.leadership.role.leader:
                for comp in self.leader_components:
                    if comp in self.leading:
                        continue
                    try:
                        await comp.start(self)
                    except Exception as exc:
                        log.error("leader component %s failed to start: %s", comp.name, exc)
                        continue
                    self.leading.append(comp)
                    self._prepared.discard(comp)
                    log.info("leader component %s started (epoch %d)", comp.name,
                             self.leadership.role.epoch)
            elif not leader:
                await self._stop_leading()
                await self._standby()

    async def _standby(self) -> None:
        """Followers ready to take over: a leader-only component with
        ``standby(rt)`` prepares what it can without touching the network (e.g. opens
        its device sessions), so an election costs only its first pass (issue 16)."""
        for comp in self.leader_components:
            prepare = getattr(comp, "standby", None)
            if prepare is None or comp in self.leading:
                continue
            try:
                await prepare(self)
            except Exception as exc:  # it will try again when it starts
                log.warning("leader component %s could not get ready to lead: %s",
                            comp.name, exc)
            self._prepared.add(comp)

    async def _stop_leading(self) -> None:
        while self.leading:
            comp = self.leading.pop()
            try:
                await comp.stop()
                log.info("leader component %s stopped", comp.name)
            except Exception:
                log.exception("leader component %s failed to stop cleanly", comp.name)

    async def stop(self) -> None:
        if self._role_lock is not None:
            async with self._role_lock:
                await self._stop_leading()
                for comp in [c for c in self.leader_components if c in self._prepared]:
                    with contextlib.suppress(Exception):  # releases what standby opened
                        await comp.stop()
                self._prepared.clear()
        await self.leadership.stop()
        while self.started:
            comp = self.started.pop()
            try:
                await comp.stop()
                log.info("component %s stopped", comp.name)
            except Exception:
                log.exception("component %s failed to stop cleanly", comp.name)

    async def serve(self, components: list[Component]) -> None:
        """Start components, wait for SIGINT/SIGTERM, stop them."""
        await self.start(components)
        loop = asyncio.get_running_loop()
        assert self.stopping is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        _forget_signals_in_forked_children()
        key_event(log, "controller running", api=f"{self.settings.api[0]}:"
                  f"{self.settings.api[1]}", state=str(self.settings.state))
        try:
            await self.stopping.wait()
        finally:
            key_event(log, "controller stopping")
            await self.stop()
            self.store.close()


_AT_FORK_REGISTERED = False


def _forget_signals_in_forked_children() -> None:
    """A process forked from the controller (pyroute2 forks a helper to open a netlink
    socket inside a namespace) inherits the loop's signal wake-up socket: the SIGTERM
    pyroute2 sends that helper when closing it was written to the shared socket and
    read by the controller as its own — a leader opening its routers' programmers
    stopped itself (seen in ``cpn lab ha-video``). The child drops the wake-up fd and
    takes the default handlers, so a signal meant for it stays its own."""
    global _AT_FORK_REGISTERED
    if _AT_FORK_REGISTERED:
        return
    _AT_FORK_REGISTERED = True

    def child() -> None:
        with contextlib.suppress(ValueError, OSError):  # not the main thread: nothing set
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)

    os.register_at_fork(after_in_child=child)


class _Duty:
    """A leader-only part of a component (``Runtime.when_leading``)."""

    leader_only = True

    def __init__(self, name: str, start: Callable[[], Awaitable[None]],
                 stop: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self._start, self._stop = start, stop

    async def start(self, rt: Runtime) -> None:
        await self._start()

    async def stop(self) -> None:
        await self._stop()


async def stop_loop(unsub: Callable[[], None] | None,
                    task: asyncio.Task[None] | None) -> None:
    """The usual end of a component's ``stop``: drop its bus subscription, cancel its
    loop task and wait for it to finish."""
    if unsub is not None:
        unsub()
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
