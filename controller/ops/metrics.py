"""Prometheus gauges of the network and compute as the store holds them (GBA-6.7).

Rules:
- One collector reads the store at scrape time: nothing is cached, nothing can drift.
- Families (all prefixed ``cpn_``): per site/service ``site_l0`` (one series per raw
  metric), ``site_l1``, ``site_l2``, ``site_overloaded``, ``site_stale``,
  ``site_available``; per link ``link_delay_ms``, ``link_loss_pct``,
  ``link_available_mbps``, ``link_capacity_mbps``, ``link_up``; per object
  with a status (intents, slices, SD-WAN, optical paths …) ``object_state`` (1 on its
  state); sessions ``sessions`` (by kind and state) and ``session_transitions_total``;
  alarms ``alarms_active`` (by severity, shelved excluded), ``alarms_unacknowledged``,
  ``alarms_shelved``.
- Names and label sets are the contract of ``docs/grafana-dashboard.json``.
- Plugin packages register their own families (flow steering: ``srv6.metrics``);
  ``controller`` imports no plugin package.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.models import ComputeMetrics, Link, LinkState
from controller.ops.engine import statuses
from controller.ops.models import SEVERITY_ORDER, Severity

if TYPE_CHECKING:
    from controller.runtime import Runtime


class OpsCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Any]:
        yield from self._sites()
        yield from self._links()
        yield from self._status()
        yield from self._sessions()
        yield from self._alarms()

    def _sites(self) -> Iterator[Any]:
        lbl = ["site", "service"]
        l0 = GaugeMetricFamily("cpn_site_l0", "CATS L0 raw metric (unit in the name label)",
                               labels=[*lbl, "metric"])
        l1 = GaugeMetricFamily("cpn_site_l1", "CATS L1 normalised category (0–1, 1 = best)",
                               labels=[*lbl, "category"])
        l2 = GaugeMetricFamily("cpn_site_l2", "CATS L2 score (0–10, 10 = best)", labels=lbl)
        ov = GaugeMetricFamily("cpn_site_overloaded", "1 when overloaded (hysteresis)",
                               labels=lbl)
        st = GaugeMetricFamily("cpn_site_stale", "1 when no update within 3 periods",
                               labels=lbl)
        av = GaugeMetricFamily("cpn_site_available", "1 when the service may be used",
                               labels=lbl)
        for m in self.rt.store.list(ComputeMetrics):
            key = [m.site, m.service]
            for name, v in sorted(m.l0.items()):
                l0.add_metric([*key, name], float(v))
            for name, v in sorted(m.l1.items()):
                l1.add_metric([*key, name], float(v))
            l2.add_metric(key, m.l2)
            ov.add_metric(key, float(m.overloaded))
            st.add_metric(key, float(m.stale))
            av.add_metric(key, float(m.available))
        yield from (l0, l1, l2, ov, st, av)

    def _links(self) -> Iterator[Any]:
        lbl = ["link", "a", "b", "kind"]
        fams = {n: GaugeMetricFamily(f"cpn_link_{n}", d, labels=lbl) for n, d in (
            ("delay_ms", "Link one-way delay, ms"), ("loss_pct", "Link loss, %"),
            ("available_mbps", "Link available bandwidth, Mbit/s"),
            ("capacity_mbps", "Link capacity, Mbit/s"), ("up", "1 when the link is up"))}
        for lk in self.rt.store.list(Link):
            key = [lk.key, lk.a, lk.b, lk.kind.value]
            fams["delay_ms"].add_metric(key, lk.delay_ms)
            fams["loss_pct"].add_metric(key, lk.loss_pct)
            fams["available_mbps"].add_metric(key, lk.available)
            fams["capacity_mbps"].add_metric(key, lk.capacity_mbps)
            fams["up"].add_metric(key, float(lk.state is LinkState.UP))
        yield from fams.values()

    def _status(self) -> Iterator[Any]:
        g = GaugeMetricFamily("cpn_object_state", "1 on the state of each object with a "
                              "status (pending/programmed/verified/degraded/failed)",
                              labels=["kind", "key", "state"])
        for st in statuses(self.rt.store):
            g.add_metric([st.kind, st.key, st.state], 1.0)
        yield g

    def _sessions(self) -> Iterator[Any]:
        g = GaugeMetricFamily("cpn_sessions", "Sessions by kind and state",
                              labels=["kind", "state"])
        c = CounterMetricFamily("cpn_session_transitions", "Session ups and downs seen",
                                labels=["kind", "peer", "to"])
        counts: dict[tuple[str, str], int] = {}
        for s in self.rt.sessions.snapshot():
            counts[(s.kind, s.state)] = counts.get((s.kind, s.state), 0) + 1
            c.add_metric([s.kind, s.peer, "up"], s.ups)
            c.add_metric([s.kind, s.peer, "down"], s.downs)
        for (kind, state), n in sorted(counts.items()):
            g.add_metric([kind, state], n)
        yield from (g, c)

    def _alarms(self) -> Iterator[Any]:
        now = datetime.now(UTC)
        act = GaugeMetricFamily("cpn_alarms_active", "Active, not shelved alarms",
                                labels=["severity"])
        unack = GaugeMetricFamily("cpn_alarms_unacknowledged",
                                  "Active, not shelved, unacknowledged alarms")
        shelved = GaugeMetricFamily("cpn_alarms_shelved", "Active alarms shelved")
        counts: dict[Severity, int] = {s: 0 for s in SEVERITY_ORDER if s is not Severity.CLEARED}
        n_unack = n_shelved = 0
        for a in self.rt.alarms.list():
            if not a.active:
                continue
            if a.shelved(now):
                n_shelved += 1
                continue
            counts[a.severity] += 1
            n_unack += not a.acknowledged
        for s, n in counts.items():
            act.add_metric([s.value], n)
        unack.add_metric([], n_unack)
        shelved.add_metric([], n_shelved)
        yield from (act, unack, shelved)


def register(rt: Runtime) -> None:
    """Add the collector to ``rt.metrics`` once."""
    if getattr(rt, "_ops_metrics", False):
        return
    rt.metrics.register(OpsCollector(rt))
    rt._ops_metrics = True  # type: ignore[attr-defined]
