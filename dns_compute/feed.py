"""Zone change events for applications (GBA-6.5h "subscribe"): SSE and long-poll.

Rules:
- An event is JSON: ``{"zone", "serial", "changed": [names], "built_at"}``; ``changed``
  lists owner names whose records differ from the previous version.
- Each subscriber has a bounded queue; a slow one loses the oldest events and is told
  so (``"lost": n`` on the next event) — it can re-read records by name.
- ``wait_newer(serial, timeout)`` serves long-poll: returns the latest event when its
  serial is newer than ``serial``, else waits up to ``timeout`` seconds (None on timeout).
- Must be used from the event loop thread (the keeper runs there).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from dns_compute.keeper import ZoneVersion

QUEUE_MAX = 256


class ChangeFeed:
    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None
        self._subs: list[tuple[asyncio.Queue[dict[str, Any]], list[int]]] = []
        self._newer = asyncio.Event() if _loop() else None

    def publish(self, version: ZoneVersion) -> None:
        event = {"zone": version.zone.origin, "serial": version.zone.serial,
                 "changed": list(version.changed), "built_at": version.built_at}
        self.latest = event
        for queue, lost in self._subs:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                lost[0] += 1
            queue.put_nowait({**event, "lost": lost[0]} if lost[0] else event)
            lost[0] = 0
        if self._newer is not None:
            self._newer.set()
            self._newer = asyncio.Event()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_MAX)
        self._subs.append((queue, [0]))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subs = [s for s in self._subs if s[0] is not queue]

    async def wait_newer(self, serial: int, timeout: float) -> dict[str, Any] | None:
        if self.latest is not None and self.latest["serial"] > serial:
            return self.latest
        if self._newer is None:
            self._newer = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._newer.wait()
        except TimeoutError:
            return None
        return self.latest

    def close(self) -> None:
        self._subs.clear()


def _loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
