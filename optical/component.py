"""Controller component: runs ``OpticalController`` for the NEs of the ``optical:`` section.

Rules:
- Registered as ``rt.settings.extra["optical"]`` so REST routes can find it.
- Cross-layer (GBA-6.4.2e): an IP ``Link`` riding on an optical path gets that path's
  state and SRLGs through the store (one transaction per change, actor ``optical``).
- Paths are stored and journaled (``optical.persist``) and resumed on start.
- With ``otn_links``, the SR policy reconciler's transport provider
  (``optical.transport.OtnTransport``) is registered as
  ``rt.settings.extra["srv6-transport"]`` once the NEs are attached, and removed on stop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from controller.models import Link
from controller.models.link import LinkState
from optical.config import OpticalSection
from optical.models import OpticalPath
from optical.netconf import NetconfDevice
from optical.persist import OpticalPathRecord, from_record, to_record
from optical.rwa import OsnrModel
from optical.service import OpticalController

if TYPE_CHECKING:
    from controller.runtime import Runtime

log = logging.getLogger("cpn.optical")


class OpticalComponent:
    name = "optical"
    leader_only = True  # provisions NEs (issue 16: the leader only)

    def __init__(self, section: OpticalSection) -> None:
        self.section = section
        self.ctl: OpticalController | None = None
        self.rt: Runtime | None = None

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        s = self.section
        devices = {n.name: NetconfDevice(n.name, n.host, n.port, n.user, n.key)
                   for n in s.ne}
        self.ctl = OpticalController(devices, k=s.k, osnr=OsnrModel(margin_db=s.margin_db),
                                     on_ip_link=self._ip_link, retry_max_s=s.retry_max_s,
                                     confirm_timeout_s=s.confirm_timeout_s,
                                     on_path=self._store_path)
        rt.settings.extra["optical"] = self
        stored = [from_record(r) for r in rt.store.list(OpticalPathRecord)]
        if stored:
            log.info("optical: %d stored path(s) resumed: %s", len(stored),
                     ", ".join(p.id for p in stored))
        await self.ctl.start(stored)
        if s.otn_links:
            import asyncio

            from optical.transport import OtnTransport

            unknown = sorted(k for k in s.otn_links if rt.store.get(Link, k) is None)
            if unknown:
                log.error("optical.otn_links names unknown IP link(s) %s; fix: use the "
                          "keys GET /api/v1/links lists (a~b or the link's id)",
                          ", ".join(unknown))
            # the SR policy reconciler's extension point (srv6.intents.crosslayer)
            rt.settings.extra["srv6-transport"] = OtnTransport(
                self.ctl, s.otn_links, asyncio.get_running_loop(), s.otn_wait_s)

    def _store_path(self, path: OpticalPath, event: str | None) -> None:
        """Journal the path's event (or its deletion) in the store (``optical.persist``)."""
        assert self.rt is not None
        with self.rt.store.transaction("optical", f"optical path {path.id}: "
                                       f"{event or 'deleted'}"[:500]) as txn:
            if event is None:
                if txn.get(OpticalPathRecord, path.id) is not None:
                    txn.delete(OpticalPathRecord, path.id)
            else:
                txn.put(to_record(path))

    def _ip_link(self, key: str, up: bool, srlgs: list[str]) -> None:
        assert self.rt is not None
        link = self.rt.store.get(Link, key)
        if link is None:
            log.warning("optical path carries unknown IP link %s", key)
            return
        new = link.model_copy(update={"state": LinkState.UP if up else LinkState.DOWN,
                                      "srlgs": srlgs})
        if new != link:
            with self.rt.store.transaction("optical", f"optical layer: {key} "
                                           f"{'up' if up else 'down'}") as txn:
                txn.put(new)

    async def stop(self) -> None:
        if self.rt is not None:
            self.rt.settings.extra.pop("srv6-transport", None)
        if self.ctl is not None:
            await self.ctl.stop()
