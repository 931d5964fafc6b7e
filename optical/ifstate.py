"""IP link state over NETCONF (RFC 8343 ``ietf-interfaces``, NMDA operational datastore).

Rules:
- Sans-I/O: a ``<get-data>`` reply (XML text) in, ``IfState`` values out; then a pure
  diff of two readings gives link up/down and utilisation events.
- Interfaces whose counters or status do not parse are skipped and logged (one bad
  entry never hides the rest); a reply that is not XML raises ``RemoteProtocolError``.
- Utilisation = Δ(in+out octets)·8 / Δt / speed; counter wrap or reset ⇒ no sample.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from controller.errors import RemoteProtocolError

log = logging.getLogger("cpn.optical.ifstate")
IF = "{urn:ietf:params:xml:ns:yang:ietf-interfaces}"
GET_DATA = ('<get-data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda" '
            'xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
            '<datastore>ds:operational</datastore><subtree-filter>'
            '<interfaces xmlns="urn:ietf:params:xml:ns:yang:ietf-interfaces"/>'
            '</subtree-filter></get-data>')


@dataclass(frozen=True, slots=True)
class IfState:
    """One interface: ``oper_status`` (up/down/unknown/…), octet counters."""

    name: str
    oper_status: str
    in_octets: int
    out_octets: int


@dataclass(frozen=True, slots=True)
class IfEvent:
    """``kind`` is ``up``, ``down`` or ``utilisation`` (``value`` in % of ``speed``)."""

    device: str
    interface: str
    kind: str
    value: float = 0.0


def parse_interfaces(device: str, xml: str) -> dict[str, IfState]:
    try:
        root = ET.fromstring(xml.encode())
    except ET.ParseError as exc:
        raise RemoteProtocolError(f"{device}: get-data reply is not XML: {exc}") from None
    out: dict[str, IfState] = {}
    for itf in root.iter(IF + "interface"):
        name = itf.findtext(IF + "name")
        if not name:
            continue
        try:
            stats = itf.find(IF + "statistics")
            out[name] = IfState(
                name, (itf.findtext(IF + "oper-status") or "unknown").strip(),
                int(stats.findtext(IF + "in-octets") or 0) if stats is not None else 0,
                int(stats.findtext(IF + "out-octets") or 0) if stats is not None else 0)
        except ValueError as exc:
            log.warning("%s: interface %s skipped, bad counter: %s", device, name, exc)
    return out


def diff(device: str, prev: dict[str, IfState], cur: dict[str, IfState], dt_s: float,
         speed_mbps: float = 10_000.0) -> list[IfEvent]:
    """Events between two readings taken ``dt_s`` apart."""
    ev = []
    for name, c in sorted(cur.items()):
        p = prev.get(name)
        up = c.oper_status == "up"
        if p is None or (p.oper_status == "up") != up:
            ev.append(IfEvent(device, name, "up" if up else "down"))
        if p is not None and dt_s > 0:
            delta = (c.in_octets - p.in_octets) + (c.out_octets - p.out_octets)
            if delta >= 0:
                ev.append(IfEvent(device, name, "utilisation",
                                  round(delta * 8 / dt_s / (speed_mbps * 1e6) * 100, 4)))
    return ev
