"""The composition root: builds the controller from config and runs it.

Rules:
- This is the one place that wires packages together. Each package offers
  *components* (objects with ``async start(rt)`` and ``async stop()``) through its
  plugin module's ``components(rt)`` (``controller.plugins``, collected by
  ``controller.wiring.build``); the runtime starts them in order and stops them in
  reverse, even when one fails to start.
- Store commits are bridged onto the event bus as ``StateChanged`` events.
- Shutdown on SIGINT/SIGTERM is graceful: components stop, the store closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from controller.auth import Principal, TokenLookup
from controller.config import NetworkConfig, apply_config
from controller.events import EventBus, StateChanged
from controller.logs import key_event
from controller.ops.alarms import AlarmBook
from controller.ops.sessions import SessionTable
from controller.store import SqliteStore
from controller.store.base import Change
from controller.writer import StateWriter

log = logging.getLogger("cpn.runtime")


@dataclass
class Settings:
    """Where things listen and live: ``api``/``dns`` as (host, port), ``state`` dir,
    ``api_tls`` (cert, key) for HTTPS."""

    api: tuple[str, int] = ("127.0.0.1", 8080)
    dns: tuple[str, int] = ("127.0.0.1", 5353)
    state: Path = Path("./var")
    log_level: str = "info"
    #: (certificate chain, private key) PEM paths: REST over HTTPS when set
    api_tls: tuple[Path, Path] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Component(Protocol):
    name: str

    async def start(self, rt: Runtime) -> None: ...

    async def stop(self) -> None: ...


class Runtime:
    """Everything a component may use: store, bus, writer, config, settings, metrics."""

    def __init__(self, cfg: NetworkConfig | None, settings: Settings,
                 store: SqliteStore | None = None) -> None:
        self.cfg = cfg
        self.settings = settings
        self.store = store or SqliteStore(settings.state / "state.db")
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

    def _on_commit(self, changes: list[Change], actor: str, reason: str) -> None:
        self.bus.publish(StateChanged(changes=tuple(changes), actor=actor, reason=reason))

    def apply_config(self) -> None:
        if self.cfg is None:
            return
        res = apply_config(self.store, self.cfg)
        if res.unchanged:
            log.info("config %s unchanged since last apply; state kept as stored",
                     self.cfg.source)
        else:
            key_event(log, "config applied", source=self.cfg.source, created=res.created,
                      updated=res.updated, deleted=res.deleted)

    async def start(self, components: list[Component]) -> None:
        self.bus.bind(asyncio.get_running_loop())
        self.stopping = asyncio.Event()
        self.components = components
        for comp in components:
            try:
                await comp.start(self)
            except Exception as exc:
                log.error("component %s failed to start: %s", comp.name, exc)
                await self.stop()
                raise
            self.started.append(comp)
            log.info("component %s started", comp.name)

    async def stop(self) -> None:
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
        key_event(log, "controller running", api=f"{self.settings.api[0]}:"
                  f"{self.settings.api[1]}", state=str(self.settings.state))
        try:
            await self.stopping.wait()
        finally:
            key_event(log, "controller stopping")
            await self.stop()
            self.store.close()


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
