"""REST routes ``/api/v1/optical``: RFC 8345 topology, paths, alarms; path create/delete.

Rules: any authenticated caller may read (in a cluster a follower serves the stored
paths; topology, links and alarms come from the NEs, which the leader drives, #16);
operators create (``POST /paths``) and delete
(``DELETE /paths/{name}``) OTN/WDM paths. 409 when the optical component is not running
or the name is taken; 422 naming the field for an unknown NE, an unknown IP link or a
bad rate; a plan or NE commit failure is 409 with the reason (``CommitError``) and
leaves every NE as it was (the provisioning is all-or-nothing).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from controller.api.deps import RT, Caller, Operator
from controller.errors import ConflictError, NotFoundError, ValidationError
from controller.models import Link
from controller.models.base import Model
from controller.runtime import Runtime
from optical.models import Rate
from optical.rwa import Request
from optical.service import OpticalController
from optical.topology import network_json, path_json

router = APIRouter(prefix="/api/v1/optical", tags=["optical"])


def _ctl(rt: Runtime) -> OpticalController:
    comp = rt.settings.extra.get("optical")
    ctl = getattr(comp, "ctl", None)
    if not isinstance(ctl, OpticalController):
        if rt.leadership.elected and not rt.leadership.role.leader:
            leader = rt.leadership.local().get("leader") or "none elected yet"
            raise ConflictError(f"this controller follows; the optical layer is driven by "
                                f"the leader ({leader}): send the request to its API "
                                "('cpn cluster status' shows it)")
        raise ConflictError("the optical component is not running (no 'optical:' section)")
    return ctl


@router.get("/topology")
def topology(rt: RT, who: Caller) -> dict[str, Any]:
    ctl = _ctl(rt)
    return network_json(ctl.snaps, ctl.paths)


@router.get("/paths")
def paths(rt: RT, who: Caller) -> dict[str, Any]:
    if _follower(rt):  # a follower serves the paths as stored by the leader (#16)
        from optical.persist import OpticalPathRecord, from_record

        return {"items": [path_json(from_record(r))
                          for r in rt.store.list(OpticalPathRecord)]}
    return {"items": [path_json(p) for p in _ctl(rt).paths.values()]}


def _follower(rt: Runtime) -> bool:
    return rt.leadership.elected and not rt.leadership.role.leader


@router.get("/links")
def links(rt: RT, who: Caller) -> dict[str, Any]:
    net = network_json(_ctl(rt).snaps)["ietf-network:networks"]["network"][0]
    return {"items": net["ietf-network-topology:link"]}


@router.get("/alarms")
def alarms(rt: RT, who: Caller) -> dict[str, Any]:
    return {"items": [{"ne": a.ne, "id": a.id, "type": a.type, "resource": a.resource}
                      for a in _ctl(rt).alarms()]}


class PathCreate(Model):
    """``name``; ``a``/``z`` (end NEs); ``rate`` (rate-100G/400G/800G); ``protect`` (1+1,
    SRLG-disjoint); ``odu_type`` (ODU2/ODU4/ODUflex: groom into existing wavelengths
    first); ``bandwidth_gbps`` (for ODUflex); ``hub`` (hub-to-hub request, planned
    first); ``ip_links`` (keys of the IP ``Link`` records riding on this path: they
    inherit its state and SRLGs, GBA-6.4.2e)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    a: str
    z: str
    rate: Rate = Rate.G100
    protect: bool = False
    odu_type: str | None = Field(default=None, pattern=r"^(ODU2|ODU4|ODUflex)$")
    bandwidth_gbps: float = Field(default=0.0, ge=0)
    hub: bool = False
    ip_links: list[str] = Field(default_factory=list)


@router.post("/paths", status_code=201)
async def create_path(body: PathCreate, rt: RT, who: Operator) -> dict[str, Any]:
    ctl = _ctl(rt)
    if body.name in ctl.paths:
        raise ConflictError(f"optical path {body.name!r} exists; delete it first")
    for field, ne in (("a", body.a), ("z", body.z)):
        if ne not in ctl.snaps:
            raise ValidationError.single(field, f"unknown NE {ne!r}",
                                         f"one of {sorted(ctl.snaps)}")
    if body.a == body.z:
        raise ValidationError.single("z", "a path needs two different end NEs")
    for i, key in enumerate(body.ip_links):
        if rt.store.get(Link, key) is None:
            raise ValidationError.single(f"ip_links[{i}]", f"unknown IP link {key!r}",
                                         "GET /api/v1/links lists the keys")
    req = Request(body.name, body.a, body.z, body.rate, body.protect, body.odu_type,
                  body.bandwidth_gbps, body.hub)
    path = await ctl.create_path(req, tuple(body.ip_links))
    return path_json(path)


@router.delete("/paths/{name}", status_code=204)
async def delete_path(name: str, rt: RT, who: Operator) -> None:
    ctl = _ctl(rt)
    if name not in ctl.paths:
        raise NotFoundError("optical path", name)
    await ctl.delete_path(name)
