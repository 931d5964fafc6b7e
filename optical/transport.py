"""On-demand OTN links for SR policy intents: the optical provider of the reconciler's
``Transport`` extension point (``srv6.intents.crosslayer``; GBA-5.2, GBA-6.4.2;
issue 14 item 4).

Rules:
- The ``optical.otn_links`` config section names, per IP link key, the two NEs its OTN
  path joins (hub to hub) and the rate. The component registers one ``OtnTransport`` as
  ``rt.settings.extra["srv6-transport"]`` when that map is not empty.
- The link's optical path has the id ``xl-<link key>`` (``~`` → ``.``), is planned as a
  hub request (``Request.hub``), is journaled like any path (``optical.persist``) and
  carries the IP link (``ip_links``): the link inherits the path's state and SRLGs.
- ``ensure`` plans first (RWA, pure): no route / no free channel / OSNR reach are
  answered without touching any NE. Otherwise the path is provisioned all-or-nothing
  (``optical.provision``), awaited until ``active`` (an unreachable NE leaves it
  ``pending``, retried by the optical controller; the caller hears ``ne-unreachable``
  after ``wait_s``) and read back: every NE on the path must hold its cross-connect.
  A refused path is forgotten (nothing was left on any NE).
- ``release`` deletes the path (cross-connects removed on every NE, all-or-nothing) and
  reads back that no NE holds them. A path being restored (``restoring``) is not
  released: it still belongs to a link that is coming back.
- Registered as ``rt.settings.extra["srv6-transport"]``; it satisfies the reconciler's
  structural ``Transport`` Protocol without importing srv6 (srv6 → optical is the
  allowed import direction).
- The reconciler calls from its worker thread; the work runs on the event loop that
  owns the optical controller (``run_coroutine_threadsafe``), never blocking it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from controller.errors import CpnError
from optical.config import OtnLinkSpec
from optical.models import OpticalPath, PathState
from optical.rwa import Request, RwaStatus, plan
from optical.service import OpticalController

#: the fix an operator gets for each optical refusal
FIXES = {
    "no-route": "the NEs report no fibre route between the two hubs: check the fibres "
                "and the NEs' links (GET /api/v1/optical/links)",
    "no-wavelength": "no channel is free end to end: delete an unused optical path "
                     "(GET /api/v1/optical/paths) or light another fibre",
    "osnr-infeasible": "the hubs are beyond optical reach (OSNR): add a regenerator or an "
                       "amplified route, or lower optical.margin_db if the margin allows",
    "no-disjoint-protect": "no SRLG-disjoint protect route: set protect: false on the "
                           "otn_links entry or add a diverse fibre",
    "ne-refused": "see the NE's rpc-error in the reason; nothing was left on any NE",
    "ne-unreachable": "check the NE's NETCONF session (GET /api/v1/optical/topology); "
                      "the optical path is retried in the background",
    "readback": "an NE does not hold the cross-connect it accepted: check the NE "
                "(its datastore may have been changed by hand)",
}


@dataclass(frozen=True, slots=True)
class TransportResult:
    """What was done for one on-demand ``link`` (fields as in
    ``srv6.intents.crosslayer.TransportResult``, which this package does not import):
    ``ok``; else ``constraint`` (``optical:<rwa status>``, ``optical:ne-refused``,
    ``optical:ne-unreachable``, ``optical:readback``), ``reason``, ``fix``; ``path``,
    ``nes``, ``channel``, ``elapsed_ms``."""

    link: str
    ok: bool
    constraint: str = ""
    reason: str = ""
    fix: str = ""
    path: str = ""
    nes: tuple[str, ...] = ()
    channel: int = 0
    elapsed_ms: float = 0.0


def path_id(link: str) -> str:
    return "xl-" + link.replace("~", ".")


class OtnTransport:
    """``Transport`` for the reconciler over one ``OpticalController`` (module rules)."""

    def __init__(self, ctl: OpticalController, links: Mapping[str, OtnLinkSpec],
                 loop: asyncio.AbstractEventLoop, wait_s: float = 20.0) -> None:
        self.ctl, self.links, self.loop, self.wait_s = ctl, dict(links), loop, wait_s
        self._verified: set[str] = set()  # path ids read back since they became active

    # --- the Transport protocol (any thread, the reconciler's in practice) ------------
    def on_demand(self) -> Collection[str]:
        return tuple(self.links)

    def up(self, link: str) -> bool:
        pid = path_id(link)
        p = self.ctl.paths.get(pid)
        if p is None or p.state is not PathState.ACTIVE:
            self._verified.discard(pid)
            return False
        return pid in self._verified

    def provisioned(self) -> Collection[str]:
        return [lk for lk in self.links if path_id(lk) in self.ctl.paths]

    def ensure(self, link: str) -> TransportResult:
        return self._call(self._ensure(link), link)

    def release(self, link: str) -> TransportResult:
        return self._call(self._release(link), link)

    def _call(self, coro: Coroutine[Any, Any, TransportResult], link: str
              ) -> TransportResult:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("OtnTransport called on its own event loop: call it from "
                               "a worker thread")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(self.wait_s + 30)
        except TimeoutError:
            fut.cancel()
            return TransportResult(link, False, "optical:ne-unreachable",
                                   f"the optical layer did not answer within "
                                   f"{self.wait_s + 30:g} s", FIXES["ne-unreachable"],
                                   path_id(link))

    # --- on the optical controller's loop ---------------------------------------------
    async def _ensure(self, link: str) -> TransportResult:
        t0 = time.monotonic()
        pid = path_id(link)
        spec = self.links.get(link)
        if spec is None:
            return self._fail(link, "no-route", f"link {link} is not in optical.otn_links",
                              t0)
        path = self.ctl.paths.get(pid)
        if path is not None and path.state is PathState.FAILED:
            await self.ctl.delete_path(pid)  # a failed path holds nothing on any NE
            path = None
        if path is None:
            req = Request(pid, spec.a, spec.z, spec.rate, spec.protect, hub=True)
            p = plan(self.ctl.network(), req, self.ctl.k, self.ctl.osnr)
            if p.status not in (RwaStatus.OK, RwaStatus.GROOMED):
                return self._fail(link, p.status.value, f"{spec.a}–{spec.z}: "
                                  f"{p.status.value}: {p.reason}", t0)
            try:
                path = await self.ctl.create_path(req, (link,))
            except CpnError as exc:
                if pid in self.ctl.paths:  # refused: rolled back on every NE
                    await self.ctl.delete_path(pid)
                return self._fail(link, "ne-refused", str(exc), t0)
        live = path
        if not await self.ctl.wait_for(lambda: live.state is PathState.ACTIVE, self.wait_s):
            return self._fail(link, "ne-unreachable", f"optical path {pid} is "
                              f"{live.state.value} after {self.wait_s:g} s: {live.error}",
                              t0, live)
        missing = await self._readback(live, present=True)
        if missing:
            return self._fail(link, "readback", f"optical path {pid}: cross-connect "
                              f"missing on {', '.join(missing)} after commit", t0, live)
        self._verified.add(pid)
        return self._ok(link, live, t0)

    async def _release(self, link: str) -> TransportResult:
        t0 = time.monotonic()
        pid = path_id(link)
        path = self.ctl.paths.get(pid)
        if path is None:
            return TransportResult(link, True, path=pid)
        if path.state is PathState.RESTORING:
            return self._fail(link, "restoring", f"optical path {pid} is being restored; "
                              "released once it settles", t0, path)
        try:
            await self.ctl.delete_path(pid)
        except CpnError as exc:
            return self._fail(link, "ne-refused", f"release of {pid}: {exc}", t0, path)
        self._verified.discard(pid)
        if path.state is PathState.DOWN and self.ctl.on_ip_link is not None:
            # a released link is available on demand again (planned as up; provisioned
            # afresh, avoiding down fibres, when an intent needs it)
            self.ctl.on_ip_link(link, True, [])
        if path.state is not PathState.FAILED:
            left = await self._readback(path, present=False)
            if left:
                return self._fail(link, "readback", f"optical path {pid}: cross-connect "
                                  f"still on {', '.join(left)} after delete", t0, path)
        return self._ok(link, path, t0)

    async def _readback(self, path: OpticalPath, present: bool) -> list[str]:
        """NEs whose running datastore disagrees (the path's cross-connects present or
        absent), each re-read over NETCONF now."""
        bad = []
        for lp in (path.working, path.protect):
            if lp is None:
                continue
            for ne in lp.nodes:
                try:
                    snap = await self.ctl.refresh(ne)
                except CpnError as exc:
                    bad.append(f"{ne} (unreadable: {exc})")
                    continue
                held = snap is not None and lp.id in snap.config.xcs
                if held != present:
                    bad.append(ne)
        return bad

    def _ok(self, link: str, path: OpticalPath, t0: float) -> TransportResult:
        return TransportResult(link, True, path=path.id, nes=path.working.nodes,
                               channel=path.working.channel,
                               elapsed_ms=(time.monotonic() - t0) * 1e3)

    def _fail(self, link: str, what: str, reason: str, t0: float,
              path: OpticalPath | None = None) -> TransportResult:
        return TransportResult(link, False, f"optical:{what}", reason,
                               FIXES.get(what, ""), path_id(link),
                               path.working.nodes if path else (),
                               path.working.channel if path else 0,
                               (time.monotonic() - t0) * 1e3)
