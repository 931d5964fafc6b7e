"""Plugin: BGP compute awareness (issue #3) — ExaBGP speaker + ingest into the store.

Rules:
- Present only when the config has a ``bgp:`` section (``telemetry.bgp.models``).
- ``BgpComponent`` wires ``ExaBgpSpeaker`` (process) → ``ExaBgpDecoder`` (sans-I/O)
  → ``BgpIngestCore`` (store). Decoded events are also published on the bus.
  Per-peer sessions, updates, rejects and routes are on ``/metrics``
  (``telemetry.bgp.metrics``).
  Store writes are flushed by one task every ``flush_ms``, in batches of
  ``batch`` records with a loop yield between batches (flood safety); a commit that
  failed is retried a second later (the records stay staged).
- In a cluster (issue 16) every controller with a ``bgp:`` section runs its speaker and
  keeps its sessions and Adj-RIB-In (warm standby), but only the leader commits: BGP
  has no timestamps of its own, so two replicas committing the same announce/withdraw
  sequence interleaved could bring a withdrawn route back. A follower's derived
  records wait staged (coalesced per key, so bounded); on election they are committed
  at once through source precedence; on step-down the replica stops committing.
  While nobody leads, the stored BGP state stays as it was (headless).
- Cheap to import: heavy modules are imported inside functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from telemetry.bgp.models import BgpConfig

if TYPE_CHECKING:
    from controller.events import StateChanged
    from controller.runtime import Runtime
    from telemetry.bgp.decoder import ExaBgpDecoder
    from telemetry.bgp.ingest import BgpIngestCore
    from telemetry.bgp.speaker import ExaBgpSpeaker

log = logging.getLogger("cpn.telemetry.bgp")

CONFIG_SECTIONS = {"bgp": BgpConfig}


class BgpComponent:
    """The controller's BGP speaker and ingest."""

    name = "bgp"

    def __init__(self, cfg: BgpConfig, wrap: list[str] | None = None) -> None:
        self.cfg = cfg
        self.wrap = wrap
        self.core: BgpIngestCore | None = None
        self.decoder: ExaBgpDecoder | None = None
        self.speaker: ExaBgpSpeaker | None = None
        self._rt: Runtime | None = None
        self._dirty = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._unsub: Any = None
        self._collector: Any = None
        #: commits to the store (always on one controller; the leader's in a cluster)
        self.committing = True

    async def start(self, rt: Runtime) -> None:
        from controller.events import StateChanged
        from telemetry.bgp.codec import codec_by_name
        from telemetry.bgp.decoder import ExaBgpDecoder
        from telemetry.bgp.ingest import BgpIngestCore
        from telemetry.bgp.speaker import ExaBgpSpeaker

        self._rt = rt
        self.join_cluster(rt)
        self.decoder = ExaBgpDecoder(codec_by_name(self.cfg.codec))
        self.core = BgpIngestCore(self.cfg, rt.store)
        if self._collector is None:
            from telemetry.bgp.metrics import BgpCollector

            self._collector = BgpCollector(lambda: self.core)
            rt.metrics.register(self._collector)
        self._unsub = rt.bus.on(StateChanged, self._on_state)
        self._dirty = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_loop(), name="bgp-flush")
        self.speaker = ExaBgpSpeaker(self.cfg, rt.settings.state / "bgp", self.on_data,
                                     self.on_exit, wrap=self.wrap)
        for p in self.cfg.peers:  # GBA-6.7: a session not up within the grace is an alarm
            rt.sessions.expect("bgp", str(p.address), p.site)
        await self.speaker.start()
        self._dirty.set()  # commit the at-start staleness

    def _on_state(self, ev: StateChanged) -> None:
        if self.core is not None and "service" in ev.kinds():
            self.core.services_changed()
            if self.core.pending:
                self._dirty.set()

    def on_data(self, data: bytes) -> None:
        assert self.decoder is not None and self.core is not None and self._rt is not None
        events = self.decoder.feed(data)
        self.core.handle(events)
        self._sessions(events)
        for ev in events:
            self._rt.bus.publish(ev)
        if self.core.pending:
            self._dirty.set()

    def _sessions(self, events: list[Any]) -> None:
        """Session transitions into ``rt.sessions`` (alarms, /metrics, the console)."""
        from telemetry.bgp.decoder import PeerDown, PeerUp, SpeakerShutdown

        assert self._rt is not None
        for ev in events:
            if isinstance(ev, PeerUp):
                self._rt.sessions.up("bgp", ev.peer, self.cfg.site_of(ev.peer))
            elif isinstance(ev, PeerDown):
                self._rt.sessions.down("bgp", ev.peer, ev.reason or "peer down",
                                       self.cfg.site_of(ev.peer))
            elif isinstance(ev, SpeakerShutdown):
                for p in self.cfg.peers:
                    self._rt.sessions.down("bgp", str(p.address), "exabgp shut down", p.site)

    def on_exit(self, rc: int) -> None:
        if self._rt is not None:
            for p in self.cfg.peers:
                self._rt.sessions.down("bgp", str(p.address), f"exabgp exited ({rc})", p.site)
        if self.core is not None:
            self.core.speaker_gone(f"exabgp exited ({rc})")
            self._dirty.set()

    def join_cluster(self, rt: Any) -> None:
        """In a cluster: commit only while this replica leads (module rules)."""
        if rt.leadership.elected:
            self.committing = False
            rt.when_leading("bgp-ingest", self._lead, self._follow)

    async def _lead(self) -> None:
        """Elected: commit what this replica's sessions derived (at once), then on."""
        from controller.logs import key_event

        self.committing = True
        key_event(log, "bgp ingest committing", backlog=self.core.backlog() if self.core
                  else 0)
        self._dirty.set()

    async def _follow(self) -> None:
        self.committing = False

    async def _flush_loop(self) -> None:
        assert self.core is not None
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if not self.committing:
                continue  # a follower: records stay staged until it leads
            if self.cfg.flush_ms:
                await asyncio.sleep(self.cfg.flush_ms / 1000)
            while self.committing and self.core.flush():
                await asyncio.sleep(0)  # let the loop breathe between batches
            if self.committing and self.core.backlog():  # a commit failed: retry soon
                asyncio.get_running_loop().call_later(1.0, self._dirty.set)

    async def stop(self) -> None:
        if self.speaker is not None:
            await self.speaker.stop()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self.core is not None and self.committing:
            while self.core.flush():
                pass
        if self._unsub is not None:
            self._unsub()
        if self._collector is not None and self._rt is not None:
            self._rt.metrics.unregister(self._collector)
            self._collector = None


def components(rt: Runtime) -> list[BgpComponent]:
    sec = rt.cfg.sections.get("bgp") if rt.cfg is not None else None
    if not isinstance(sec, BgpConfig):
        return []
    return [BgpComponent(sec)]
