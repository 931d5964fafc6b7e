"""``config false`` data: ``/cpn/state`` (compute metrics, placements, SR policies,
optical paths, alarms) and the ``policy-programmed`` notification body.

Rules:
- Built fresh for each ``<get>`` from the store and, for optical paths and NE alarms,
  from the running optical controller (``OpticalSource``: ``rt.settings.extra
  ["optical"].ctl`` when the optical component runs; absent ⇒ no optical data).
- SR policies follow RFC 9256 §2.9: ``is-best-candidate-path`` marks the active
  candidate path (``SrPolicy.active_path``); ``oper-state`` is up iff there is one.
  Candidate-path ``originator`` is ``<asn>-<address>`` and protocol-origin uses the
  ietf-sr-policy-types names (pcep / bgp / local).
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
from controller.netconf.xmlmap import Q
from srv6.models import CandidatePath, ProtocolOrigin, SrPolicy

ORIGINS = {ProtocolOrigin.PCEP: "pcep", ProtocolOrigin.BGP_SR_POLICY: "bgp",
           ProtocolOrigin.CONFIG: "local"}


class OpticalSource(Protocol):
    """What the state tree reads from the optical controller."""

    @property
    def paths(self) -> Mapping[str, Any]: ...

    def alarms(self) -> list[Any]: ...


def _leaf(parent: ET.Element, name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    ET.SubElement(parent, Q + name).text = text


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


# -------------------------------------------------------------------------- SR policies
def originator(cp: CandidatePath) -> str:
    return f"{cp.originator.asn}-{cp.originator.node}"


def path_label(cp: CandidatePath) -> str:
    return cp.name or f"{ORIGINS[cp.protocol_origin]}/{originator(cp)}/{cp.discriminator}"


def policy_xml(pol: SrPolicy) -> ET.Element:
    e = ET.Element(Q + "policy")
    active = pol.active_path()
    for k, v in (("headend", pol.headend), ("color", pol.color), ("endpoint", pol.endpoint),
                 ("name", pol.name), ("encap", pol.encap.value),
                 ("binding-sid", pol.binding_sid.sid if pol.binding_sid else None),
                 ("slice", pol.slice), ("oper-state", "up" if active else "down")):
        _leaf(e, k, v)
    cps = ET.SubElement(e, Q + "candidate-paths")
    for cp in sorted(pol.candidate_paths, key=CandidatePath.rank, reverse=True):
        c = ET.SubElement(cps, Q + "candidate-path")
        for k, v in (("protocol-origin", ORIGINS[cp.protocol_origin]),
                     ("originator", originator(cp)), ("discriminator", cp.discriminator),
                     ("preference", cp.preference), ("name", cp.name),
                     ("is-best-candidate-path", cp is active), ("is-valid", cp.is_valid()),
                     ("invalid-reason", cp.invalid_reason or None)):
            _leaf(c, k, v)
        sls = ET.SubElement(c, Q + "segment-lists")
        for i, sl in enumerate(cp.segment_lists):
            s = ET.SubElement(sls, Q + "segment-list")
            items: tuple[tuple[str, Any], ...] = (
                ("index", i), ("weight", sl.weight), ("valid", sl.valid),
                ("delay-ms", sl.delay_ms))
            for k, v in items:
                _leaf(s, k, v)
            for hop in sl.hops:
                _leaf(s, "hops", hop)
            for link in sl.links:
                _leaf(s, "links", link)
            segs = ET.SubElement(s, Q + "segments")
            for j, sid in enumerate(sl.sids):
                seg = ET.SubElement(segs, Q + "segment")
                _leaf(seg, "index", j)
                _leaf(seg, "sid-value", sid)
    return e


def policies_xml(policies: Iterable[SrPolicy]) -> ET.Element:
    root = ET.Element(Q + "sr-policies")
    for pol in sorted(policies, key=lambda p: p.key):
        root.append(policy_xml(pol))
    return root


def policy_programmed(key: str, action: str, pol: SrPolicy | None) -> ET.Element:
    e = ET.Element(Q + "policy-programmed")
    _leaf(e, "policy", key)
    _leaf(e, "action", action)
    if pol is not None:
        active = pol.active_path()
        _leaf(e, "oper-state", "up" if active else "down")
        if active is not None:
            _leaf(e, "active-candidate-path", path_label(active))
            for sl in pol.active_segment_lists()[:1]:
                for sid in sl.sids:
                    _leaf(e, "sid-value", sid)
    return e


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
    state.append(policies_xml(rt.store.list(SrPolicy)))
    optical = optical_source(rt)
    state.append(optical_xml(optical.paths if optical else {}))
    state.append(alarms_xml(metrics, optical.alarms() if optical else ()))
    return state
