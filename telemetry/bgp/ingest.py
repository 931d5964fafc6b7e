"""BGP events → ``ComputeMetrics`` in the store (issue #3; GBA-6.4.3b compute awareness).

Rules:
- ``BgpIngestCore`` maps decoded events to staged records, with no I/O of its own
  other than the store it commits to in ``flush``:
  * ``RouteAnnounced`` from a configured peer for a prefix that is a service's
    anycast (host route, or a prefix containing the anycast address) ⇒ upsert
    ``ComputeMetrics(site=peer's site, service, source="bgp")``: L0/L1/L2 from the
    route's metadata through ``telemetry.cats`` (an advertised L2/L1 wins over the
    computed one; L0 drives the overload hysteresis), ``available=True``,
    ``stale=False``. A route without metadata keeps the previous scores.
  * ``RouteWithdrawn`` ⇒ ``available=False`` (that site's service contact instance
    must not be used).
  * ``PeerDown`` / ExaBGP gone ⇒ every BGP record of the peer's site(s) ``stale=True``,
    key event logged. At start every stored BGP record is stale until its session
    re-announces it.
  * Each commit goes through ``telemetry.precedence.combine``: a fresh agent record of
    the same key keeps its scores; BGP adds its L0 values and its ``route_up`` flag.
  * ``Rejected`` ⇒ warning with the reason; nothing changes (last good state kept).
  * Events from peers not in the config are refused the same way.
- Writes are coalesced per (site, service): only the newest record of a key is
  committed, in transactions of at most ``batch`` records (store journal keeps
  previous values). The async caller yields to the loop between batches, so a
  flood of updates cannot starve the controller.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Network, IPv6Network, ip_network

from controller.logs import key_event
from controller.models import ComputeMetrics, Service
from controller.store.sqlite import SqliteStore
from telemetry import cats
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
from telemetry.precedence import combine

log = logging.getLogger("cpn.telemetry.bgp")

SOURCE = "bgp"
LOG_BURST = 20
LOG_WINDOW_S = 10.0
ACTOR = "bgp"


class BgpIngestCore:
    """Decoded BGP events in, coalesced ``ComputeMetrics`` commits out."""

    def __init__(self, cfg: BgpConfig, store: SqliteStore) -> None:
        self.cfg = cfg
        self.store = store
        self.pending: dict[str, ComputeMetrics] = {}
        self.known: dict[str, ComputeMetrics] = {
            m.key: m for m in store.list(ComputeMetrics) if m.source == SOURCE}
        self._index: dict[str, list[str]] | None = None
        self._wide: list[tuple[IPv4Network | IPv6Network, str]] = []
        self._unmapped_logged: set[str] = set()
        self._log_window, self._logged, self._suppressed = 0.0, 0, 0
        self.stats = {"announced": 0, "withdrawn": 0, "rejected": 0, "unmapped": 0,
                      "committed": 0, "peer_down": 0, "peer_up": 0}
        for m in self.known.values():
            if not m.stale:
                self._stage(m.model_copy(update={"stale": True}))

    # -- service index ----------------------------------------------------------------
    def services_changed(self) -> None:
        self._index = None

    def _services(self, prefix: str) -> list[str]:
        if self._index is None:
            self._index = {}
            self._wide = []
            for svc in self.store.list(Service):
                for addr in svc.anycast:
                    host = f"{addr}/{addr.max_prefixlen}"
                    self._index.setdefault(host, []).append(svc.name)
        hit = self._index.get(prefix)
        if hit is not None:
            return hit
        if not self._wide and self._index:  # built on the first non-host prefix only
            self._wide = [(ip_network(h), name) for h, names in self._index.items()
                          for name in names]
        net = ip_network(prefix)
        return [name for host, name in self._wide
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
                    self.mark_stale({site}, f"session with {ev.peer} down")
            elif isinstance(ev, PeerUp):
                self.stats["peer_up"] += 1
                key_event(log, "bgp session up", peer=ev.peer, peer_as=ev.peer_as,
                          site=self.cfg.site_of(ev.peer))
            elif isinstance(ev, SpeakerShutdown):
                self.mark_stale({p.site for p in self.cfg.peers}, "exabgp shut down")
            elif isinstance(ev, Rejected):
                self.stats["rejected"] += 1
                if self._may_log(ev.ts):
                    log.warning("bgp input rejected: %s", ev.reason,
                                extra={"fields": {"peer": ev.peer, "line": ev.line}})

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
            log.warning("bgp update from unconfigured peer %s refused", ev.peer)
        return site

    def _unmapped(self, prefix: str, site: str) -> None:
        self.stats["unmapped"] += 1
        if prefix not in self._unmapped_logged and len(self._unmapped_logged) < 1000:
            self._unmapped_logged.add(prefix)
            log.info("bgp route %s from site %s matches no service anycast; ignored",
                     prefix, site)

    def _targets(self, ev: RouteAnnounced | RouteWithdrawn) -> tuple[str, list[str]] | None:
        """(site, services) a route update is about, or None (unknown peer / prefix)."""
        site = self._site(ev)
        if site is None:
            return None
        services = self._services(ev.prefix)
        if not services:
            self._unmapped(ev.prefix, site)
            return None
        return site, services

    def _announce(self, ev: RouteAnnounced) -> None:
        targets = self._targets(ev)
        if targets is None:
            return
        site, services = targets
        md = ev.metrics
        for svc in services:
            key = f"{site}/{svc}"
            prev = self.pending.get(key) or self.known.get(key)
            period = md.period_s or self.cfg.period_s
            if md.empty and prev is not None:
                rec = prev.model_copy(update={"available": True, "stale": False,
                                              "source": SOURCE})
            else:
                try:
                    rec = cats.build_metrics(site, svc, md.l0, self.cfg.cats, source=SOURCE,
                                             period_s=period, l1=md.l1, l2=md.l2,
                                             previous=prev)
                except Exception as exc:  # refuse, keep last good state
                    self.stats["rejected"] += 1
                    log.warning("bgp metrics for %s refused: %s", key, exc)
                    continue
                if prev is not None and prev.overloaded != rec.overloaded:
                    key_event(log, "site overload changed", site=site, service=svc,
                              overloaded=rec.overloaded, l2=rec.l2)
            self.stats["announced"] += 1
            self._stage(rec)

    def _withdraw(self, ev: RouteWithdrawn) -> None:
        targets = self._targets(ev)
        if targets is None:
            return
        site, services = targets
        for svc in services:
            key = f"{site}/{svc}"
            prev = self.pending.get(key) or self.known.get(key)
            rec = (prev.model_copy(update={"available": False, "source": SOURCE})
                   if prev is not None else
                   ComputeMetrics(site=site, service=svc, source=SOURCE, available=False,
                                  period_s=self.cfg.period_s))
            self.stats["withdrawn"] += 1
            log.info("bgp withdraw: service %s at site %s unavailable", svc, site)
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

    # -- commits ------------------------------------------------------------------------
    def flush(self, limit: int | None = None) -> int:
        """Commit up to ``limit`` (default ``cfg.batch``) pending records in one
        transaction; returns how many were written."""
        if not self.pending:
            return 0
        n = limit or self.cfg.batch
        keys = list(self.pending)[:n]
        recs = [self.pending.pop(k) for k in keys]
        try:
            with self.store.transaction(ACTOR, "bgp update") as txn:
                for i, rec in enumerate(recs):
                    # the agent may have written this key since: source precedence
                    recs[i] = combine(self.store.get(ComputeMetrics, rec.key), rec)
                    txn.put(recs[i])
        except Exception as exc:  # keep the last good state; say which records
            log.error("bgp commit of %d records failed (%s); first %s", len(recs), exc,
                      recs[0].key)
            return 0
        for rec in recs:
            self.known[rec.key] = rec
        self.stats["committed"] += len(recs)
        return len(recs)

