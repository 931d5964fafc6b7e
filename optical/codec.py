"""Sans-I/O codec for ``cpn-optical-device``: model values <-> NETCONF XML.

Rules:
- No sockets here: XML text in, model values out; model values in, XML text out.
- Anything an NE sends that does not fit the module raises ``RemoteProtocolError``
  naming the element and the offending value; the caller keeps its previous view.
- Deletes use ``nc:operation="remove"`` so a retried rollback is idempotent.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

from controller.errors import RemoteProtocolError
from optical.models import (
    Alarm,
    NeConfig,
    NeEdit,
    NeLink,
    NeSnapshot,
    NeState,
    OchXc,
    Odu,
    ProtectionGroup,
)

NS = "urn:cpn:params:xml:ns:yang:cpn-optical-device"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
_Q = "{" + NS + "}"
FILTER = (f'<filter type="subtree" xmlns="{NC}"><device xmlns="{NS}"/>'
          f'<ne-state xmlns="{NS}"/></filter>')


def _leaf(tag: str, value: object | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def _xc(x: OchXc) -> str:
    return ("<och-xc>" + _leaf("name", x.name) + _leaf("path", x.path)
            + _leaf("channel", x.channel) + _leaf("rate", x.rate)
            + _leaf("a-degree", x.a_degree) + _leaf("a-port", x.a_port)
            + _leaf("z-degree", x.z_degree) + _leaf("z-port", x.z_port) + "</och-xc>")


def _odu(o: Odu) -> str:
    return ("<odu>" + _leaf("name", o.name) + _leaf("path", o.path) + _leaf("type", o.type)
            + _leaf("och", o.och) + "".join(_leaf("tributary-slot", s) for s in o.slots)
            + _leaf("bandwidth-gbps", o.bandwidth_gbps) + "</odu>")


def _group(g: ProtectionGroup) -> str:
    return ("<protection-group>" + _leaf("name", g.name) + _leaf("path", g.path or None)
            + _leaf("working-link", g.working_link) + _leaf("protect-link", g.protect_link)
            + _leaf("revertive", g.revertive) + _leaf("wait-to-restore-ms", g.wait_to_restore_ms)
            + _leaf("hold-off-ms", g.hold_off_ms) + "</protection-group>")


def render_edit(edit: NeEdit) -> str:
    """The ``<config>`` of an edit-config (merge), deletes as ``remove`` operations."""
    body = "".join(_xc(x) for x in edit.xcs) + "".join(_odu(o) for o in edit.odus)
    body += "".join(_group(g) for g in edit.groups)
    for lst, key in edit.delete:
        body += f'<{lst} nc:operation="remove"><name>{escape(key)}</name></{lst}>'
    return (f'<config xmlns:nc="{NC}"><device xmlns="{NS}">{body}</device></config>')


def render_base(cfg: NeConfig) -> str:
    """Static NE config (links, degrees, transceivers, add/drop) — used by lab setup."""
    body = _leaf("name", cfg.name)
    for lk in cfg.links.values():
        body += ("<link>" + _leaf("id", lk.id) + _leaf("remote-ne", lk.remote_ne)
                 + _leaf("length-km", f"{lk.length_km:.2f}")
                 + _leaf("attenuation-db", f"{lk.attenuation_db:.2f}")
                 + _leaf("delay-ms", f"{lk.delay_ms:.3f}")
                 + "".join(_leaf("srlg", s) for s in lk.srlgs) + "</link>")
    for idx, link in cfg.degrees.items():
        body += "<degree>" + _leaf("index", idx) + _leaf("link", link) + "</degree>"
    for name, rate in cfg.transceivers.items():
        body += "<transceiver>" + _leaf("name", name) + _leaf("rate", rate) + "</transceiver>"
    for port, trx in cfg.add_drop.items():
        body += "<add-drop>" + _leaf("port", port) + _leaf("transceiver", trx) + "</add-drop>"
    body += "".join(_group(g) for g in cfg.groups.values())
    return f'<config><device xmlns="{NS}">{body}</device></config>'


def render_state(st: NeState, replace: bool = True) -> str:
    """The ``ne-state`` container as written by an NE's own behaviour process."""
    op = f' xmlns:nc="{NC}" nc:operation="replace"' if replace else ""
    body = "".join(f"<link><id>{escape(k)}</id><oper-status>{v}</oper-status></link>"
                   for k, v in st.links.items())
    body += "".join(f"<och-xc><name>{escape(k)}</name><oper-status>{v}</oper-status></och-xc>"
                    for k, v in st.xcs.items())
    body += "".join(
        f"<protection-group><name>{escape(k)}</name><active-path>{v}</active-path>"
        f"<switch-count>{st.switches.get(k, 0)}</switch-count></protection-group>"
        for k, v in st.active.items())
    body += "".join(
        f"<alarm><id>{escape(a.id)}</id><type>{a.type}</type>"
        f"<resource>{escape(a.resource)}</resource>{_leaf('raised-at', a.raised_at or None)}"
        f"</alarm>" for a in st.alarms)
    return f'<config><ne-state xmlns="{NS}"{op}>{body}</ne-state></config>'


# --- parsing -------------------------------------------------------------------------

def _text(el: ET.Element, tag: str, where: str, required: bool = True) -> str | None:
    child = el.find(_Q + tag)
    if child is None or child.text is None:
        if required:
            raise RemoteProtocolError(f"{where}: missing <{tag}>")
        return None
    return child.text.strip()


def _num(el: ET.Element, tag: str, where: str, conv: type = float,
         lo: float | None = None, hi: float | None = None) -> float | int | None:
    raw = _text(el, tag, where, required=False)
    if raw is None:
        return None
    try:
        v: float | int = float(raw) if conv is float else int(raw)
    except ValueError:
        raise RemoteProtocolError(f"{where}/{tag}: {raw!r} is not a number") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise RemoteProtocolError(f"{where}/{tag}: {v} out of range {lo}..{hi}")
    return v


def parse_snapshot(ne: str, xml: str) -> NeSnapshot:
    """Parse a ``<get>`` reply (``<data>``) into config + state of NE ``ne``."""
    try:
        root = ET.fromstring(xml.encode() if isinstance(xml, str) else xml)
    except ET.ParseError as exc:
        raise RemoteProtocolError(f"NE {ne}: reply is not XML: {exc}") from None
    dev = root.find(_Q + "device")
    cfg = _parse_config(ne, dev) if dev is not None else NeConfig()
    st_el = root.find(_Q + "ne-state")
    st = _parse_state(ne, st_el) if st_el is not None else NeState()
    return NeSnapshot(ne, cfg, st)


def _parse_config(ne: str, dev: ET.Element) -> NeConfig:
    w = f"NE {ne} device"
    links: dict[str, NeLink] = {}
    for el in dev.findall(_Q + "link"):
        lid = str(_text(el, "id", f"{w}/link"))
        plan = el.find(_Q + "channel-plan")
        in_use = tuple(int(c.text or 0) for c in plan.findall(_Q + "in-use")) if plan else ()
        links[lid] = NeLink(
            lid, str(_text(el, "remote-ne", f"{w}/link[{lid}]")),
            float(_num(el, "length-km", f"{w}/link[{lid}]", lo=0) or 0.0),
            float(_num(el, "attenuation-db", f"{w}/link[{lid}]", lo=0) or 0.25),
            float(_num(el, "delay-ms", f"{w}/link[{lid}]", lo=0) or 0.0),
            tuple(s.text or "" for s in el.findall(_Q + "srlg")), in_use)
    degrees = {int(_num(el, "index", f"{w}/degree", int, 1, 32) or 0):
               str(_text(el, "link", f"{w}/degree", required=False) or "")
               for el in dev.findall(_Q + "degree")}
    trx = {str(_text(el, "name", f"{w}/transceiver")): str(_text(el, "rate", f"{w}/transceiver"))
           for el in dev.findall(_Q + "transceiver")}
    ports = {str(_text(el, "port", f"{w}/add-drop")):
             str(_text(el, "transceiver", f"{w}/add-drop", required=False) or "")
             for el in dev.findall(_Q + "add-drop")}
    xcs = {}
    for el in dev.findall(_Q + "och-xc"):
        name = str(_text(el, "name", f"{w}/och-xc"))
        ww = f"{w}/och-xc[{name}]"

        def opt_int(tag: str, ww: str = ww, el: ET.Element = el) -> int | None:
            v = _num(el, tag, ww, int, 1, 32)
            return None if v is None else int(v)

        xcs[name] = OchXc(name, str(_text(el, "path", ww)),
                          int(_num(el, "channel", ww, int, 1, 96) or 0),
                          str(_text(el, "rate", ww, required=False) or "rate-100G"),
                          opt_int("a-degree"), _text(el, "a-port", ww, False),
                          opt_int("z-degree"), _text(el, "z-port", ww, False))
    odus = {}
    for el in dev.findall(_Q + "odu"):
        name = str(_text(el, "name", f"{w}/odu"))
        bw = _num(el, "bandwidth-gbps", f"{w}/odu[{name}]")
        odus[name] = Odu(name, str(_text(el, "path", f"{w}/odu[{name}]")),
                         str(_text(el, "type", f"{w}/odu[{name}]")),
                         str(_text(el, "och", f"{w}/odu[{name}]")),
                         tuple(int(s.text or 0) for s in el.findall(_Q + "tributary-slot")),
                         None if bw is None else float(bw))
    groups = {}
    for el in dev.findall(_Q + "protection-group"):
        name = str(_text(el, "name", f"{w}/protection-group"))
        ww = f"{w}/protection-group[{name}]"
        groups[name] = ProtectionGroup(
            name, str(_text(el, "working-link", ww)), str(_text(el, "protect-link", ww)),
            str(_text(el, "path", ww, False) or ""),
            (_text(el, "revertive", ww, False) or "true") == "true",
            int(_num(el, "wait-to-restore-ms", ww, int, 0) or 0),
            int(_num(el, "hold-off-ms", ww, int, 0) or 0))
    return NeConfig(str(_text(dev, "name", w, False) or ne), degrees, ports, links, trx, xcs,
                    odus, groups)


_STATUS = {"up", "down"}


def _parse_state(ne: str, st: ET.Element) -> NeState:
    w = f"NE {ne} ne-state"
    links, xcs, active, switches = {}, {}, {}, {}
    for el in st.findall(_Q + "link"):
        k, v = str(_text(el, "id", w)), _text(el, "oper-status", w, False) or "up"
        if v not in _STATUS:
            raise RemoteProtocolError(f"{w}/link[{k}]/oper-status: bad value {v!r}")
        links[k] = v
    for el in st.findall(_Q + "och-xc"):
        k, v = str(_text(el, "name", w)), _text(el, "oper-status", w, False) or "up"
        if v not in _STATUS:
            raise RemoteProtocolError(f"{w}/och-xc[{k}]/oper-status: bad value {v!r}")
        xcs[k] = v
    for el in st.findall(_Q + "protection-group"):
        k = str(_text(el, "name", w))
        v = _text(el, "active-path", w, False) or "working"
        if v not in ("working", "protect"):
            raise RemoteProtocolError(f"{w}/protection-group[{k}]/active-path: bad value {v!r}")
        active[k] = v
        switches[k] = int(_num(el, "switch-count", w, int, 0) or 0)
    alarms = tuple(Alarm(ne, str(_text(el, "id", w)), str(_text(el, "type", w)),
                         str(_text(el, "resource", w, False) or ""),
                         str(_text(el, "raised-at", w, False) or ""))
                   for el in st.findall(_Q + "alarm"))
    return NeState(links, xcs, active, switches, alarms)


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification from an NE: ``kind`` is ``config-change``, ``los``,
    ``protection-switch``, ``confirmed-commit`` or ``other``; ``detail`` the key leaf."""

    ne: str
    kind: str
    detail: str = ""


def parse_notification(ne: str, xml: str) -> Notice:
    try:
        root = ET.fromstring(xml.encode())
    except ET.ParseError as exc:
        raise RemoteProtocolError(f"NE {ne}: notification is not XML: {exc}") from None
    for child in root:
        tag = child.tag.split("}", 1)[-1]
        if tag == "eventTime":
            continue
        if tag == "netconf-config-change":
            return Notice(ne, "config-change")
        if tag == "netconf-confirmed-commit":
            ev = next((c.text or "" for c in child if c.tag.endswith("confirm-event")), "")
            return Notice(ne, "confirmed-commit", ev)
        if tag == "los":
            return Notice(ne, "los", _text(child, "link", "los", False) or "")
        if tag == "protection-switch":
            return Notice(ne, "protection-switch", _text(child, "group", "ps", False) or "")
        return Notice(ne, "other", tag)
    raise RemoteProtocolError(f"NE {ne}: empty notification")
