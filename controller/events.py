"""Typed asyncio event bus connecting observers, planners and programmers.

Rules:
- An event is a frozen dataclass deriving from ``Event``. Subscribers choose the
  event types they want (a subclass matches its base types too).
- ``publish`` never blocks and may be called from any thread: the event is handed
  to the bus loop with ``call_soon_threadsafe`` when called off-loop.
- Each subscription has a bounded queue. When a slow subscriber's queue is full,
  the oldest event is dropped and counted (``dropped``) so a flood of metric
  updates cannot starve the loop or grow memory without bound; events that must
  never be dropped use ``critical=True`` subscriptions (unbounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from controller.store.base import Change

log = logging.getLogger(__name__)

EV = TypeVar("EV", bound="Event")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base event; ``ts`` is wall-clock seconds when the event was created."""

    ts: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged(Event):
    """Committed store changes (one transaction) with who and why."""

    changes: tuple[Change, ...]
    actor: str = ""
    reason: str = ""

    def kinds(self) -> set[str]:
        return {c.kind for c in self.changes}


class Subscription:
    """A bounded queue of events of some types; iterate it with ``async for``."""

    def __init__(self, bus: EventBus, types: tuple[type[Event], ...], maxsize: int) -> None:
        self._bus = bus
        self.types = types
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.queue.maxsize and self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventBus:
    """Fan-out of typed events to subscriptions and synchronous handlers."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._subs: list[Subscription] = []
        self._handlers: list[tuple[tuple[type[Event], ...], Callable[[Any], None]]] = []
        self.published = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, *types: type[Event], maxsize: int = 10_000,
                  critical: bool = False) -> Subscription:
        sub = Subscription(self, types or (Event,), 0 if critical else maxsize)
        self._subs.append(sub)
        return sub

    def on(self, event_type: type[EV], handler: Callable[[EV], None]) -> Callable[[], None]:
        """Run ``handler(event)`` on the bus loop for each matching event."""
        entry: tuple[tuple[type[Event], ...], Callable[[Any], None]] = ((event_type,), handler)
        self._handlers.append(entry)
        return lambda: self._handlers.remove(entry)

    def _unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)

    def publish(self, event: Event) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._deliver(event)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event)
        else:
            loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: Event) -> None:
        self.published += 1
        for sub in list(self._subs):
            if isinstance(event, sub.types):
                sub.offer(event)
        for types, handler in list(self._handlers):
            if isinstance(event, types):
                try:
                    handler(event)
                except Exception:  # a broken handler must not break the bus
                    log.exception("event handler %r failed on %s", handler,
                                  type(event).__name__)
