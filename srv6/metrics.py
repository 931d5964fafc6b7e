"""Prometheus gauges of flow steering, read from the store at scrape time (GBA-6.7).

Rules:
- ``cpn_flow_steered`` (1 on the site each service's flows are steered to, per
  headend) and ``cpn_flow_program_ms`` (time the last steering change took to commit);
  names and labels are the contract of ``docs/grafana-dashboard.json``.
- Nothing cached: one collector reads the store's ``FlowSteering`` records per scrape.
- Registered once per runtime by ``srv6.plugin_dataplane`` (the controller's own
  gauges live in ``controller.ops.metrics``; it does not know this package).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from controller.runtime import Runtime


class FlowCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Any]:
        from srv6.flows import FlowSteering

        g = GaugeMetricFamily("cpn_flow_steered", "1 on the site a service's flows are "
                              "steered to from a headend", labels=["service", "headend", "site"])
        moves = GaugeMetricFamily("cpn_flow_program_ms", "Time the last steering change "
                                  "took to commit, ms", labels=["service", "headend"])
        for f in self.rt.store.list(FlowSteering):
            if f.site:
                g.add_metric([f.service, f.headend, f.site], 1.0)
            if f.program_ms is not None:
                moves.add_metric([f.service, f.headend], f.program_ms)
        yield from (g, moves)


def register(rt: Runtime) -> None:
    """Add the collector to ``rt.metrics`` once."""
    if getattr(rt, "_flow_metrics", False):
        return
    rt.metrics.register(FlowCollector(rt))
    rt._flow_metrics = True  # type: ignore[attr-defined]
