"""Flow steering: the observe → decide → program loop for service flows (GBA-App.B).

Rules:
- Observe: every committed change of ``ComputeMetrics`` or ``Service`` (the store's
  ``StateChanged`` events) triggers a re-evaluation; bursts coalesce into one pass.
- Decide (pure, ``decide``): instances are ranked by ``scheduler.ranking.rank_instances``
  (overloaded / stale / unavailable instances are ineligible). The flow stays where it
  is while its instance is eligible; ``migrate-on-overload`` moves it to the best
  eligible instance when its own becomes ineligible; ``sticky`` moves it only when its
  instance is unavailable or stale (RFC 10053 instance affinity). With ``steer: false``
  the first placement is made and never changed (the lab's baseline).
- Program: a placement is an SR policy intent (``srv6.intents``), not routes: the
  service's flows at ``headend`` go to the router serving the chosen site
  (``sites``: site → router) with the service's colour (``colors``, default 100), named
  ``flows:<service>``. A move replaces the old intent by the new one in one store
  transaction; the intent reconciler computes the path (CSPF), allocates the SIDs and
  programs it through the one make-before-break implementation (``srv6.dataplane.mbb``):
  the new egress SID first, then the headend's route replaced atomically, then the old
  SID removed. The move is committed when the new intent's status is ``programmed``
  (or ``verified``); if it is ``failed``/``degraded`` (or not programmed within
  ``program_timeout_s``) the old intent is put back and the previous path is kept.
  Before a move the path is computed (pure): an endpoint the topology cannot reach is
  not tried. Right after committing the new intent the flows pass runs the
  reconciler's pass itself and waits for it, holding the event loop up to
  ``program_wait_ms`` (default 50; 0 = wait for the status event only): the switch is
  then not queued behind other work the same metrics change woke on the loop (the
  DNS zone rebuild), which would otherwise also take the GIL from it. The routers'
  bindings and the coloured service prefixes are the ``intents:`` section's
  (``intents.endpoints.<router>.prefixes``).
- Access classification (optional ``access``): the OpenFlow access switch in front of
  the headend (os-ken steering app, ``srv6.steering.openflow_app``) gets one rule per
  steered service — its anycast address, protocol and port — that marks the flow's DSCP
  (``access.mark``, e.g. AF41 = 34 for surveillance video) and forwards it NORMAL. The
  rule set is reconciled at start and after every committed placement. The access
  switch failing does not block steering at the headend; it is logged with the fix.
- Every decision is journaled with its inputs (metrics and ranking) as a
  ``FlowSteering`` entity (WP-3.3.4 traceability) and appended to
  ``<state>/flows.jsonl`` with monotonic timestamps for lab measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

from pydantic import Field, model_validator

from controller.events import StateChanged
from controller.logs import key_event
from controller.models import ComputeMetrics, Link, Router, Service, Site
from controller.models.base import Entity, Model, Name, register
from controller.models.job import utcnow
from controller.models.service import AffinityMode
from controller.runtime import Runtime, stop_loop
from srv6.intents.models import SrPolicyIntentStatus
from srv6.models import SrPolicyIntent

log = logging.getLogger("cpn.flows")

#: colour of a service's intents when ``flows.colors`` does not name it
DEFAULT_COLOR = 100
#: the intent reconciler's status kind, whose commits end ``_program``'s wait
_STATUS_KIND = SrPolicyIntentStatus.KIND


# ----------------------------------------------------------------------------- config
class HeadendSpec(Model):
    """The SRv6 headend steering client traffic: ``node`` (a router of the topology,
    bound to its programmer in ``intents.nodes``)."""

    node: str


class AccessSpec(Model):
    """The access switch's OpenFlow steering app: ``api`` (its control API: a Unix
    socket path, or a 127.0.0.1 port number), ``mark`` (service → DSCP 0–63)."""

    api: str | int
    mark: dict[Name, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Self:
        for svc, dscp in self.mark.items():
            if not 0 <= dscp <= 63:
                raise ValueError(f"access.mark.{svc}: DSCP {dscp} is not within 0–63")
        if isinstance(self.api, str) and self.api.isdigit():
            self.api = int(self.api)  # "6699" in YAML/JSON means the port
        return self


class FlowsSection(Model):
    """``flows:`` config section. ``enabled`` (the loop runs only when true); ``steer``
    (False = place once, never move); ``services`` (names; empty = every service with an
    instance at one of ``sites``); ``client_node`` (where clients attach, for path
    delay); ``headend``; ``sites`` (site → the router serving it: the intent's
    endpoint); ``colors`` (service → colour of its intents, default 100);
    ``program_timeout_s``; ``program_wait_ms`` (how long a move may hold the event loop
    while the reconciler programs it; 0 = never); ``access`` (AccessSpec, optional);
    ``log`` (JSON-lines file, default ``<state>/flows.jsonl``)."""

    enabled: bool = False
    steer: bool = True
    services: list[Name] = Field(default_factory=list)
    client_node: str | None = None
    headend: HeadendSpec | None = None
    sites: dict[Name, Name] = Field(default_factory=dict)
    colors: dict[Name, int] = Field(default_factory=dict)
    program_timeout_s: float = Field(default=10.0, gt=0, le=300)
    program_wait_ms: float = Field(default=50.0, ge=0, le=1000)
    access: AccessSpec | None = None
    log: str | None = None

    @model_validator(mode="after")
    def _headend_when_enabled(self) -> Self:
        if self.enabled and self.headend is None:
            raise ValueError("flows.headend is required when flows.enabled is true")
        return self


# ----------------------------------------------------------------------------- journal
@register
class FlowSteering(Entity):
    """Where a service's flows are steered from one headend, and why.

    ``service``, ``headend``, ``site``, ``address``, ``segments``, ``previous_site``,
    ``reason``, ``inputs`` (metrics and ranking used), ``decided_at``,
    ``program_ms`` (time to commit the path), ``committed`` (False = decided only)."""

    KIND = "flow-steering"
    service: Name
    headend: str
    site: str | None
    address: str | None = None
    segments: list[str] = Field(default_factory=list)
    previous_site: str | None = None
    reason: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    decided_at: datetime
    program_ms: float | None = None
    committed: bool = False

    @property
    def key(self) -> str:
        return f"{self.service}@{self.headend}"


# ----------------------------------------------------------------------------- decide
@dataclass(frozen=True, slots=True)
class SteeringDecision:
    """``site`` to steer to (None = nowhere eligible), whether it is a ``move``,
    the ``reason`` and the ``inputs`` it was made from."""

    service: str
    site: str | None
    address: str | None
    move: bool
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)


def decide(service: Service, current: str | None, *, steer: bool, client_node: str | None,
           sites: Sequence[Site], routers: Sequence[Router], links: Sequence[Link],
           metrics: Sequence[ComputeMetrics], reachable: Sequence[str]) -> SteeringDecision:
    """Pure: where should ``service``'s flow go, given where it is (``current``)?"""
    from scheduler.ranking import rank_instances

    ranked = [c for c in rank_instances(service, client_node=client_node, client_region=None,
                                        sites=sites, routers=routers, links=links,
                                        metrics=metrics)
              if c.site in reachable]
    mine = {m.site: m for m in metrics if m.service in (service.name, "*")}
    inputs: dict[str, Any] = {
        "metrics": {s: {"l0": m.l0, "l2": m.l2, "overloaded": m.overloaded,
                        "available": m.available, "stale": m.stale,
                        "updated_at": m.updated_at.isoformat()} for s, m in mine.items()},
        "ranking": [{"site": c.site, "score": round(c.score, 2), "eligible": c.eligible,
                     "why_not": c.why_not} for c in ranked],
        "affinity": service.affinity.value, "steer": steer, "current": current,
    }
    best = next((c for c in ranked if c.eligible), None)
    cur = next((c for c in ranked if c.site == current), None)
    if current is None or cur is None:
        if best is None:
            return SteeringDecision(service.name, None, None, False, "no eligible instance", inputs)
        return SteeringDecision(service.name, best.site, best.address, current is not None,
                        f"initial placement: best eligible instance {best.site}", inputs)
    if cur.eligible:
        return SteeringDecision(service.name, current, cur.address, False,
                        f"{current} still eligible", inputs)
    if not steer:
        return SteeringDecision(service.name, current, cur.address, False,
                        f"{current} ineligible ({cur.why_not}) but steering is disabled",
                        inputs)
    m = mine.get(current)
    down = m is not None and not m.usable
    if service.affinity == AffinityMode.STICKY and not down:
        return SteeringDecision(service.name, current, cur.address, False,
                        f"{current} ineligible ({cur.why_not}); affinity sticky keeps it",
                        inputs)
    if best is None:
        return SteeringDecision(service.name, current, cur.address, False,
                        f"{current} ineligible ({cur.why_not}); no other eligible instance",
                        inputs)
    return SteeringDecision(service.name, best.site, best.address, True,
                    f"{current} ineligible ({cur.why_not}); moved to {best.site} "
                    f"(score {best.score:.1f})", inputs)


# ----------------------------------------------------------------------------- program
class FlowController:
    """The component: watches the store, decides, programs the headend."""

    name = "flows"
    leader_only = True  # programs the headend (issue 16: the leader only)

    def __init__(self, cfg: FlowsSection) -> None:
        if cfg.headend is None:
            raise ValueError("flows.headend is required")
        self.cfg = cfg
        self.he: HeadendSpec = cfg.headend
        self.current: dict[str, str] = {}
        self.rt: Runtime | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        #: set when an intent status was committed (``_program`` waits on it, no polling)
        self._status = asyncio.Event()
        #: this pass's stage marks for ``flows.jsonl`` (monotonic ns): intent committed,
        #: its status read back
        self._marks: dict[str, int] = {}
        self._log_path: str | None = None
        self._unsub: Any = None
        self._access_applied: list[dict[str, Any]] | None = None

    # -- intents: a placement is an SR policy intent the reconciler programs
    def color(self, service: str) -> int:
        return self.cfg.colors.get(service, DEFAULT_COLOR)

    def intent_for(self, service: str, site: str, preference: int = 100) -> SrPolicyIntent:
        return SrPolicyIntent(headend=self.he.node, endpoint=self.cfg.sites[site],
                              color=self.color(service), name=f"flows:{service}",
                              preference=preference)

    def _owned(self) -> dict[str, SrPolicyIntent]:
        """This controller's intents by service (``name`` = ``flows:<service>``)."""
        assert self.rt is not None
        return {i.name.removeprefix("flows:"): i for i in self.rt.store.list(SrPolicyIntent)
                if i.name.startswith("flows:") and i.headend == self.he.node}

    def _reachable(self, endpoint: str) -> str | None:
        """Why the headend cannot reach ``endpoint`` (pure CSPF), or None."""
        from srv6.api_paths import topology_from_store
        from srv6.paths import compute_path

        assert self.rt is not None
        try:
            res = compute_path(topology_from_store(self.rt.store), self.he.node, endpoint,
                               with_segments=False)
        except Exception as exc:  # malformed topology: say so, keep the flow
            return str(exc)
        return None if res.ok else f"{res.failed_constraint}: {res.reason}"

    async def _program(self, service: str, site: str) -> tuple[bool, str, list[str], float]:
        """Swap ``service``'s intent to ``site``; wait for its status. Returns (ok, error,
        segments, ms)."""
        from srv6.intents.models import IntentState
        from srv6.intents.status import spec_digest

        assert self.rt is not None
        store = self.rt.store
        old = self._owned().get(service)
        new = self.intent_for(service, site, old.preference if old else 100)
        why = self._reachable(new.endpoint)
        if why is not None:
            return False, f"{new.endpoint} unreachable from {self.he.node} ({why})", [], 0.0
        t0 = time.perf_counter()
        if old is None or old != new:
            with store.transaction("flows", f"place {service} at {site}") as txn:
                if old is not None and old.key != new.key:
                    txn.delete(SrPolicyIntent, old.key)
                txn.put(new)
        self._marks = {"t_intent_committed": time.monotonic_ns()}
        rec = self.rt.settings.extra.get("srv6-intents")
        if rec is not None and hasattr(rec, "program_now"):
            rec.program_now(self.cfg.program_wait_ms / 1000)
        digest = spec_digest(new)
        deadline = t0 + self.cfg.program_timeout_s
        st = None
        while True:
            # cleared before the read: a status committed after it sets the event again
            self._status.clear()
            st = store.get(SrPolicyIntentStatus, new.key)
            if st is not None and st.spec_digest == digest and \
                    st.state is not IntentState.PENDING:
                break
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._status.wait()
        ms = (time.perf_counter() - t0) * 1e3
        self._marks["t_status_read"] = time.monotonic_ns()
        if st is not None and st.spec_digest == digest and st.state in (
                IntentState.PROGRAMMED, IntentState.VERIFIED) and st.active is not None:
            return True, "", list(st.active.segments), ms
        err = (f"intent {new.key} is {st.state.value}: {st.reason} (fix: {st.fix})"
               if st is not None and st.spec_digest == digest else
               f"intent {new.key} not programmed within {self.cfg.program_timeout_s:g} s; "
               "is the intents: section configured with this headend and endpoint?")
        if old is None or old.key != new.key:  # put the previous placement back
            with store.transaction("flows", f"revert {service}: {err}"[:500]) as txn:
                txn.delete(SrPolicyIntent, new.key)
                if old is not None:
                    txn.put(old)
        return False, err, [], ms

    # -- component
    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self._log_path = self.cfg.log or str(rt.settings.state / "flows.jsonl")
        for svc, it in self._owned().items():  # a restart resumes the stored placement
            site = next((s for s, r in self.cfg.sites.items() if r == it.endpoint), None)
            if site is not None:
                self.current[svc] = site
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        # the first placement runs in the loop: it waits for the intent reconciler,
        # which may start after this component
        self._wake.set()
        self._task = asyncio.create_task(self._loop(), name="flows")

    async def stop(self) -> None:
        await stop_loop(self._unsub, self._task)

    def _on_change(self, ev: StateChanged) -> None:
        kinds = {c.kind for c in ev.changes}
        if _STATUS_KIND in kinds:
            self._status.set()
        if ComputeMetrics.KIND in kinds or Service.KIND in kinds:
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if await self._evaluate() or self._access_applied is None:
                    await self._apply_access()
            except Exception:
                log.exception("flows: evaluation failed; previous paths kept")

    def _services(self) -> dict[str, Service]:
        assert self.rt is not None
        wanted = set(self.cfg.services)
        return {s.name: s for s in self.rt.store.list(Service)
                if (not wanted or s.name in wanted)
                and any(i.site in self.cfg.sites for i in s.instances)}

    def access_rules(self, services: Mapping[str, Service]) -> list[dict[str, Any]]:
        """The access switch's rule set for the steered ``services`` (pure)."""
        from srv6.models import SteeringMatch
        from srv6.steering.openflow import of_rule

        acc = self.cfg.access
        rules: list[dict[str, Any]] = []
        if acc is None:
            return rules
        for name in sorted(services):
            svc, dscp = services[name], acc.mark.get(name)
            if dscp is None or name not in self.current:
                continue
            for addr in svc.anycast:
                if addr.version != 4:
                    continue  # the app's rule format is IPv4 (srv6.steering.openflow)
                match = SteeringMatch(dst=f"{addr}/32", protocol=str(svc.protocol),
                                      dst_ports=str(svc.port) if svc.port else None,
                                      app=name)
                rules.append(of_rule(match, priority=200, set_dscp=dscp))
        return rules

    async def _apply_access(self) -> None:
        acc = self.cfg.access
        if acc is None:
            return
        rules = self.access_rules(self._services())
        if rules == self._access_applied:
            return

        def push() -> int:
            from srv6.steering.openflow import OpenFlowSteering

            return OpenFlowSteering(acc.api).apply(rules)
        try:
            n = await asyncio.get_running_loop().run_in_executor(None, push)
        except Exception as exc:
            log.error("flows: access switch rules not applied (%s); headend steering "
                      "continues. Fix: start the OpenFlow steering app on %s", exc, acc.api)
            return
        self._access_applied = rules
        key_event(log, "access classification applied", rules=len(rules), installed=n)

    async def _evaluate(self) -> bool:
        """One pass; True when a placement was committed."""
        assert self.rt is not None
        store = self.rt.store
        t_obs = time.monotonic_ns()
        services = self._services()
        sites, routers = store.list(Site), store.list(Router)
        links, metrics = store.list(Link), store.list(ComputeMetrics)
        decisions = [decide(svc, self.current.get(name), steer=self.cfg.steer,
                            client_node=self.cfg.client_node, sites=sites, routers=routers,
                            links=links, metrics=metrics, reachable=list(self.cfg.sites))
                     for name, svc in services.items()]
        changed = [d for d in decisions if d.site is not None
                   and d.site != self.current.get(d.service)]
        if not changed:
            return False
        committed = False
        t_decided = time.monotonic_ns()
        for d in changed:
            assert d.site is not None
            ok, err, segments, ms = await self._program(d.service, d.site)
            t1 = time.monotonic_ns()
            if ok:
                self.current[d.service] = d.site
                committed = True
            self._journal(d, ok, ms, t_obs, t1, err or None, segments, t_decided)
        return committed

    def _journal(self, d: SteeringDecision, ok: bool, program_ms: float, t_obs: int,
                 t_commit: int, error: str | None, segments: list[str],
                 t_decided: int | None = None) -> None:
        assert self.rt is not None
        prev = self.rt.store.get(FlowSteering, f"{d.service}@{self.he.node}")
        site = d.site if ok else (prev.site if prev else None)
        rec = FlowSteering(
            service=d.service, headend=self.he.node, site=site, address=d.address,
            segments=segments if ok else (prev.segments if prev else []),
            previous_site=prev.site if prev else None,
            reason=d.reason if ok else f"program failed, previous path kept: {error}",
            inputs=d.inputs, decided_at=utcnow(), program_ms=round(program_ms, 3),
            committed=ok)
        with self.rt.store.transaction("flows", rec.reason) as txn:
            txn.put(rec)
        key_event(log, "flow steered" if ok else "flow steering failed", service=d.service,
                  site=site, previous=rec.previous_site, reason=rec.reason,
                  program_ms=rec.program_ms)
        if self._log_path:
            with open(self._log_path, "a") as fh:
                fh.write(json.dumps({"t_observed": t_obs, "t_decided": t_decided,
                                     "t_committed": t_commit, **self._marks,
                                     "committed": ok, "service": d.service, "site": site,
                                     "previous": rec.previous_site, "move": d.move,
                                     "reason": rec.reason, "program_ms": rec.program_ms,
                                     "inputs": d.inputs}) + "\n")
