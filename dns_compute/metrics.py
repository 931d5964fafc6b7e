"""Prometheus view of the compute DNS: the Knot publisher and the answer caches.

Rules:
- Read at scrape time from the running ``DnsComponent`` (no second copy of numbers).
- ``cpn_dns_publish_failing`` is 1 while the last RFC 2136 publish to the primary
  failed (BADSIG, BADKEY, refused, unreachable …) — the same condition that makes
  ``/healthz`` say ``degraded`` and raises the ``knot-publish-failed`` alarm;
  ``cpn_dns_publishes_total`` / ``cpn_dns_publish_failures_total`` count attempts'
  outcomes, labelled with the primary (``server``).
- ``cpn_dns_cache_entries`` (answers held, all UDP loops), ``cpn_dns_cache_hits_total``,
  ``cpn_dns_cache_misses_total``, ``cpn_dns_cache_flushes_total`` (times a full cache
  was dropped: many distinct clients or names).
- ``cpn_dns_udp_datagrams_total`` / ``cpn_dns_udp_batches_total``: queries the
  controller's batched UDP loops received and the ``recvmmsg`` calls that brought them
  (their ratio is the mean batch: near 1 when idle, up to 64 under load).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from dns_compute.component import DnsComponent


class DnsCollector(Collector):
    def __init__(self, component: Callable[[], DnsComponent | None]) -> None:
        self._component = component

    def collect(self) -> Iterator[Metric]:
        failing = GaugeMetricFamily("cpn_dns_publish_failing",
                                    "1 while publishing the zone to the primary fails",
                                    labels=["server"])
        ok = CounterMetricFamily("cpn_dns_publishes", "Zone publishes that succeeded",
                                 labels=["server"])
        bad = CounterMetricFamily("cpn_dns_publish_failures", "Zone publishes that failed",
                                  labels=["server"])
        comp = self._component()
        pub = comp.publisher if comp is not None else None
        if pub is not None:
            server = f"{pub.host}:{pub.port}"
            failing.add_metric([server], 1.0 if pub.last_error else 0.0)
            ok.add_metric([server], float(pub.published))
            bad.add_metric([server], float(pub.failures))
        yield from (failing, ok, bad)
        caches = comp.server.caches if comp is not None and comp.server is not None else []
        yield GaugeMetricFamily("cpn_dns_cache_entries", "Answers held in the UDP caches",
                                value=float(sum(c.entries for c in caches)))
        yield CounterMetricFamily("cpn_dns_cache_hits", "Queries answered from the cache "
                                  "(lower-case hits added per batch, or in steps of 1,024 "
                                  "without batching)",
                                  value=float(sum(c.hits + c.fast_hits for c in caches)))
        for name, doc in (("misses", "Queries the responder answered"),
                          ("flushes", "Times a full cache was dropped")):
            yield CounterMetricFamily(f"cpn_dns_cache_{name}", doc,
                                      value=float(sum(getattr(c, name) for c in caches)))
        batches = comp.server.batches if comp is not None and comp.server is not None else []
        yield CounterMetricFamily("cpn_dns_udp_datagrams", "UDP queries received by the "
                                  "controller's batched loops",
                                  value=float(sum(b.datagrams for b in batches)))
        yield CounterMetricFamily("cpn_dns_udp_batches", "recvmmsg calls that brought them",
                                  value=float(sum(b.batches for b in batches)))
