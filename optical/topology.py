"""RFC 8345 (``ietf-network`` + ``ietf-network-topology``) JSON view of the optical layer.

Rules:
- Pure: NE snapshots + paths in, a JSON-ready dict out (RFC 7951 member names, module
  prefixes on the first member of each module).
- Nodes are NEs; termination points are ROADM degrees and add/drop ports; links are
  OMS fibers (one per direction, as RFC 8345 links are unidirectional) with length,
  SRLGs, oper-status and in-use channels under ``cpn-optical-device:`` attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optical.models import NeSnapshot, OpticalPath

P = "cpn-optical-device"


def network_json(snaps: Mapping[str, NeSnapshot],
                 paths: Mapping[str, OpticalPath] | None = None) -> dict[str, Any]:
    nodes, links = [], []
    for ne, s in sorted(snaps.items()):
        tps = [{"tp-id": f"degree-{i}"} for i in sorted(s.config.degrees)]
        tps += [{"tp-id": port} for port in sorted(s.config.add_drop)]
        nodes.append({"node-id": ne, "ietf-network-topology:termination-point": tps,
                      f"{P}:alarms": [{"id": a.id, "type": a.type, "resource": a.resource}
                                      for a in s.state.alarms]})
        for lk in sorted(s.config.links.values(), key=lambda x: x.id):
            deg = s.config.degree_of(lk.id)
            peer = snaps.get(lk.remote_ne)
            pdeg = peer.config.degree_of(lk.id) if peer else None
            links.append({
                "link-id": f"{lk.id},{ne}",
                "source": {"source-node": ne, "source-tp": f"degree-{deg}"},
                "destination": {"dest-node": lk.remote_ne, "dest-tp": f"degree-{pdeg}"},
                f"{P}:length-km": lk.length_km, f"{P}:srlg": list(lk.srlgs),
                f"{P}:oper-status": s.state.links.get(lk.id, "up"),
                f"{P}:in-use-channels": list(lk.in_use)})
    net: dict[str, Any] = {
        "network-id": "optical",
        "network-types": {f"{P}:optical-topology": {}},
        "node": nodes,
        "ietf-network-topology:link": links,
    }
    if paths is not None:
        net[f"{P}:paths"] = [path_json(p) for p in paths.values()]
    return {"ietf-network:networks": {"network": [net]}}


def path_json(p: OpticalPath) -> dict[str, Any]:
    return {"id": p.id, "src": p.src, "dst": p.dst, "state": p.state.value,
            "active": p.active, "channel": p.working.channel, "rate": p.working.rate.value,
            "osnr-db": p.working.osnr_db, "route": list(p.working.nodes),
            "fibers": list(p.working.fibers),
            "protect-route": list(p.protect.nodes) if p.protect else None,
            "odu": ({"type": p.odu.odu_type, "slots": list(p.odu.slots)} if p.odu else None),
            "ip-links": list(p.ip_links), "error": p.error, "history": p.history[-10:]}
