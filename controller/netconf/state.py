"""``config false`` data: ``/cpn/state`` (compute metrics, placements, what plugins add
— SR policies from ``srv6`` —, optical paths, alarms).

Rules:
- Built fresh for each ``<get>`` from the store, from each plugin's state builders
  (``controller.netconf.extension``) and, for optical paths and NE alarms, from the
  running optical controller (``OpticalSource``: ``rt.settings.extra["optical"].ctl``
  when the optical component runs; absent ⇒ no optical data).
- Alarms list only raised conditions: a metrics record that is overloaded, stale or
  unavailable (resource ``<site>/<service>``), and each NE alarm (resource
  ``<ne>:<resource>``).
- Pure builders take plain objects; only ``state_tree`` looks at the runtime.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from controller.models import ComputeMetrics, Job
from controller.netconf.extension import state_builders
from controller.netconf.xmlmap import Q


class OpticalSource(Protocol):
    """What the state tree reads from the optical controller."""

    @property
    def paths(self) -> Mapping[str, Any]: ...

    def alarms(self) -> list[Any]: ...


def _leaf(parent: ET.Element, name: str, value: Any) -> None:
    """``<name>value</name>`` under ``parent`` (None: nothing; booleans true/false)."""
    if value is None:
        return
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    ET.SubElement(parent, Q + name).text = text


#: for plugins' state builders (``controller.netconf.extension``)
leaf = _leaf


# ------------------------------------------------------------------ compute, placements
def metrics_xml(records: Iterable[ComputeMetrics]) -> ET.Element:
    metrics = ET.Element(Q + "compute-metrics")
    for m in records:
        e = ET.SubElement(metrics, Q + "metric")
        for k, v in (("site", m.site), ("service", m.service), ("l2", float(m.l2)),
                     ("overloaded", m.overloaded), ("available", m.available),
                     ("stale", m.stale), ("source", m.source)):
            _leaf(e, k, v)
        for level, values in (("l1", m.l1), ("l0", m.l0)):
            for name, value in sorted(values.items()):
                el = ET.SubElement(e, Q + level)
                _leaf(el, "name", name)
                _leaf(el, "value", float(value))
    return metrics


def placements_xml(jobs: Iterable[Job]) -> ET.Element:
    placements = ET.Element(Q + "placements")
    for j in jobs:
        p = ET.SubElement(placements, Q + "placement")
        _leaf(p, "job", j.id)
        _leaf(p, "state", j.state.value)
        _leaf(p, "site", j.site)
    return placements


# ----------------------------------------------------------------------- optical, alarms
def _lightpath(parent: ET.Element, name: str, lp: Any) -> None:
    if lp is None:
        return
    e = ET.SubElement(parent, Q + name)
    _leaf(e, "id", lp.id)
    _leaf(e, "channel", lp.channel)
    _leaf(e, "rate", getattr(lp.rate, "value", lp.rate))
    _leaf(e, "osnr-db", float(lp.osnr_db))
    for n in lp.nodes:
        _leaf(e, "nodes", n)
    for f in lp.fibers:
        _leaf(e, "fibers", f)


def optical_xml(paths: Mapping[str, Any]) -> ET.Element:
    root = ET.Element(Q + "optical-paths")
    for pid in sorted(paths):
        p = paths[pid]
        e = ET.SubElement(root, Q + "path")
        for k, v in (("id", p.id), ("src", p.src), ("dst", p.dst),
                     ("state", getattr(p.state, "value", p.state)),
                     ("active-lightpath", p.active), ("error", p.error or None)):
            _leaf(e, k, v)
        for lk in p.ip_links:
            _leaf(e, "ip-links", lk)
        _lightpath(e, "working", p.working)
        _lightpath(e, "protect", p.protect)
        if p.odu is not None:
            o = ET.SubElement(e, Q + "odu")
            for k, v in (("id", p.odu.id), ("odu-type", p.odu.odu_type), ("och", p.odu.och)):
                _leaf(o, k, v)
            for slot in p.odu.slots:
                _leaf(o, "slots", slot)
            if p.odu.bandwidth_gbps:
                _leaf(o, "bandwidth-gbps", float(p.odu.bandwidth_gbps))
    return root


def alarms_xml(metrics: Iterable[ComputeMetrics], ne_alarms: Iterable[Any]) -> ET.Element:
    root = ET.Element(Q + "alarms")
    seen: set[tuple[str, str]] = set()

    def add(resource: str, kind: str, source: str, raised: str, text: str) -> None:
        if (resource, kind) in seen:
            return
        seen.add((resource, kind))
        a = ET.SubElement(root, Q + "alarm")
        for k, v in (("resource", resource), ("alarm-type-id", kind), ("source", source),
                     ("time-raised", raised or None), ("alarm-text", text)):
            _leaf(a, k, v)

    for m in sorted(metrics, key=lambda m: m.key):
        at = m.updated_at.isoformat()
        if m.overloaded:
            add(m.key, "overloaded", "compute", at, f"{m.key} is overloaded (L2 {m.l2:g})")
        if m.stale:
            add(m.key, "stale", "compute", at, f"no fresh metrics for {m.key}")
        if not m.available:
            add(m.key, "unavailable", "compute", at, f"{m.key} is unavailable")
    for a in sorted(ne_alarms, key=lambda a: (a.ne, a.id)):
        add(f"{a.ne}:{a.resource}", a.type, "optical", a.raised_at,
            f"NE {a.ne} alarm {a.id}: {a.type} on {a.resource}")
    return root


def optical_source(rt: Any) -> OpticalSource | None:
    comp = rt.settings.extra.get("optical")
    ctl = getattr(comp, "ctl", None)
    return ctl if ctl is not None and hasattr(ctl, "paths") else None


def state_tree(rt: Any) -> ET.Element:
    """``/cpn/state`` from the runtime's store (and optical controller, if running)."""
    state = ET.Element(Q + "state")
    metrics = rt.store.list(ComputeMetrics)
    state.append(metrics_xml(metrics))
    state.append(placements_xml(rt.store.list(Job)))
    for build in state_builders():
        state.append(build(rt))
    optical = optical_source(rt)
    state.append(optical_xml(optical.paths if optical else {}))
    state.append(alarms_xml(metrics, optical.alarms() if optical else ()))
    return state
