"""Generic CRUD routes for the configured kinds (sites, nodes, resources, links …).

Reads need any valid token (a tenant-role caller sees only its own tenant's objects,
``controller.api.scope``); writes need role operator. The OpenAPI document gives each
body and response the kind's own schema (the body is still parsed here, so errors name
``body.<field>``). Keys that contain '/'
(``site/node``) are accepted as path suffixes. Writes go through
``StateWriter`` so references are checked and the change is journaled with the
caller's name and an optional ``X-CPN-Reason`` header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Body, Header, Response
from starlette.concurrency import run_in_threadpool

from controller.api.deps import RT, Caller, Operator, Paging
from controller.api.scope import visible
from controller.errors import NotFoundError, ValidationError, issues_from_pydantic
from controller.models import Entity

#: a kind's own cross-object rules: (store, kind, key, new object or None on delete);
#: raises a ``CpnError`` naming the problem (runs before the write)
Check = Callable[[Any, type[Entity], str, Entity | None], None]
#: extra read-only fields a kind shows beside its spec (e.g. ``status`` written by a
#: reconciler): (store, object) -> fields merged into the JSON; a body sent back with
#: those fields is accepted (they are dropped before validation)
View = Callable[[Any, Entity], dict[str, Any]]


def crud_router(cls: type[Entity], plural: str, check: Check | None = None,
                tags: list[str] | None = None, view: View | None = None) -> APIRouter:
    router = APIRouter(prefix=f"/api/v1/{plural}", tags=list(tags or [plural]))
    kind = cls.KIND

    def show(store: Any, o: Entity) -> dict[str, Any]:
        return o.to_json_dict() | view(store, o) if view is not None else o.to_json_dict()

    schema_ref = {"$ref": f"#/components/schemas/{cls.__name__}"}
    body_doc = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema_ref}}}}

    # ``list_`` runs on the loop when the store's index is free (``list_nowait``) and
    # waits for a committing writer on a worker thread otherwise — never blocking the
    # loop. A plain ``def`` handler cost two worker-thread hops (the handler, then the
    # validation of its answer), ~70 µs of CPU each (issue #19).
    @router.get("", summary=f"List {plural}")
    async def list_(rt: RT, who: Caller, page: Paging) -> dict[str, Any]:
        objs = rt.store.list_nowait(cls)
        if objs is None:
            objs = await run_in_threadpool(rt.store.list, cls)
        out = page.apply([o for o in objs if visible(who, o)])
        out["items"] = [show(rt.store, o) for o in out["items"]]  # only the page's
        return out

    # ``get`` is ``async``: a lookup in the store's in-memory index takes no lock and
    # waits on nothing, so it runs on the loop without a worker-thread hop (issue #19).
    @router.get("/{key:path}", summary=f"Get one {kind}", responses={200: {"model": cls}})
    async def get(key: str, rt: RT, who: Caller) -> dict[str, Any]:
        obj = rt.store.get(cls, key)
        if obj is None or not visible(who, obj):  # another tenant's: as if absent
            raise NotFoundError(kind, key)
        return show(rt.store, obj)

    def _parse(body: Any) -> Entity:
        if view is not None and isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "status"}
        try:
            return cls.model_validate(body)
        except pydantic.ValidationError as exc:
            raise ValidationError(issues_from_pydantic(exc, ("body",))) from exc

    @router.post("", status_code=201, summary=f"Create a {kind}",
                 responses={201: {"model": cls}}, openapi_extra=body_doc)
    def create(rt: RT, who: Operator, body: Annotated[dict[str, Any], Body()],
               x_cpn_reason: Annotated[str, Header()] = "") -> dict[str, Any]:
        obj = _parse(body)
        if check is not None:
            check(rt.store, cls, obj.key, obj)
        rt.writer.put(obj, f"api:{who.name}", x_cpn_reason or f"create {kind}",
                      create_only=True, path_prefix="body")
        return obj.to_json_dict()

    @router.put("/{key:path}", summary=f"Create or replace a {kind}",
                responses={200: {"model": cls}}, openapi_extra=body_doc)
    def replace(key: str, rt: RT, who: Operator, body: Annotated[dict[str, Any], Body()],
                x_cpn_reason: Annotated[str, Header()] = "") -> dict[str, Any]:
        obj = _parse(body)
        if obj.key != key:
            raise ValidationError.single("body", f"body describes {kind} {obj.key!r} but the "
                                         f"URL names {key!r}", "make them match")
        if check is not None:
            check(rt.store, cls, key, obj)
        rt.writer.put(obj, f"api:{who.name}", x_cpn_reason or f"replace {kind}",
                      path_prefix="body")
        return obj.to_json_dict()

    @router.delete("/{key:path}", status_code=204, summary=f"Delete a {kind}")
    def delete(key: str, rt: RT, who: Operator,
               x_cpn_reason: Annotated[str, Header()] = "") -> Response:
        if check is not None and rt.store.get(cls, key) is not None:
            check(rt.store, cls, key, None)
        rt.writer.delete(cls, key, f"api:{who.name}", x_cpn_reason or f"delete {kind}")
        return Response(status_code=204)

    return router
