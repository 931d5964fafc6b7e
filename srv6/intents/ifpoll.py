"""IP interface state over NETCONF for routers that are not Linux namespaces we can
enter: RFC 8343 ``ietf-interfaces`` read from each device's NMDA operational datastore
(``optical.ifstate``: sans-I/O parser and diff; ``optical.netconf.NetconfDevice``:
ncclient) every ``period_s``, turned into link events.

Rules:
- One reading per device per period; the first reading counts as a change (every
  interface's state is reported once).
- ``up``/``down`` events go to ``on_link(node, interface, up)`` — the reconciler maps
  the interface to its link through ``intents.nodes.<node>.devs`` and writes
  ``Link.state``; utilisation samples are logged at debug level only.
- A device that cannot be read is logged once per outage (with the fix) and retried
  next period; its interfaces keep their last known state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field

from controller.errors import CpnError
from controller.models.base import Model, Name

log = logging.getLogger("cpn.srv6.ifpoll")


class IfStateDevice(Model):
    """A router read over NETCONF for interface state: ``node`` (topology name),
    ``host``, ``port``, ``user``, ``key`` (SSH private key file)."""

    node: Name
    host: str = "127.0.0.1"
    port: int = Field(default=830, ge=1, le=65535)
    user: str = "root"
    key: str | None = None


class InterfacePoller:
    """Polls ``devices`` every ``period_s`` and reports interface up/down."""

    def __init__(self, devices: Sequence[IfStateDevice], period_s: float,
                 on_link: Callable[[str, str, bool], None]) -> None:
        from optical.netconf import NetconfDevice

        self.period_s = period_s
        self.on_link = on_link
        self._devs = [(d.node, NetconfDevice(d.node, d.host, d.port, d.user, d.key))
                      for d in devices]
        self._last: dict[str, dict[str, Any]] = {}
        self._failing: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="srv6-ifpoll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _node, dev in self._devs:
            with contextlib.suppress(Exception):
                await dev.close()

    async def poll_once(self) -> None:
        from optical.ifstate import diff

        for node, dev in self._devs:
            t = time.monotonic()
            try:
                cur = await dev.interfaces()
            except (CpnError, OSError) as exc:
                if node not in self._failing:
                    self._failing.add(node)
                    log.warning("interface state of %s over NETCONF unavailable: %s; fix: "
                                "check its NETCONF server (ietf-interfaces, NMDA)", node, exc)
                continue
            self._failing.discard(node)
            prev = self._last.get(node)
            events = diff(node, prev["state"] if prev else {}, cur,
                          t - prev["t"] if prev else 0.0)
            self._last[node] = {"state": cur, "t": t}
            for ev in events:
                if ev.kind in ("up", "down"):
                    self.on_link(node, ev.interface, ev.kind == "up")
                else:
                    log.debug("%s %s utilisation %.2f %%", node, ev.interface, ev.value)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                log.exception("interface poll failed; retrying")
            await asyncio.sleep(self.period_s)
