"""REST routes ``/api/v1/optical``: RFC 8345 topology, paths, alarms (read-only).

Rules: any authenticated caller may read; 409 when the optical component is not running.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from controller.api.deps import RT, Caller
from controller.errors import ConflictError
from controller.runtime import Runtime
from optical.service import OpticalController
from optical.topology import network_json, path_json

router = APIRouter(prefix="/api/v1/optical", tags=["optical"])


def _ctl(rt: Runtime) -> OpticalController:
    comp = rt.settings.extra.get("optical")
    ctl = getattr(comp, "ctl", None)
    if not isinstance(ctl, OpticalController):
        raise ConflictError("the optical component is not running (no 'optical:' section)")
    return ctl


@router.get("/topology")
def topology(rt: RT, who: Caller) -> dict[str, Any]:
    ctl = _ctl(rt)
    return network_json(ctl.snaps, ctl.paths)


@router.get("/paths")
def paths(rt: RT, who: Caller) -> dict[str, Any]:
    return {"items": [path_json(p) for p in _ctl(rt).paths.values()]}


@router.get("/links")
def links(rt: RT, who: Caller) -> dict[str, Any]:
    net = network_json(_ctl(rt).snaps)["ietf-network:networks"]["network"][0]
    return {"items": net["ietf-network-topology:link"]}


@router.get("/alarms")
def alarms(rt: RT, who: Caller) -> dict[str, Any]:
    return {"items": [{"ne": a.ne, "id": a.id, "type": a.type, "resource": a.resource}
                      for a in _ctl(rt).alarms()]}
