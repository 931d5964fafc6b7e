"""Across layers: SR policy intents over on-demand OTN links (GBA-5.2 hub interconnect,
GBA-6.4.2 optical-IP coordination, GBA-6.4.3e/f; issue 14 item 4).

Rules:
- An *on-demand* link is an IP ``Link`` (typically ``kind: otn`` between two hubs) whose
  capacity exists only while the optical layer lights an OTN path under it. The optical
  layer is reached through ``Transport``, an extension point: the optical plug-in
  registers its provider as ``rt.settings.extra[TRANSPORT_KEY]``; the Protocols are
  structural, so optical does not import srv6 (srv6 → optical is the allowed direction,
  docs/architecture.md §2).
- Before a pass programs anything, every on-demand link that a planned path (active or
  backup) of an intent crosses is *ensured*: the provider provisions the optical path
  (all-or-nothing on the NEs) and returns only when it is up and read back from every NE
  on it — or with the optical reason it cannot be (no free channel, OSNR reach, an NE
  refusing or unreachable). Only then are the SRv6 routes programmed over the link.
- A link that cannot be provisioned is taken out of the topology for the pass and the
  intents are planned again: an intent that still has a path takes it (IP fallback); one
  that has none fails with ``constraint: optical:<what>`` naming the link and the
  optical reason — nothing of it is programmed. The link is tried again after
  ``RETRY_S`` (not at every pass: a refused NE edit costs a round trip per NE).
- Release: after a pass that left every router as planned (nothing frozen or held), an
  on-demand link with an optical path that no planned path crosses any more — its
  routes are gone from the routers — is released (deleted on the NEs, read back). A
  failed release is retried at the next settled pass.
- Runs inside the reconciler's pass (its worker thread), so it is leader-only like the
  reconciler; the provider's calls block that thread, never the event loop.
- Start-up: the optical plug-in starts after the reconciler. While the config names
  on-demand links (``optical.otn_links``) and no provider is registered yet, passes are
  skipped (for at most ``STARTUP_WAIT_S``): a pass without it would either program
  routes over a link whose OTN path may not exist or, worse, re-plan around working
  OTN paths and tear them down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from controller.logs import key_event
from srv6.intents.planner import IntentPlan, Plan

log = logging.getLogger("cpn.srv6.crosslayer")

#: where the optical plug-in registers its provider (``Runtime.settings.extra``)
TRANSPORT_KEY = "srv6-transport"
#: a link whose optical path could not be provisioned is tried again after this (s)
RETRY_S = 10.0
#: passes wait at most this long (s, from the first wait) for the optical provider
STARTUP_WAIT_S = 60.0


def awaiting_transport(rt: Any, since: dict[str, float]) -> bool:
    """The config names on-demand OTN links but no provider is registered yet (and the
    wait has not exceeded ``STARTUP_WAIT_S``): the pass should wait (module rules).
    ``since`` is the caller's memory of when the wait began."""
    if isinstance(rt.settings.extra.get(TRANSPORT_KEY), Transport):
        since.clear()
        return False
    cfg = getattr(rt, "cfg", None)
    sec = cfg.sections.get("optical") if cfg is not None else None
    if not getattr(sec, "otn_links", None):
        return False
    if "first" not in since:
        since["first"] = time.monotonic()
        log.info("intent passes wait for the optical layer (optical.otn_links) to start")
    if time.monotonic() - since["first"] > STARTUP_WAIT_S:
        if "gave_up" not in since:
            since["gave_up"] = time.monotonic()  # said once
            log.error("the optical layer did not register its OTN transport within %g s; "
                      "intents are planned without it (fix: check the optical: section "
                      "and the NEs)", STARTUP_WAIT_S)
        return False
    return True


@dataclass(frozen=True, slots=True)
class TransportResult:
    """What the optical layer did for one on-demand ``link``: ``ok``; else
    ``constraint`` (``optical:no-wavelength``, ``optical:osnr-infeasible``,
    ``optical:no-route``, ``optical:ne-refused``, ``optical:ne-unreachable``,
    ``optical:readback``), ``reason`` and ``fix`` for a person; ``path`` (the optical
    path id), ``nes`` (the NEs it crosses), ``channel``, ``elapsed_ms``."""

    link: str
    ok: bool
    constraint: str = ""
    reason: str = ""
    fix: str = ""
    path: str = ""
    nes: tuple[str, ...] = ()
    channel: int = 0
    elapsed_ms: float = 0.0


class TransportOutcome(Protocol):
    """What a provider answers (``TransportResult`` or the provider's own frozen
    dataclass with the same fields: the optical package does not import srv6)."""

    @property
    def link(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def constraint(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def fix(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def nes(self) -> tuple[str, ...]: ...
    @property
    def channel(self) -> int: ...
    @property
    def elapsed_ms(self) -> float: ...


@runtime_checkable
class Transport(Protocol):
    """The optical layer as the SR policy reconciler needs it (one provider)."""

    def on_demand(self) -> Collection[str]:
        """Keys of the IP links whose capacity the optical layer provides on demand."""
        ...

    def up(self, link: str) -> bool:
        """The link's optical path exists, is active and was read back (no I/O)."""
        ...

    def provisioned(self) -> Collection[str]:
        """On-demand links that have an optical path of ours (in any state)."""
        ...

    def ensure(self, link: str) -> TransportOutcome:
        """Provision the link's optical path if needed; return once it is up and read
        back from its NEs, or with why not. Blocking; never called on the event loop."""
        ...

    def release(self, link: str) -> TransportOutcome:
        """Delete the link's optical path from its NEs and read back that it is gone."""
        ...


def links_of(plan: Plan) -> set[str]:
    """Links crossed by the planned paths (active and backup) of the intents that plan
    ok."""
    out: set[str] = set()
    for ip in plan.intents.values():
        if ip.ok:
            for view in (ip.active, ip.backup):
                if view is not None:
                    out.update(view.links)
    return out


@dataclass
class CrossLayer:
    """The reconciler's cross-layer step (see the module rules). ``events`` keeps the
    last results (newest last) for status views and labs."""

    transport: Transport
    retry_s: float = RETRY_S
    clock: Callable[[], float] = time.monotonic
    failed: dict[str, tuple[TransportOutcome, float]] = field(default_factory=dict)
    events: list[TransportOutcome] = field(default_factory=list)
    lit: dict[str, TransportOutcome] = field(default_factory=dict)  # link → its ensure

    def before(self, plan: Plan, replan: Callable[[set[str]], Plan]) -> Plan:
        """``plan`` with every on-demand link it crosses up, or re-planned without the
        links that could not be brought up (intents left without a path fail naming
        the optical constraint)."""
        demand = set(self.transport.on_demand())
        if not demand:
            return plan
        original = plan
        down: dict[str, TransportOutcome] = {}
        for _ in range(len(demand) + 1):
            new = self._bring_up(sorted((links_of(plan) & demand) - set(down)))
            if not new:
                break
            down |= new
            plan = replan(set(down))
        if down:
            plan = _explain(original, plan, down)
        return self._annotate(plan, demand)

    def _annotate(self, plan: Plan, demand: set[str]) -> Plan:
        """Intents riding an on-demand link say so (and on which OTN path) in their
        reason."""
        intents = dict(plan.intents)
        for key, ip in plan.intents.items():
            if not ip.ok or ip.active is None:
                continue
            on = [lk for lk in ip.active.links if lk in demand and lk in self.lit]
            if on:
                what = ", ".join(f"{lk} (OTN path {self.lit[lk].path}, channel "
                                 f"{self.lit[lk].channel})" for lk in on)
                intents[key] = replace(ip, reason=f"{ip.reason}; over on-demand {what}")
        return Plan(plan.nodes, intents)

    def _bring_up(self, links: list[str]) -> dict[str, TransportOutcome]:
        bad: dict[str, TransportOutcome] = {}
        now = self.clock()
        for link in links:
            if self.transport.up(link):
                self.failed.pop(link, None)
                continue
            prev = self.failed.get(link)
            if prev is not None and now - prev[1] < self.retry_s:
                bad[link] = prev[0]
                continue
            try:
                res: TransportOutcome = self.transport.ensure(link)
            except Exception as exc:  # the provider's own bug: the link is unavailable
                log.exception("optical transport failed to ensure %s", link)
                res = TransportResult(link, False, "optical:error", f"{type(exc).__name__}: "
                                      f"{exc}", "see the controller log (cpn.optical)")
            self._note(res)
            if res.ok:
                self.failed.pop(link, None)
                self.lit[link] = res
                key_event(log, "OTN path up for intents", link=link, path=res.path,
                          channel=res.channel, nes="-".join(res.nes),
                          ms=round(res.elapsed_ms, 1))
            else:
                self.failed[link] = (res, self.clock())
                bad[link] = res
                key_event(log, "OTN path not available for intents", link=link,
                          constraint=res.constraint, reason=res.reason, fix=res.fix)
        return bad

    def after(self, plan: Plan, settled: bool) -> list[TransportOutcome]:
        """Release the optical paths no planned path needs any more — only when the pass
        ``settled`` (every router holds the plan, so no route still uses them)."""
        if not settled:
            return []
        unused = set(self.transport.provisioned()) - links_of(plan)
        out = []
        for link in sorted(unused):
            try:
                res: TransportOutcome = self.transport.release(link)
            except Exception as exc:
                log.exception("optical transport failed to release %s", link)
                res = TransportResult(link, False, "optical:error", str(exc))
            self._note(res)
            out.append(res)
            if res.ok:
                self.failed.pop(link, None)
                self.lit.pop(link, None)
                key_event(log, "OTN path released: no intent needs it", link=link,
                          path=res.path, ms=round(res.elapsed_ms, 1))
            else:
                key_event(log, "OTN path not released (retried next pass)", link=link,
                          reason=res.reason)
        return out

    def _note(self, res: TransportOutcome) -> None:
        self.events.append(res)
        del self.events[:-50]


def _explain(original: Plan, plan: Plan, down: Mapping[str, TransportOutcome]) -> Plan:
    """Intents that crossed a link the optical layer could not bring up and have no
    path without it fail naming the optical constraint; the others keep their new
    path, with the reason saying why they moved."""
    intents: dict[str, IntentPlan] = dict(plan.intents)
    for key, before in original.intents.items():
        if not before.ok or key not in intents:
            continue
        crossed = [lk for v in (before.active, before.backup) if v is not None
                   for lk in v.links if lk in down]
        if not crossed:
            continue
        res = down[crossed[0]]
        why = (f"its path crosses on-demand link {res.link}, whose OTN path could not be "
               f"provisioned: {res.reason}")
        now = intents[key]
        if now.ok:
            intents[key] = replace(now, reason=f"{now.reason}; not on {res.link}: {why}"
                                   if now.reason else f"not on {res.link}: {why}")
        else:
            intents[key] = IntentPlan(key, False, res.constraint or "optical",
                                      f"no path without {res.link}: {why}",
                                      res.fix or "free optical capacity between the hubs "
                                      "or relax the intent's constraints")
    return Plan(plan.nodes, intents)


def view(rt: Any) -> dict[str, Any]:
    """``GET /api/v1/srv6/otn-links``: every on-demand link — ``up`` (path active and
    read back), ``provisioned``, ``used_by`` (intents whose programmed path or backup
    crosses it), ``last`` (the last ensure/release result), ``failed`` (the refusal
    being held until the retry, with ``retry_in_s``)."""
    from dataclasses import asdict, is_dataclass

    from srv6.intents.models import SrPolicyIntentStatus

    t = rt.settings.extra.get(TRANSPORT_KEY)
    if not isinstance(t, Transport):
        return {"items": [], "transport": "none registered: give optical.otn_links in the "
                                          "config (the optical plug-in registers it)"}
    rec = rt.settings.extra.get("srv6-intents")
    xl: CrossLayer | None = getattr(rec, "crosslayer", None)
    statuses = rt.store.list(SrPolicyIntentStatus)
    provisioned = set(t.provisioned())
    now = time.monotonic()

    def plain(res: TransportOutcome | None) -> dict[str, Any] | None:
        if res is None:
            return None
        return asdict(res) if is_dataclass(res) and not isinstance(res, type) else {
            "ok": res.ok, "reason": res.reason}

    items = []
    for link in sorted(t.on_demand()):
        used = sorted(s.key for s in statuses if any(
            v is not None and link in v.links for v in (s.active, s.backup)))
        last = next((e for e in reversed(xl.events) if e.link == link), None) if xl else None
        held = xl.failed.get(link) if xl else None
        items.append({"link": link, "up": t.up(link), "provisioned": link in provisioned,
                      "used_by": used, "last": plain(last),
                      "failed": None if held is None else {
                          **(plain(held[0]) or {}),
                          "retry_in_s": round(max(0.0, xl.retry_s - (now - held[1])), 1)
                          if xl else None}})
    return {"items": items, "transport": type(t).__name__}
