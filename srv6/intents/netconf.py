"""Intent status over NETCONF: ``/cpn/state/sr-policy-intent-status`` and the
``intent-status-changed`` notification (registered by ``srv6.plugin_intents``).

Rules: pure builders over ``SrPolicyIntentStatus``; the state subtree is read fresh from
the store for each ``<get>``; a notification goes out for every committed status change
(the reconciler writes a status only when it changed).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from controller.netconf.extension import NetconfExtension
from controller.netconf.state import leaf
from controller.netconf.xmlmap import Q
from controller.store.base import Change
from srv6.intents.models import PathView, SrPolicyIntentStatus


def _path(parent: ET.Element, name: str, p: PathView | None) -> None:
    if p is None:
        return
    e = ET.SubElement(parent, Q + name)
    for tag, values in (("hops", p.hops), ("links", p.links), ("segments", p.segments)):
        for v in values:
            leaf(e, tag, v)
    leaf(e, "delay-ms", p.delay_ms)


def status_xml(statuses: Iterable[SrPolicyIntentStatus]) -> ET.Element:
    root = ET.Element(Q + "sr-policy-intent-status")
    for st in sorted(statuses, key=lambda s: s.key):
        h, c, e = st.intent.split("~")
        el = ET.SubElement(root, Q + "intent")
        for k, v in (("headend", h), ("color", c), ("endpoint", e),
                     ("state", st.state.value), ("reason", st.reason or None),
                     ("constraint", st.constraint), ("device", st.device),
                     ("fix", st.fix or None), ("generation", st.generation),
                     ("observed-generation", st.observed_generation),
                     ("programmed-at", st.programmed_at.isoformat()
                      if st.programmed_at else None),
                     ("verified-at", st.verified_at.isoformat() if st.verified_at else None)):
            leaf(el, k, v)
        for p in st.prefixes:
            leaf(el, "prefixes", p)
        _path(el, "active", st.active)
        _path(el, "backup", st.backup)
    return root


def status_changed(st: SrPolicyIntentStatus) -> ET.Element:
    e = ET.Element(Q + "intent-status-changed")
    for k, v in (("intent", st.intent), ("state", st.state.value),
                 ("reason", st.reason or None), ("device", st.device),
                 ("fix", st.fix or None)):
        leaf(e, k, v)
    for sid in st.active.segments if st.active else []:
        leaf(e, "segments", sid)
    return e


def state(rt: Any) -> ET.Element:
    return status_xml(rt.store.list(SrPolicyIntentStatus))


def notify(change: Change) -> ET.Element | None:
    if not isinstance(change.value, SrPolicyIntentStatus):
        return None  # a deleted intent's status: the intent's own deletion is notified
    return status_changed(change.value)


def netconf() -> NetconfExtension:
    return NetconfExtension(state=(state,),
                            notifications={SrPolicyIntentStatus.KIND: notify})
