"""The SRv6 package's NETCONF extension: SR policy intents, slices and SD-WAN policies
as ``/cpn`` lists, the SRv6 rules on a candidate, SR policies in ``/cpn/state`` and the
``policy-programmed`` notification (registered through ``srv6.plugin_paths``).

Rules:
- SR policies follow RFC 9256 §2.9: ``is-best-candidate-path`` marks the active
  candidate path (``SrPolicy.active_path``); ``oper-state`` is up iff there is one.
  Candidate-path ``originator`` is ``<asn>-<address>`` and protocol-origin uses the
  ietf-sr-policy-types names (pcep / bgp / local).
- Intents are keyed by headend, color, endpoint (store key ``h~c~e``); a slice's
  ``flows`` entries merge by (headend, endpoint).
- Pure builders take plain objects; only ``state`` looks at the runtime.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from controller.netconf.extension import ListMap, NetconfExtension
from controller.netconf.state import leaf
from controller.netconf.xmlmap import Q
from controller.store.base import Change
from srv6 import rules
from srv6.models import CandidatePath, ProtocolOrigin, Slice, SrPolicy, SrPolicyIntent
from srv6.sdwan import SdwanPolicy

ORIGINS = {ProtocolOrigin.PCEP: "pcep", ProtocolOrigin.BGP_SR_POLICY: "bgp",
           ProtocolOrigin.CONFIG: "local"}


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
        leaf(e, k, v)
    cps = ET.SubElement(e, Q + "candidate-paths")
    for cp in sorted(pol.candidate_paths, key=CandidatePath.rank, reverse=True):
        c = ET.SubElement(cps, Q + "candidate-path")
        for k, v in (("protocol-origin", ORIGINS[cp.protocol_origin]),
                     ("originator", originator(cp)), ("discriminator", cp.discriminator),
                     ("preference", cp.preference), ("name", cp.name),
                     ("is-best-candidate-path", cp is active), ("is-valid", cp.is_valid()),
                     ("invalid-reason", cp.invalid_reason or None)):
            leaf(c, k, v)
        sls = ET.SubElement(c, Q + "segment-lists")
        for i, sl in enumerate(cp.segment_lists):
            s = ET.SubElement(sls, Q + "segment-list")
            items: tuple[tuple[str, Any], ...] = (
                ("index", i), ("weight", sl.weight), ("valid", sl.valid),
                ("delay-ms", sl.delay_ms))
            for k, v in items:
                leaf(s, k, v)
            for hop in sl.hops:
                leaf(s, "hops", hop)
            for link in sl.links:
                leaf(s, "links", link)
            segs = ET.SubElement(s, Q + "segments")
            for j, sid in enumerate(sl.sids):
                seg = ET.SubElement(segs, Q + "segment")
                leaf(seg, "index", j)
                leaf(seg, "sid-value", sid)
    return e


def policies_xml(policies: Iterable[SrPolicy]) -> ET.Element:
    root = ET.Element(Q + "sr-policies")
    for pol in sorted(policies, key=lambda p: p.key):
        root.append(policy_xml(pol))
    return root


def policy_programmed(key: str, action: str, pol: SrPolicy | None) -> ET.Element:
    e = ET.Element(Q + "policy-programmed")
    leaf(e, "policy", key)
    leaf(e, "action", action)
    if pol is not None:
        active = pol.active_path()
        leaf(e, "oper-state", "up" if active else "down")
        if active is not None:
            leaf(e, "active-candidate-path", path_label(active))
            for sl in pol.active_segment_lists()[:1]:
                for sid in sl.sids:
                    leaf(e, "sid-value", sid)
    return e


# ------------------------------------------------------------------- NETCONF extension
def state(rt: Any) -> ET.Element:
    """``/cpn/state/sr-policies`` from the runtime's store."""
    return policies_xml(rt.store.list(SrPolicy))


def notify(change: Change) -> ET.Element | None:
    pol = change.value if isinstance(change.value, SrPolicy) else None
    return policy_programmed(change.key, change.action.value, pol)


def netconf() -> NetconfExtension:
    return NetconfExtension(
        lists=(ListMap("sr-policy-intents", "intent", SrPolicyIntent,
                       ("headend", "color", "endpoint")),
               ListMap("slices", "slice", Slice, ("name",),
                       nested_keys=(("flows", ("headend", "endpoint")),)),
               ListMap("sdwan-policies", "policy", SdwanPolicy, ("name",))),
        rules=(rules.check,),
        state=(state,),
        notifications={SrPolicy.KIND: notify})
