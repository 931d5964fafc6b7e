"""BGP events → ``ComputeMetrics`` in the store (issue #3; GBA-6.4.3b compute awareness).

Rules:
- ``BgpIngestCore`` keeps an Adj-RIB-In per peer (prefix → decoded metadata) and
  derives each (site, service) record from it, with no I/O of its own other than
  the store it commits to in ``flush``:
  * Each prefix's route is independent (RFC 4271 §9.1): a (site, service) record
    follows the *most specific* route of the site's peer that covers one of the
    service's anycast addresses. A host route of an anycast address always counts
    (the site says it serves it); a covering route (``198.51.100.0/24``,
    ``0.0.0.0/0``) counts only for services with a contact instance at that site,
    so a default route with metadata creates nothing for services the site does
    not host, and its withdrawal leaves a still-advertised host route in charge.
  * ``RouteAnnounced`` replaces that prefix's route whole (implicit withdraw,
    RFC 4271 §3.1): the record's BGP L0 keys are exactly the new route's; keys
    the previous route carried are retracted, not kept (``precedence.combine``).
    L0/L1/L2 go through ``telemetry.cats`` (an advertised L2 wins; advertised L1
    feeds L2; L0 drives the overload hysteresis); ``available=True``,
    ``stale=False``. A route without metadata carries no metrics.
  * ``RouteWithdrawn`` ⇒ the next most specific route takes over; none left ⇒
    ``available=False`` (last scores kept; that instance must not be used).
  * ``PeerDown`` / ExaBGP gone ⇒ the peer's RIB is dropped and every BGP record of
    its site ``stale=True``, key event logged. At start every stored BGP record is
    stale until its session re-announces it.
  * It is a ``telemetry.source.MetricSource``: each commit goes through
    ``telemetry.source.commit`` (``telemetry.precedence``): a fresh agent record of
    the same key keeps its scores; BGP adds its L0 values and its ``route_up`` flag.
  * ``Rejected`` ⇒ warning with the reason; nothing changes (last good state kept).
    Metadata the codec tolerated with a warning (a metric id carried twice) is
    logged the same way and the route is used.
  * Events from peers not in the config are refused the same way.
- Per-peer counters (``peers``: session up, updates, rejects, routes) feed
  ``/metrics`` (``telemetry.bgp.metrics``).
- Writes are coalesced per (site, service): only the newest record of a key is
  committed, in transactions of at most ``batch`` records (store journal keeps
  previous values). The async caller yields to the loop between batches, so a
  flood of updates cannot starve the controller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

from controller.logs import key_event
from controller.models import ComputeMetrics, Service
from controller.store.base import Store
from telemetry import cats
from telemetry.bgp.codec import ComputeMetadata
from telemetry.bgp.decoder import (
    BgpEvent,
    PeerDown,
    PeerUp,
    Rejected,
    RouteAnnounced,
    RouteWithdrawn,
    SpeakerShutdown,
)
from telemetry.bgp.models import BgpConfig
from telemetry.precedence import FLAG
from telemetry.source import commit

log = logging.getLogger("cpn.telemetry.bgp")

SOURCE = "bgp"
LOG_BURST = 20
LOG_WINDOW_S = 10.0
ACTOR = "bgp"
UNKNOWN_PEER = "unknown"

Net = IPv4Network | IPv6Network


@dataclass
class PeerStats:
    """Counters of one peer for ``/metrics``: ``up`` (session), ``updates`` (route
    announcements + withdrawals received), ``rejected`` (input refused)."""

    up: bool = False
    updates: int = 0
    rejected: int = 0


def _is_host(prefix: str) -> bool:
    return prefix.endswith("/32") if ":" not in prefix else prefix.endswith("/128")


class BgpIngestCore:
    """Decoded BGP events in, coalesced ``ComputeMetrics`` commits out (a
    ``MetricSource``)."""

    actor = ACTOR

    def __init__(self, cfg: BgpConfig, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self.pending: dict[str, ComputeMetrics] = {}
        self.known: dict[str, ComputeMetrics] = {
            m.key: m for m in store.list(ComputeMetrics) if m.source == SOURCE}
        #: Adj-RIB-In per peer: prefix → metadata; covering (non-host) prefixes also in
        #: ``wide`` with their parsed network.
        self.rib: dict[str, dict[str, ComputeMetadata]] = {}
        self.wide: dict[str, dict[str, Net]] = {}
        self.peers: dict[str, PeerStats] = {p: PeerStats() for p in
                                            (*(str(x.address) for x in cfg.peers),
                                             UNKNOWN_PEER)}
        #: per record: the route it follows now (prefix, metadata), the BGP L0 keys it
        #: carries, and the keys to retract at the next commit
        self._used: dict[str, tuple[str, ComputeMetadata] | None] = {}
        self._own: dict[str, set[str]] = {
            k: set(m.l0) - set(FLAG.values()) for k, m in self.known.items()}
        self._retract: dict[str, set[str]] = {}
        self._index: dict[str, list[str]] | None = None
        self._svcs: dict[str, Service] = {}
        self._wide_svc: list[tuple[Net, str]] = []
        self._unmapped_logged: set[str] = set()
        self._log_window, self._logged, self._suppressed = 0.0, 0, 0
        self.stats = {"announced": 0, "withdrawn": 0, "rejected": 0, "unmapped": 0,
                      "committed": 0, "peer_down": 0, "peer_up": 0, "warnings": 0}
        for m in self.known.values():
            if not m.stale:
                self._stage(m.model_copy(update={"stale": True}))

    # -- service index ----------------------------------------------------------------
    def services_changed(self) -> None:
        """Services (anycast, instances) changed: rebuild the index and re-derive every
        record from the RIB (a covering route's reach depends on the instances)."""
        self._index = None
        self._build_index()
        for peer, routes in self.rib.items():
            site = self.cfg.site_of(peer)
            if site is None or not routes:
                continue
            for svc in self._svcs.values():
                self._refresh(peer, site, svc)
        for key in [k for k in self._used if k.partition("/")[2] not in self._svcs]:
            self._used.pop(key)

    def _build_index(self) -> dict[str, list[str]]:
        if self._index is None:
            self._index = {}
            self._wide_svc = []
            self._svcs = {svc.name: svc for svc in self.store.list(Service)}
            for svc in self._svcs.values():
                for addr in svc.anycast:
                    host = f"{addr}/{addr.max_prefixlen}"
                    self._index.setdefault(host, []).append(svc.name)
        return self._index

    def _services(self, prefix: str) -> list[str]:
        index = self._build_index()
        if _is_host(prefix):
            return index.get(prefix, [])
        if not self._wide_svc and index:  # built on the first non-host prefix only
            self._wide_svc = [(ip_network(h), name) for h, names in index.items()
                              for name in names]
        net = ip_network(prefix)
        return [name for host, name in self._wide_svc
                if host.version == net.version and host.subnet_of(net)]  # type: ignore[arg-type]

    # -- events -------------------------------------------------------------------------
    def handle(self, events: list[BgpEvent]) -> None:
        for ev in events:
            if isinstance(ev, RouteAnnounced):
                self._announce(ev)
            elif isinstance(ev, RouteWithdrawn):
                self._withdraw(ev)
            elif isinstance(ev, PeerDown):
                self.stats["peer_down"] += 1
                site = self.cfg.site_of(ev.peer)
                key_event(log, "bgp session down", peer=ev.peer, site=site, reason=ev.reason)
                if site is not None:
                    self._peer(ev.peer).up = False
                    self._drop_rib(ev.peer)
                    self.mark_stale({site}, f"session with {ev.peer} down")
            elif isinstance(ev, PeerUp):
                self.stats["peer_up"] += 1
                key_event(log, "bgp session up", peer=ev.peer, peer_as=ev.peer_as,
                          site=self.cfg.site_of(ev.peer))
                if self.cfg.site_of(ev.peer) is not None:
                    self._peer(ev.peer).up = True
            elif isinstance(ev, SpeakerShutdown):
                self.speaker_gone("exabgp shut down")
            elif isinstance(ev, Rejected):
                self.stats["rejected"] += 1
                self._peer(ev.peer).rejected += 1
                if self._may_log(ev.ts):
                    log.warning("bgp input rejected: %s", ev.reason,
                                extra={"fields": {"peer": ev.peer, "line": ev.line}})

    def _peer(self, peer: str) -> PeerStats:
        return self.peers.get(peer) or self.peers[UNKNOWN_PEER]

    def speaker_gone(self, why: str) -> None:
        """ExaBGP exited or shut down: every session and route is gone."""
        for peer in list(self.rib):
            self._drop_rib(peer)
        for st in self.peers.values():
            st.up = False
        self.mark_stale({p.site for p in self.cfg.peers}, why)

    def _drop_rib(self, peer: str) -> None:
        self.rib.pop(peer, None)
        self.wide.pop(peer, None)
        site = self.cfg.site_of(peer)
        for key in [k for k in self._used if k.split("/", 1)[0] == site]:
            self._used.pop(key)

    def _may_log(self, now: float) -> bool:
        """At most ``LOG_BURST`` rejection warnings per ``LOG_WINDOW_S`` (a flood of bad
        input must not flood the log); the number suppressed is logged next window."""
        if now - self._log_window >= LOG_WINDOW_S:
            if self._suppressed:
                log.warning("bgp: %d further rejections not logged", self._suppressed)
            self._log_window, self._logged, self._suppressed = now, 0, 0
        if self._logged < LOG_BURST:
            self._logged += 1
            return True
        self._suppressed += 1
        return False

    def _site(self, ev: BgpEvent) -> str | None:
        site = self.cfg.site_of(ev.peer)
        if site is None:
            self.stats["rejected"] += 1
            self.peers[UNKNOWN_PEER].rejected += 1
            log.warning("bgp update from unconfigured peer %s refused", ev.peer)
        return site

    def _unmapped(self, prefix: str, site: str) -> None:
        self.stats["unmapped"] += 1
        if prefix not in self._unmapped_logged and len(self._unmapped_logged) < 1000:
            self._unmapped_logged.add(prefix)
            log.info("bgp route %s from site %s matches no service anycast; kept in the "
                     "RIB, no metrics", prefix, site)

    def _announce(self, ev: RouteAnnounced) -> None:
        site = self._site(ev)
        if site is None:
            return
        self._peer(ev.peer).updates += 1
        md = ev.metrics
        if md.warnings:
            self.stats["warnings"] += len(md.warnings)
            if self._may_log(ev.ts):
                log.warning("bgp route %s from %s: %s", ev.prefix, ev.peer,
                            "; ".join(md.warnings))
        self.rib.setdefault(ev.peer, {})[ev.prefix] = md  # replaces the old route whole
        if not _is_host(ev.prefix):
            self.wide.setdefault(ev.peer, {})[ev.prefix] = ip_network(ev.prefix)
        services = self._services(ev.prefix)
        if not services:
            self._unmapped(ev.prefix, site)
            return
        for name in services:
            self._refresh(ev.peer, site, self._svcs[name])

    def _withdraw(self, ev: RouteWithdrawn) -> None:
        site = self._site(ev)
        if site is None:
            return
        self._peer(ev.peer).updates += 1
        routes = self.rib.get(ev.peer, {})
        routes.pop(ev.prefix, None)
        self.wide.get(ev.peer, {}).pop(ev.prefix, None)
        services = self._services(ev.prefix)
        if not services:
            self._unmapped(ev.prefix, site)
            return
        for name in services:
            self._refresh(ev.peer, site, self._svcs[name], withdrawn=ev.prefix)

    # -- deriving a record from the RIB -------------------------------------------------
    def _best_route(self, peer: str, site: str,
                    svc: Service) -> tuple[str, ComputeMetadata] | None:
        """The most specific route of ``peer`` that speaks for ``svc`` at ``site``."""
        routes = self.rib.get(peer)
        if not routes:
            return None
        for addr in svc.anycast:
            host = f"{addr}/{addr.max_prefixlen}"
            md = routes.get(host)
            if md is not None:
                return host, md
        wide = self.wide.get(peer)
        if not wide or not any(inst.site == site for inst in svc.instances):
            return None  # a covering route speaks only for services the site hosts
        best: tuple[int, str] | None = None
        for prefix, net in wide.items():
            if any(a.version == net.version and a in net for a in svc.anycast) and \
                    (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, prefix)
        return (best[1], routes[best[1]]) if best is not None else None

    def _refresh(self, peer: str, site: str, svc: Service, withdrawn: str = "") -> None:
        key = f"{site}/{svc.name}"
        route = self._best_route(peer, site, svc)
        used = self._used.get(key)
        if (route is None and key in self._used and used is None) or (
                route is not None and used is not None and used[0] == route[0]
                and used[1] is route[1]):
            return  # nothing this record depends on changed
        prev = self.pending.get(key) or self.known.get(key)
        if route is None:
            self._used[key] = None
            if prev is None:
                return  # BGP never spoke for this record
            self.stats["withdrawn"] += 1
            log.info("bgp withdraw%s: service %s at site %s unavailable",
                     f" of {withdrawn}" if withdrawn else "", svc.name, site)
            self._stage(prev.model_copy(update={"available": False, "source": SOURCE}))
            return
        prefix, md = route
        period = md.period_s or self.cfg.period_s
        try:
            rec = cats.build_metrics(site, svc.name, md.l0, self.cfg.cats, source=SOURCE,
                                     period_s=period, l1=md.l1, l2=md.l2, previous=prev)
        except Exception as exc:  # refuse, keep last good state
            self.stats["rejected"] += 1
            self._peer(peer).rejected += 1
            log.warning("bgp metrics for %s (route %s) refused: %s", key, prefix, exc)
            return
        if prev is not None and prev.overloaded != rec.overloaded:
            key_event(log, "site overload changed", site=site, service=svc.name,
                      overloaded=rec.overloaded, l2=rec.l2)
        self._used[key] = route
        self.stats["announced"] += 1
        own = set(rec.l0)
        self._retract[key] = (self._retract.get(key, set())
                              | (self._own.get(key, set()) - own)) - own
        self._own[key] = own
        self._stage(rec)

    def mark_stale(self, sites: set[str], why: str) -> None:
        n = 0
        for key, m in list(self.known.items()) + list(self.pending.items()):
            cur = self.pending.get(key, m)
            if cur.site in sites and not cur.stale and cur.source == SOURCE:
                self._stage(cur.model_copy(update={"stale": True}))
                n += 1
        if n:
            key_event(log, "bgp metrics stale", sites=sorted(sites), records=n, why=why)

    def _stage(self, rec: ComputeMetrics) -> None:
        self.pending[rec.key] = rec

    def routes(self, peer: str) -> int:
        return len(self.rib.get(peer, ()))

    # -- commits ------------------------------------------------------------------------
    def backlog(self) -> int:
        return len(self.pending)

    def flush(self, limit: int | None = None) -> int:
        """Commit up to ``limit`` (default ``cfg.batch``) pending records in one
        transaction; returns how many were written."""
        if not self.pending:
            return 0
        n = limit or self.cfg.batch
        keys = list(self.pending)[:n]
        recs = [self.pending.pop(k) for k in keys]
        retract = {k: self._retract.pop(k) for k in keys if k in self._retract}
        try:
            # the agent may have written these keys since: source precedence at commit
            written = commit(self.store, self.actor, "bgp update", recs, retract)
        except Exception as exc:  # keep the last good state; say which records
            log.error("bgp commit of %d records failed (%s); first %s; kept for the next "
                      "flush", len(recs), exc, recs[0].key)
            for k, r in retract.items():
                self._retract[k] = self._retract.get(k, set()) | r
            for rec in recs:  # newer ones staged meanwhile win
                self.pending.setdefault(rec.key, rec)
            return 0
        for out in written:
            assert isinstance(out, ComputeMetrics)
            self.known[out.key] = out
        self.stats["committed"] += len(written)
        return len(written)
