"""A placement's network part is an SR policy intent (issue 14, GBA-6.4.3c, GBA-6.5f-8).

Rules:
- ``desired`` is pure: stored ``SchedulingDecision`` entities in, the SR policy intents
  they need out. A decision needs one when it placed something (``site``) with a
  network requirement (``bounds``: a delay bound or a bandwidth) from an ``origin``
  (the job's ``params.origin``, the flow's origin) — and, for a job, while the job
  holds its place (running or dispatched). The intent is
  ``origin ~ placement_color ~ <router serving the site>`` named ``place:<decision
  key>`` with ``max_delay_ms`` and ``min_bandwidth_mbps`` from the bounds, so the
  reconciler computes, programs and verifies it like any other intent and writes its
  status; ``cpn why intent KEY`` leads back to the decision.
- The router serving a site is the site itself when it is an intent endpoint, else the
  endpoint router that belongs to it (``Router.site``), else the endpoint linked to it
  (first by name). A decision that needs an intent but has no
  programmable headend or endpoint gets a ``problems`` line naming the fix, never a
  half-made intent.
- ``PlacementIntents`` (a leader-only component, started by ``scheduler.registration``
  when the config has an enabled ``intents:`` section) applies
  ``desired`` on every decision or job change in one transaction: new and changed
  intents put, ``place:*`` intents no decision needs any more deleted (released), the
  decision's ``intent`` field set.
- The decision's ``network`` field mirrors its intent's status (state, constraint,
  reason, fix) at every pass (it also wakes on intent status changes), and is
  ``failed`` naming the fix when no intent can be made (``problems``): a placement
  whose network part is infeasible says so on the decision, and DNS does not follow
  it (nothing half-applied: the reconciler programs nothing of a failed intent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from controller.events import StateChanged
from controller.logs import key_event
from controller.models import Job, Link, Router
from controller.models.job import HOLDING
from controller.runtime import stop_loop
from scheduler.decisions import NetworkPart, SchedulingDecision
from srv6.intents.models import SrPolicyIntentStatus
from srv6.models import Constraints, SrPolicyIntent

if TYPE_CHECKING:
    from controller.runtime import Runtime
    from controller.store import Store
    from srv6.intents.models import IntentsSection

log = logging.getLogger("cpn.srv6.placements")
PREFIX = "place:"
WATCH = frozenset({SchedulingDecision.KIND, "job", "link", "router",
                   SrPolicyIntentStatus.KIND})


def serving(site: str, endpoints: Iterable[str], links: Iterable[Link],
            routers: Iterable[Router] = ()) -> str | None:
    """The intent endpoint that serves ``site`` (itself, else its own router, else a
    linked endpoint)."""
    eps = set(endpoints)
    if site in eps:
        return site
    own = sorted(r.name for r in routers if r.site == site and r.name in eps)
    if own:
        return own[0]
    near = sorted({ln.b if ln.a == site else ln.a for ln in links
                   if site in (ln.a, ln.b)} & eps)
    return near[0] if near else None


def desired(decisions: Iterable[SchedulingDecision], holding: set[str],
            headends: Iterable[str], endpoints: Iterable[str], links: Iterable[Link],
            color: int, routers: Iterable[Router] = ()
            ) -> tuple[dict[str, SrPolicyIntent], dict[str, str]]:
    """(decision key → intent, decision key → why it has none though it needs one)."""
    heads, eps, lks, rts = set(headends), list(endpoints), list(links), list(routers)
    out: dict[str, SrPolicyIntent] = {}
    problems: dict[str, str] = {}
    for d in decisions:
        origin = d.inputs.get("origin")
        if d.site is None or not d.bounds or not origin:
            continue
        if d.subject_kind == "job" and d.subject not in holding:
            continue
        delay = d.bounds.get("max_delay_ms", d.bounds.get("max_latency_ms"))
        bw = d.bounds.get("bandwidth_mbps", 0.0)
        end = serving(d.site, eps, lks, rts)
        if origin not in heads:
            problems[d.key] = (f"headend: origin {origin} is not a node the intent "
                               "reconciler programs; add it under intents.nodes")
            continue
        if end is None:
            problems[d.key] = (f"endpoint: no intent endpoint serves site {d.site}; add "
                               "the site's router under intents.endpoints")
            continue
        if end == origin:
            continue  # placed at the origin: no network part
        out[d.key] = SrPolicyIntent(
            headend=str(origin), endpoint=end, color=color, name=f"{PREFIX}{d.key}",
            constraints=Constraints(max_delay_ms=delay, min_bandwidth_mbps=bw))
    return out, problems


def network_part(intent: str | None, statuses: dict[str, SrPolicyIntentStatus],
                 problem: str | None) -> NetworkPart | None:
    """The decision's ``network`` field: its intent's status, ``failed`` with the
    problem when no intent could be made, None when it needs no network part."""
    if problem is not None:
        what, _, why = problem.partition(": ")
        text, _, fix = why.partition("; ")
        return NetworkPart(state="failed", constraint=what, reason=text, fix=fix)
    if intent is None:
        return None
    st = statuses.get(intent)
    if st is None:
        return NetworkPart(state="pending", reason="the reconciler has not seen it yet")
    return NetworkPart(state=st.state.value, constraint=st.constraint, reason=st.reason,
                       fix=st.fix)


class PlacementIntents:
    """Keeps one SR policy intent per placement with a network requirement."""

    name = "placement-intents"
    leader_only = True  # writes the intents the reconciler programs into the network

    def __init__(self, sec: IntentsSection) -> None:
        self.sec = sec
        self.problems: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsub: Any = None

    def sync(self, store: Store) -> dict[str, int]:
        """One pass: put what is needed, release what is not. Returns counts."""
        decs = store.list(SchedulingDecision)
        holding = {j.id for j in store.list(Job) if j.state in HOLDING}
        want, self.problems = desired(decs, holding, self.sec.nodes, self.sec.endpoints,
                                      store.list(Link), self.sec.placement_color,
                                      store.list(Router))
        have = {i.name.removeprefix(PREFIX): i for i in store.list(SrPolicyIntent)
                if i.name.startswith(PREFIX)}
        put = [it for k, it in want.items() if have.get(k) != it]
        gone = [it for k, it in have.items() if k not in want or want[k].key != it.key]
        statuses = {s.key: s for s in store.list(SrPolicyIntentStatus)}
        marks = []
        for d in decs:
            it = want.get(d.key)
            upd = {"intent": it.key if it else None,
                   "network": network_part(it.key if it else None, statuses,
                                           self.problems.get(d.key))}
            if (d.intent, d.network) != (upd["intent"], upd["network"]):
                marks.append(d.model_copy(update=upd))
        if put or gone or marks:
            with store.transaction("placements", f"placement intents: {len(put)} put, "
                                   f"{len(gone)} released") as txn:
                for it in gone:
                    txn.delete(SrPolicyIntent, it.key)
                for it in put:
                    txn.put(it)
                for d in marks:
                    txn.put(d)
            key_event(log, "placement intents", put=len(put), released=len(gone))
        for k, why in self.problems.items():
            log.warning("placement %s has no SR policy intent: %s", k, why)
        return {"put": len(put), "released": len(gone), "problems": len(self.problems)}

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        await stop_loop(self._unsub, self._task)

    def _on_change(self, ev: StateChanged) -> None:
        if ev.kinds() & WATCH and ev.actor != "placements":
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.sync, self.rt.store)
            except Exception:
                log.exception("placement intents not synced; retrying on the next change")
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(30.0):
                    await self._wake.wait()
            self._wake.clear()

