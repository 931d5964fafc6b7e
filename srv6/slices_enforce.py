"""Slices enforced in the network: HTB classes on every router of their paths (GBA-6.4.3f).

Rules:
- ``enforce_plan`` is pure: the stored slices, the topology and the ``intents:`` node
  bindings in; per device (node, interface) the HTB classes to hold and per slice a
  ``SliceStatus`` out. Slices are admitted in a stable order — those already
  programmed first (their guarantees are never displaced), then the rest by name —
  through the slice planner (``srv6.slices.plan_slices``: CSPF with the guarantee as
  ``min_bandwidth_mbps`` and the slice's ``max_delay_ms``, booked per link).
- A slice is enforced whole or not at all. It is ``failed`` (constraint named, nothing
  of it installed) when: admission refuses it (``min_bandwidth_mbps`` = over capacity,
  ``max_delay_ms``, ``connectivity`` …), it has no ``dscp`` (nothing to classify its
  traffic by: constraint ``dscp``), or a router of its path has no interface bound for
  the link (constraint ``device``: add it under ``intents.nodes.<node>.devs``). The
  plan is then made again without it, so the others keep exactly their classes.
- Classification is by DSCP on each egress (``srv6.shaping``: ``u32`` on the IPv4 DS
  field and on the outer IPv6 traffic class — the SRv6 dataplane copies the inner
  DSCP outward), into class ``1:<colour hex>`` with ``rate`` = the guarantee summed over
  the slice's flows on that link, ``ceil`` = the slice's ceiling; everything else goes
  to the default class.
- ``SliceEnforcer`` (leader-only) applies the plan on netlink nodes (in their
  namespace) on every slice or link change and every ``readback_s``; a device that
  refuses leaves its slices ``degraded`` naming it; the status is written only when it
  changed. ``memory`` nodes are planned, not applied (the reason says so); a slice
  crossing a node the controller cannot shape (``agent``, ``bgp-sr-policy``) is
  ``degraded`` naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from controller.events import StateChanged
from controller.logs import key_event
from controller.models.base import Entity, Model, register
from controller.models.job import utcnow
from controller.runtime import stop_loop
from srv6.intents.models import IntentState, NodeBinding
from srv6.models import HtbClass, Slice
from srv6.paths import Topology
from srv6.slices import plan_slices

if TYPE_CHECKING:
    from controller.runtime import Runtime
    from controller.store import Store
    from srv6.intents.models import IntentsSection

log = logging.getLogger("cpn.srv6.slices")
WATCH = frozenset({"slice", "link"})


class SliceClass(Model):
    """One installed class: ``node``, ``dev``, ``link``, ``classid``, ``rate_mbps``,
    ``ceil_mbps``."""

    node: str
    dev: str
    link: str
    classid: str
    rate_mbps: float
    ceil_mbps: float


@register
class SliceStatus(Entity):
    """What the network does with a ``Slice`` (same shape as the intents' status):
    ``slice``, ``state`` (pending/programmed/degraded/failed), ``reason``, ``constraint``
    (failed), ``device`` (degraded), ``fix``, ``paths`` (hops per flow), ``classes``
    (installed HTB classes), ``programmed_at``, ``changed_at``."""

    KIND = "slice-status"
    slice: str
    state: IntentState = IntentState.PENDING
    reason: str = ""
    constraint: str | None = None
    device: str | None = None
    fix: str = ""
    paths: list[list[str]] = Field(default_factory=list)
    classes: list[SliceClass] = Field(default_factory=list)
    programmed_at: datetime | None = None
    changed_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.slice

    def same(self, other: SliceStatus | None) -> bool:
        skip = {"programmed_at", "changed_at"}
        return other is not None and self.model_dump(exclude=skip) == other.model_dump(
            exclude=skip)


Device = tuple[str, str]  # (node, interface)


def enforce_plan(topo: Topology, slices: list[Slice], nodes: dict[str, NodeBinding],
                 programmed: set[str] | None = None
                 ) -> tuple[dict[Device, tuple[float, list[HtbClass]]], dict[str, SliceStatus]]:
    """Per device (link capacity, classes); per slice its status (see the rules)."""
    first = programmed or set()
    order = sorted(slices, key=lambda s: (s.name not in first, s.name))
    status: dict[str, SliceStatus] = {}
    for s in order:
        if s.dscp is None:
            status[s.name] = SliceStatus(
                slice=s.name, state=IntentState.FAILED, constraint="dscp",
                reason="the slice has no dscp: its traffic cannot be classified",
                fix="set dscp on the slice (the DSCP its applications mark)")
    while True:
        live = [s for s in order if s.name not in status]
        plan = plan_slices(topo, live)
        bad = False
        for adm in plan.admissions:
            if not adm.admitted:
                where = f" (links {', '.join(adm.links)})" if adm.links else ""
                status[adm.slice] = SliceStatus(
                    slice=adm.slice, state=IntentState.FAILED,
                    constraint=adm.failed_constraint, reason=adm.reason + where,
                    fix="lower guaranteed_mbps, relax max_delay_ms, or add capacity"
                    if adm.failed_constraint in ("min_bandwidth_mbps", "max_delay_ms")
                    else "fix the slice's flows")
        for c in plan.htb:
            if c.slice == "best-effort" or c.slice in status:
                continue
            dev = nodes.get(c.node, NodeBinding()).devs.get(c.link)
            if c.node not in nodes or dev is None:
                status[c.slice] = SliceStatus(
                    slice=c.slice, state=IntentState.FAILED, constraint="device",
                    device=c.node,
                    reason=f"{c.node} has no interface bound for link {c.link}",
                    fix=f"add {c.link}: <ifname> under intents.nodes.{c.node}.devs")
                bad = True
        if not bad:
            break  # else plan again without the slice that cannot be installed
    devices: dict[Device, tuple[float, list[HtbClass]]] = {}
    classes: dict[str, list[SliceClass]] = {}
    for c in plan.htb:
        if c.slice == "best-effort" or c.slice in status:
            continue
        dev = nodes[c.node].devs[c.link]
        cap = topo.edges[topo.edge_by_key[c.link]].capacity_mbps
        devices.setdefault((c.node, dev), (cap, []))[1].append(c)
        classes.setdefault(c.slice, []).append(SliceClass(
            node=c.node, dev=dev, link=c.link, classid=c.classid, rate_mbps=c.rate_mbps,
            ceil_mbps=c.ceil_mbps))
    for adm in plan.admissions:
        if adm.admitted and adm.slice not in status:
            status[adm.slice] = SliceStatus(
                slice=adm.slice, state=IntentState.PROGRAMMED, reason=adm.reason,
                paths=[list(p.hops) for p in adm.paths],
                classes=classes.get(adm.slice, []))
    return devices, status


class SliceEnforcer:
    """Applies ``enforce_plan`` to the routers (see the module rules)."""

    name = "slice-enforcer"
    leader_only = True  # writes tc classes into the network

    def __init__(self, sec: IntentsSection) -> None:
        self.sec = sec
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsub: Any = None
        #: device → link capacity it was shaped for (to reset it when no slice needs it)
        self.applied: dict[Device, float] = {}

    def sync(self, store: Store) -> dict[str, SliceStatus]:
        """One pass: plan, apply every device, write the statuses that changed."""
        from srv6.api_paths import topology_from_store
        from srv6.shaping import apply

        old = {s.key: s for s in store.list(SliceStatus)}
        slices = store.list(Slice)
        done = {k for k, s in old.items() if s.state is IntentState.PROGRAMMED}
        devices, status = enforce_plan(topology_from_store(store), slices,
                                       dict(self.sec.nodes), done)
        # devices that had classes and have none now: reset to the default class only
        for d in set(self.applied) - set(devices):
            devices[d] = (self.applied[d], [])
        for (node, dev), (cap, classes) in sorted(devices.items()):
            b = self.sec.nodes[node]
            if b.programmer != "netlink":
                for c in classes:
                    st = status[c.slice]
                    if b.programmer == "memory":  # dry-run node: planned, nothing to apply
                        if "not applied" not in st.reason:
                            status[c.slice] = st.model_copy(update={
                                "reason": f"{st.reason}; classes on {node} planned, not "
                                          "applied (memory node)"})
                        continue
                    status[c.slice] = st.model_copy(update={
                        "state": IntentState.DEGRADED, "device": node,
                        "reason": f"{node} ({b.programmer}) cannot be shaped by the "
                                  "controller: the slice's class there is not installed",
                        "fix": f"make {node} a netlink node (intents.nodes.{node}) or shape "
                               "it by its own means"})
                continue
            try:
                apply(dev, cap, classes, netns=b.netns)
                if classes:
                    self.applied[(node, dev)] = cap
                else:
                    self.applied.pop((node, dev), None)
            except Exception as exc:
                for c in classes:
                    st = status[c.slice]
                    status[c.slice] = st.model_copy(update={
                        "state": IntentState.DEGRADED, "device": node,
                        "reason": f"{node} {dev} refused the HTB classes: {exc}",
                        "fix": f"check {node} is reachable and {dev} exists"})
        now = utcnow()
        writes = []
        for name, st in status.items():
            prev = old.get(name)
            if st.same(prev):
                continue
            writes.append(st.model_copy(update={
                "changed_at": now if prev is None or prev.state != st.state
                else prev.changed_at,
                "programmed_at": now if st.state is IntentState.PROGRAMMED else
                (prev.programmed_at if prev else None)}))
        gone = set(old) - set(status)
        if writes or gone:
            with store.transaction("slices", f"slice status: {len(writes)} changed, "
                                   f"{len(gone)} removed") as txn:
                for st in writes:
                    txn.put(st)
                for name in gone:
                    txn.delete(SliceStatus, name)
            for st in writes:
                key_event(log, "slice status", slice=st.slice, state=st.state.value,
                          constraint=st.constraint or "", reason=st.reason[:200])
        return status

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        await stop_loop(self._unsub, self._task)

    def _on_change(self, ev: StateChanged) -> None:
        if ev.kinds() & WATCH:
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.sync, self.rt.store)
            except Exception:
                log.exception("slice enforcement pass failed; retrying")
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(self.sec.readback_s):
                    await self._wake.wait()
            self._wake.clear()
