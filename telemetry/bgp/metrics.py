"""Prometheus view of the BGP ingest: sessions, updates, rejects and routes per peer.

Rules:
- A collector reads ``BgpIngestCore`` counters at scrape time (no second copy of the
  numbers); one series per configured peer, labelled ``peer`` and ``site``, plus
  ``peer="unknown"`` for input no configured peer can be blamed for (undecodable
  lines, unconfigured neighbours).
- Series: ``cpn_bgp_session_up`` (1 established, 0 not), ``cpn_bgp_updates_total``
  (route announcements + withdrawals received), ``cpn_bgp_rejects_total`` (input
  refused), ``cpn_bgp_routes`` (prefixes in the peer's Adj-RIB-In).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from telemetry.bgp.ingest import UNKNOWN_PEER, BgpIngestCore


class BgpCollector(Collector):
    """Scrape-time metrics of the BGP ingest ``core()`` (None ⇒ nothing yet)."""

    def __init__(self, core: Callable[[], BgpIngestCore | None]) -> None:
        self._core = core

    def collect(self) -> Iterator[Metric]:
        labels = ["peer", "site"]
        up = GaugeMetricFamily("cpn_bgp_session_up",
                               "BGP session with the peer established (1) or not (0)",
                               labels=labels)
        updates = CounterMetricFamily("cpn_bgp_updates",
                                      "Route announcements and withdrawals received",
                                      labels=labels)
        rejects = CounterMetricFamily("cpn_bgp_rejects", "BGP input refused (bad metadata, "
                                      "malformed message, unconfigured peer)", labels=labels)
        routes = GaugeMetricFamily("cpn_bgp_routes", "Prefixes held from the peer",
                                   labels=labels)
        core = self._core()
        if core is not None:
            for peer, st in core.peers.items():
                lv = [peer, core.cfg.site_of(peer) or ""]
                if peer != UNKNOWN_PEER:
                    up.add_metric(lv, 1.0 if st.up else 0.0)
                    routes.add_metric(lv, float(core.routes(peer)))
                    updates.add_metric(lv, float(st.updates))
                rejects.add_metric(lv, float(st.rejected))
        yield from (up, updates, rejects, routes)
