"""REST routes for SRv6 path computation and SR policies (``/api/v1/srv6``).

Rules:
- ``POST /paths`` computes and never writes state: the topology is read from the store
  (routers, sites, links, link affinities, locators, local SIDs). An infeasible request
  is an answer (200, ``ok: false`` with ``failed_constraint`` and ``reason``); malformed
  input (unknown node or link) is 422 naming the field.
- ``GET /policies[/{key}]`` lists SR policies with their active candidate path
  (RFC 9256 §2.9) resolved under ``active``.
- ``POST /slices/plan`` (GBA-6.4.3f) and ``POST /sdwan/render`` (GBA-6.4.3e) are
  dry runs on the current topology: the body's slices / SD-WAN policies, or the stored
  ones when the body omits them. Nothing is written or pushed.
- Any authenticated caller may read and compute.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from controller.api.deps import RT, Caller, Paging
from controller.errors import NotFoundError
from controller.models import Link, Model, Name, Router, Site
from controller.store.base import Store
from srv6.models import Constraints, LinkAffinity, LocalSid, Locator, Slice, SrPolicy
from srv6.paths import Topology, compute_path, disjoint_pair, k_shortest
from srv6.sdwan import SdwanPolicy, render
from srv6.slices import plan_slices

router = APIRouter(prefix="/api/v1/srv6", tags=["srv6"])


def topology_from_store(store: Store) -> Topology:
    return Topology.build(store.list(Link), store.list(Router), store.list(Site),
                          affinities=store.list(LinkAffinity), locators=store.list(Locator),
                          local_sids=store.list(LocalSid))


def existing_paths(store: Store) -> dict[str, list[str]]:
    """Policy key -> link keys of its active segment lists (for ``disjoint_from``)."""
    return {pol.key: [k for sl in pol.active_segment_lists() for k in sl.links]
            for pol in store.list(SrPolicy)}


class PathRequest(Model):
    """Body of POST /srv6/paths: ``headend``, ``endpoint``, ``constraints``; ``k`` (>1:
    the k shortest paths) or ``disjoint`` (``link``/``srlg``: a protected pair)."""

    headend: Name
    endpoint: Name
    constraints: Constraints = Field(default_factory=Constraints)
    k: int = Field(default=1, ge=1, le=16)
    disjoint: str | None = Field(default=None, pattern="^(link|srlg)$")


@router.post("/paths", summary="Compute a constrained SRv6 path (segment list + why)")
def post_path(rt: RT, who: Caller, body: PathRequest) -> dict[str, Any]:
    del who
    topo = topology_from_store(rt.store)
    if body.disjoint is not None:
        pair = disjoint_pair(topo, body.headend, body.endpoint, body.constraints,
                             srlg=body.disjoint == "srlg")
        if isinstance(pair, tuple):
            return {"ok": True, "paths": [p.model_dump(mode="json") for p in pair]}
        return {"ok": False, "paths": [pair.model_dump(mode="json")]}
    existing = existing_paths(rt.store)
    if body.k > 1:
        got = k_shortest(topo, body.headend, body.endpoint, body.k, body.constraints,
                         existing=existing)
        return {"ok": got[0].ok, "paths": [p.model_dump(mode="json") for p in got]}
    res = compute_path(topo, body.headend, body.endpoint, body.constraints,
                       existing=existing)
    return res.model_dump(mode="json")


def policy_view(pol: SrPolicy) -> dict[str, Any]:
    body = pol.to_json_dict()
    active = pol.active_path()
    body["active"] = None if active is None else active.model_dump(mode="json")
    return body


@router.get("/policies", summary="List SR policies with their active candidate path")
def list_policies(rt: RT, who: Caller, page: Paging) -> dict[str, Any]:
    del who
    pols = sorted(rt.store.list(SrPolicy), key=lambda p: p.key)
    return page.apply([policy_view(p) for p in pols])


@router.get("/policies/{key}", summary="One SR policy (key headend~color~endpoint)")
def get_policy(key: str, rt: RT, who: Caller) -> dict[str, Any]:
    del who
    pol = rt.store.get(SrPolicy, key)
    if pol is None:
        raise NotFoundError("sr-policy", key)
    return policy_view(pol)


class SlicePlanRequest(Model):
    """Body of POST /srv6/slices/plan: ``slices`` in admission order (None = stored)."""

    slices: list[Slice] | None = None


@router.post("/slices/plan", summary="Dry-run slice admission: paths, HTB classes, refusals")
def post_slice_plan(rt: RT, who: Caller, body: SlicePlanRequest) -> dict[str, Any]:
    del who
    slices = body.slices if body.slices is not None else sorted(
        rt.store.list(Slice), key=lambda s: s.name)
    return plan_slices(topology_from_store(rt.store), slices).model_dump(mode="json")


class SdwanRenderRequest(Model):
    """Body of POST /srv6/sdwan/render: ``policies`` (None = stored SD-WAN policies)."""

    policies: list[SdwanPolicy] | None = None


@router.post("/sdwan/render", summary="Render SD-WAN policies into steering + SR policies")
def post_sdwan_render(rt: RT, who: Caller, body: SdwanRenderRequest) -> dict[str, Any]:
    del who
    pols = body.policies if body.policies is not None else sorted(
        rt.store.list(SdwanPolicy), key=lambda p: p.name)
    return render(topology_from_store(rt.store), pols).model_dump(mode="json")
