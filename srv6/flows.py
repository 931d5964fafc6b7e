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
- Program: the headend's steering route for each service anycast prefix
  (``Seg6Route``, H.Encaps) through a ``PolicyProgrammer``. Make-before-break
  (DESIGN §1): every egress SID (End.DX4) is installed before any headend route uses
  it, and the headend route is replaced atomically (one netlink ``NLM_F_REPLACE``),
  so there is never a window without a route. A failed commit is undone by the
  programmer and the previous path is kept.
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
from concurrent.futures import ThreadPoolExecutor
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
from controller.runtime import Runtime

log = logging.getLogger("cpn.flows")


# ----------------------------------------------------------------------------- config
class EgressSpec(Model):
    """The egress node of a path: ``node``, ``netns`` (None = the controller's own),
    ``sid`` (End.DX4 SID), ``dev`` (towards the site), ``nh4`` (the instance address)."""

    node: str
    netns: str | None = None
    sid: str
    dev: str
    nh4: str


class PathSpec(Model):
    """How the headend reaches a site: ``segments`` (travel order), ``dev`` (headend
    output interface), ``egress`` (the SID to install there, optional)."""

    segments: list[str] = Field(min_length=1)
    dev: str
    egress: EgressSpec | None = None


class HeadendSpec(Model):
    """The SRv6 headend steering client traffic: ``node``, ``netns``."""

    node: str
    netns: str | None = None


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
    (False = place once, never move); ``services`` (names; empty = every service with a
    path); ``client_node`` (where clients attach, for path delay); ``headend``;
    ``paths`` (site → PathSpec); ``access`` (AccessSpec, optional); ``programmer``
    (``netlink``; ``memory`` for dry runs); ``log`` (JSON-lines file, default
    ``<state>/flows.jsonl``)."""

    enabled: bool = False
    steer: bool = True
    services: list[Name] = Field(default_factory=list)
    client_node: str | None = None
    headend: HeadendSpec | None = None
    paths: dict[Name, PathSpec] = Field(default_factory=dict)
    access: AccessSpec | None = None
    programmer: str = Field(default="netlink", pattern="^(netlink|memory)$")
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

    def __init__(self, cfg: FlowsSection) -> None:
        if cfg.headend is None:
            raise ValueError("flows.headend is required")
        self.cfg = cfg
        self.he: HeadendSpec = cfg.headend
        self.current: dict[str, str] = {}
        self.rt: Runtime | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flows-nl")
        self._programmers: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._log_path: str | None = None
        self._unsub: Any = None
        self._access_applied: list[dict[str, Any]] | None = None

    # -- programmers (all netlink work on one thread: pyroute2 sockets are not shared)
    def _programmer(self, node: str, netns: str | None) -> Any:
        prog = self._programmers.get(node)
        if prog is None:
            if self.cfg.programmer == "memory":
                from srv6.dataplane import MemoryProgrammer
                prog = MemoryProgrammer(node)
            else:
                from srv6.dataplane.netlink import NetlinkProgrammer
                prog = NetlinkProgrammer(node, netns=netns)
            self._programmers[node] = prog
        return prog

    def _commit(self, node: str, netns: str | None, routes: list[Any]) -> Any:
        from srv6.dataplane import NodeState

        prog = self._programmer(node, netns)
        prog.load(NodeState.of(routes))
        return prog.commit()

    def _install_egress(self) -> None:
        """Make-before-break, step 1: every egress SID exists before any path uses it."""
        from srv6.dataplane import Seg6LocalRoute

        by_node: dict[str, tuple[str | None, list[Any]]] = {}
        for path in self.cfg.paths.values():
            e = path.egress
            if e is None:
                continue
            netns, routes = by_node.setdefault(e.node, (e.netns, []))
            routes.append(Seg6LocalRoute(sid=e.sid, action="End.DX4", dev=e.dev, nh4=e.nh4))
        for node, (netns, routes) in by_node.items():
            res = self._commit(node, netns, routes)
            if res.failed:
                raise RuntimeError(f"flows: cannot install egress SIDs on {node}: {res.error}")

    def _headend_routes(self, services: Mapping[str, Service],
                        placement: Mapping[str, str]) -> list[Any]:
        from srv6.dataplane import Seg6Route

        routes = []
        for name, site in placement.items():
            svc, path = services[name], self.cfg.paths[site]
            for addr in svc.anycast:
                plen = 32 if addr.version == 4 else 128
                routes.append(Seg6Route(dst=f"{addr}/{plen}", segments=tuple(path.segments),
                                        dev=path.dev))
        return routes

    # -- component
    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self._log_path = self.cfg.log or str(rt.settings.state / "flows.jsonl")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._install_egress)
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        await self._evaluate()
        await self._apply_access()
        self._task = asyncio.create_task(self._loop(), name="flows")

    async def stop(self) -> None:
        if self._unsub is not None:
            self._unsub()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for prog in self._programmers.values():
            with contextlib.suppress(Exception):
                prog.close()
        self._pool.shutdown(wait=False)

    def _on_change(self, ev: StateChanged) -> None:
        if any(c.kind in (ComputeMetrics.KIND, Service.KIND) for c in ev.changes):
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if await self._evaluate():
                    await self._apply_access()
            except Exception:
                log.exception("flows: evaluation failed; previous paths kept")

    def _services(self) -> dict[str, Service]:
        assert self.rt is not None
        wanted = set(self.cfg.services)
        return {s.name: s for s in self.rt.store.list(Service)
                if (not wanted or s.name in wanted)
                and any(i.site in self.cfg.paths for i in s.instances)}

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
                            links=links, metrics=metrics, reachable=list(self.cfg.paths))
                     for name, svc in services.items()]
        changed = [d for d in decisions if d.site is not None
                   and d.site != self.current.get(d.service)]
        if not changed:
            return False
        placement = dict(self.current)
        for d in changed:
            assert d.site is not None
            placement[d.service] = d.site
        routes = self._headend_routes(services, placement)
        he = self.he
        t0 = time.monotonic_ns()
        res = await asyncio.get_running_loop().run_in_executor(
            self._pool, self._commit, he.node, he.netns, routes)
        t1 = time.monotonic_ns()
        ok = not res.failed
        if ok:
            self.current = placement
        for d in changed:
            self._journal(d, ok, (t1 - t0) / 1e6, t_obs, t1, res.error if not ok else None)
        return ok

    def _journal(self, d: SteeringDecision, ok: bool, program_ms: float, t_obs: int, t_commit: int,
                 error: str | None) -> None:
        assert self.rt is not None
        prev = self.rt.store.get(FlowSteering, f"{d.service}@{self.he.node}")
        site = d.site if ok else (prev.site if prev else None)
        rec = FlowSteering(
            service=d.service, headend=self.he.node, site=site, address=d.address,
            segments=list(self.cfg.paths[d.site].segments) if d.site else [],
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
                fh.write(json.dumps({"t_observed": t_obs, "t_committed": t_commit,
                                     "committed": ok, "service": d.service, "site": site,
                                     "previous": rec.previous_site, "move": d.move,
                                     "reason": rec.reason, "program_ms": rec.program_ms,
                                     "inputs": d.inputs}) + "\n")
