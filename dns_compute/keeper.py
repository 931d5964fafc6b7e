"""Keeps the compute zone current: state changes in, new zone versions out.

Rules:
- Holds an in-memory copy of the kinds the zone depends on (``RELEVANT``), loaded once
  from the store and then patched from ``StateChanged`` changes, so a rebuild never
  touches SQLite.
- A rebuild that yields the same content digest changes nothing (no serial bump, no
  listeners called). Otherwise the SOA serial goes up by one, the wire zone is compiled
  and swapped into the responder in one reference assignment, then listeners
  (publisher, subscriptions) get a ``ZoneVersion``.
- Placements (issue 14): scheduling decisions are mirrored as the ``Placement`` they
  pin (``dns_compute.ranking.placement_of``), and jobs only as the set of those holding
  their place (running / dispatched): a decision or job change rebuilds the zone only
  when what DNS follows changed, so a busy scheduler does not rebuild it per job.
- The serial starts at the current Unix time so a restarted controller never goes
  backwards (RFC 1982 arithmetic is not needed for ~68 years).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.models import (
    ComputeMetrics,
    ComputeResource,
    Entity,
    Job,
    Link,
    Router,
    Service,
    Site,
)
from controller.models.job import HOLDING
from controller.store.base import Change
from dns_compute.models import DnsSection, Placement
from dns_compute.ranking import placement_of
from dns_compute.responder import Responder, WireZone
from dns_compute.zone import Zone, ZoneInput, build_zone
from scheduler.decisions import SchedulingDecision

log = logging.getLogger("cpn.dns")

_MIRRORED: tuple[type[Entity], ...] = (Site, Router, Link, Service, ComputeMetrics,
                                       ComputeResource)
#: every kind the zone depends on (the component loads these at start)
RELEVANT: tuple[type[Entity], ...] = (*_MIRRORED, SchedulingDecision, Job)
_KINDS = {cls.KIND: cls for cls in _MIRRORED}


@dataclass(frozen=True)
class ZoneVersion:
    """A published zone version: ``zone`` (records, serial, why), ``built_at`` (time.time),
    ``changed`` (owner names whose records differ from the previous version)."""

    zone: Zone
    built_at: float
    changed: tuple[str, ...]


class ZoneKeeper:
    """Rebuilds the zone from a state mirror and feeds a ``Responder``."""

    def __init__(self, origin: str, dns: DnsSection, ns_address: str = "127.0.0.1",
                 responder: Responder | None = None) -> None:
        self.origin = origin
        self.dns = dns
        self.ns_address = ns_address
        self.responder = responder or Responder()
        self.state: dict[str, dict[str, Entity]] = {k: {} for k in _KINDS}
        self.current: ZoneVersion | None = None
        self.serial = int(time.time())
        self.listeners: list[Callable[[ZoneVersion], None]] = []
        self.rebuilds = 0
        self.placed: dict[str, Placement] = {}  # decision key -> what DNS follows
        self.holding: set[str] = set()  # ids of jobs holding their place

    def load(self, objects: Iterable[Entity]) -> None:
        for obj in objects:
            if obj.KIND in self.state:
                self.state[obj.KIND][obj.key] = obj
            else:
                self._follow(obj.KIND, obj.key, obj)

    def _follow(self, kind: str, key: str, obj: Entity | None) -> bool:
        """Mirror a decision or job; True when what DNS follows changed."""
        if kind == SchedulingDecision.KIND:
            p = placement_of(obj) if isinstance(obj, SchedulingDecision) else None
            if self.placed.get(key) == p:
                return False
            if p is None:
                self.placed.pop(key, None)
            else:
                self.placed[key] = p
            return True
        if kind == Job.KIND:
            held = isinstance(obj, Job) and obj.state in HOLDING
            if held == (key in self.holding):
                return False
            if held:
                self.holding.add(key)
            else:
                self.holding.discard(key)
            return f"job:{key}" in self.placed
        return False

    def placements(self) -> list[Placement]:
        """What DNS follows now: flow placements, and job placements while the job
        holds its place."""
        return [p for p in self.placed.values()
                if p.subject_kind != "job" or p.subject in self.holding]

    def apply(self, changes: Iterable[Change]) -> bool:
        """Patch the mirror; True when a relevant kind changed."""
        touched = False
        for ch in changes:
            if ch.kind in (SchedulingDecision.KIND, Job.KIND):
                touched = self._follow(ch.kind, ch.key, ch.value) or touched
                continue
            bucket = self.state.get(ch.kind)
            if bucket is None:
                continue
            touched = True
            if ch.value is None:
                bucket.pop(ch.key, None)
            else:
                bucket[ch.key] = ch.value
        return touched

    def _of(self, cls: type[Entity]) -> list[Entity]:
        return list(self.state[cls.KIND].values())

    def zone_input(self) -> ZoneInput:
        return ZoneInput(
            self.origin, self.dns,
            sites=self._of(Site), routers=self._of(Router),  # type: ignore[arg-type]
            links=self._of(Link), services=self._of(Service),  # type: ignore[arg-type]
            metrics=self._of(ComputeMetrics),  # type: ignore[arg-type]
            resources=self._of(ComputeResource),  # type: ignore[arg-type]
            ns_address=self.ns_address, placements=self.placements())

    def rebuild(self) -> ZoneVersion | None:
        """Build; when the content changed, bump the serial, swap, tell listeners."""
        self.rebuilds += 1
        zone = build_zone(self.zone_input(), self.serial)
        prev = self.current
        if prev is not None and prev.zone.digest == zone.digest:
            return None
        if prev is not None:
            self.serial += 1
            zone = zone.with_serial(self.serial)
        wire = WireZone.compile(zone)
        self.responder.swap(wire)
        changed = _changed_names(prev.zone if prev else None, zone)
        version = ZoneVersion(zone, time.time(), changed)
        self.current = version
        log.debug("zone %s serial %d: %d names changed", self.origin, zone.serial,
                  len(changed))
        for listener in list(self.listeners):
            try:
                listener(version)
            except Exception:
                log.exception("zone listener failed")
        return version


def _changed_names(old: Zone | None, new: Zone) -> tuple[str, ...]:
    if old is None:
        return tuple(sorted(new.names()))
    keys = set(old.rrsets) | set(new.rrsets)
    names = {k[0] for k in keys if k[1] != "SOA" and old.rrsets.get(k) != new.rrsets.get(k)}
    names |= {n for n in set(old.steering) | set(new.steering)
              if old.steering.get(n) != new.steering.get(n)}
    return tuple(sorted(names))
