"""FastAPI application factory: routers, error handlers, /healthz, /metrics.

Other packages add routes through ``controller.plugins`` (``routers(rt)``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller import logs, plugins
from controller.api import jobs, openapi
from controller.api.deps import (
    INT64_MAX,
    RT,
    Caller,
    Operator,
    Paging,
    cpn_error_handler,
    http_error_handler,
    internal_error_handler,
    request_validation_handler,
)
from controller.api.resources import crud_router
from controller.api.scope import entry_visible
from controller.auth import Principal
from controller.errors import CpnError, ForbiddenError, NotFoundError
from controller.models import (
    ENTITY_KINDS,
    ComputeInstance,
    ComputeMetrics,
    ComputeNode,
    ComputeResource,
    Link,
    Role,
    Router,
    Service,
    Site,
    Tenant,
    User,
)
from controller.runtime import Runtime
from controller.store.base import Action, JournalQuery

CRUD: list[tuple[type[Any], str]] = [
    (Site, "sites"), (Router, "routers"), (ComputeNode, "nodes"),
    (ComputeResource, "resources"), (Link, "links"), (Service, "services"),
    (Tenant, "tenants"), (User, "users"), (ComputeInstance, "instances"),
    (ComputeMetrics, "metrics"),
]


def _metrics(rt: Runtime) -> tuple[Counter, Histogram]:
    requests = Counter("cpn_http_requests_total", "REST requests", ["method", "status"],
                       registry=rt.metrics)
    latency = Histogram("cpn_http_request_seconds", "REST request latency",
                        registry=rt.metrics)
    objects = Gauge("cpn_objects", "Objects in the state store", ["kind"],
                    registry=rt.metrics)
    for kind, cls in ENTITY_KINDS.items():
        objects.labels(kind).set_function(_counter(rt, cls))
    Gauge("cpn_journal_seq", "Last journal sequence number",
          registry=rt.metrics).set_function(rt.store.last_seq)
    Gauge("cpn_events_published_total", "Events published on the bus",
          registry=rt.metrics).set_function(lambda: rt.bus.published)
    Gauge("cpn_cluster_is_leader", "1 when this controller leads (runs the components "
          "that program the network)", registry=rt.metrics).set_function(
        lambda: float(rt.leadership.role.leader))
    Gauge("cpn_cluster_epoch", "Leader epoch this controller last saw",
          registry=rt.metrics).set_function(lambda: float(rt.leadership.local()["epoch"] or 0))
    Gauge("cpn_cluster_lag_entries", "Journal entries this replica's index is behind the "
          "cluster (sampled each heartbeat, ~1 s)", registry=rt.metrics).set_function(
        lambda: float(rt.leadership.local()["lag_entries"]))
    return requests, latency


#: methods that never write: their answers acknowledge nothing
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Counting:
    """Counts requests by method and status and observes their latency, and holds the
    answer to a write until the store made it durable (``durable``: the SQLite store's
    ``make_durable``, one fsync for every commit since the last — acknowledged means
    durable; None for a store whose commits are durable already, etcd). Plain ASGI: a
    ``@app.middleware("http")`` wraps every request in extra tasks and streams."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram,
                 durable: Callable[[], None] | None = None) -> None:
        self.app, self.requests, self.latency = app, requests, latency
        self.durable = durable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        durable = None if scope["method"] in SAFE_METHODS else self.durable

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if durable is not None:  # the fsync off the event loop
                    await asyncio.to_thread(durable)
            await send(message)
        try:
            await self.app(scope, receive, sending)
        finally:
            self.latency.observe(time.perf_counter() - t0)
            self.requests.labels(scope["method"], str(status)).inc()


def _counter(rt: Runtime, cls: type[Any]) -> Callable[[], float]:
    return lambda: float(rt.store.count(cls))


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPI(
        title="CPN controller",
        version="0.1.0",
        description="Compute-aware network control plane. Authenticate with "
        "'Authorization: Bearer <token>' (cpn token create). Errors are JSON with field "
        "paths.",
    )
    app.state.rt = rt
    app.add_exception_handler(CpnError, cpn_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, internal_error_handler)
    openapi.install(app)
    requests, latency = _metrics(rt)

    app.add_middleware(_Counting, requests=requests, latency=latency,
                       durable=getattr(rt.store, "make_durable", None))

    @app.get("/healthz", tags=["ops"], summary="Liveness and a state summary (no auth)")
    def healthz() -> dict[str, Any]:
        # quarantined rows (stored objects that no longer validated at load) degrade
        # health until the operator deals with them: GET /api/v1/quarantine
        quarantined = len(rt.store.quarantined())
        # a component may say it is degraded (``health() -> list[str]`` of problems,
        # e.g. the DNS publisher refused by Knot: BADSIG/BADKEY)
        problems = [{"component": c.name, "problem": p} for c in [*rt.started, *rt.leading]
                    for p in (getattr(c, "health", None) or (lambda: []))()]
        return {"status": "degraded" if quarantined or problems else "ok", "zone": rt.zone,
                "journal_seq": rt.store.last_seq(),
                "objects": {k: rt.store.count(c) for k, c in ENTITY_KINDS.items()},
                "quarantined": quarantined, "problems": problems,
                "components": [c.name for c in rt.started],
                "cluster": {**rt.leadership.local(),
                            "leader_components": [c.name for c in rt.leading]}}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (no auth)",
             response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(rt.metrics), media_type=CONTENT_TYPE_LATEST)

    for cls, plural in CRUD:
        app.include_router(crud_router(cls, plural))
    app.include_router(jobs.router)
    app.include_router(_ops_router())
    for mod in plugins.modules():
        factory = getattr(mod, "routers", None)
        for router in factory(rt) if factory is not None else []:
            app.include_router(router)
    guard_prefixes(app)
    return app


def guard_prefixes(app: FastAPI) -> int:
    """Let each included router refuse a request none of its routes can match before
    trying its routes one by one; returns how many routers got the guard.

    FastAPI matches a request against every route of every included router in turn,
    twice (once to pick the router, once inside it); with ~40 routers a request for a
    late one tried ~70 regular expressions, a third of the CPU of a small GET (issue
    #19). A route without parameters matches its path only (``^path$``), and one with
    parameters only paths that start with its literal part (what comes before its
    first ``{``): a path that is none of the first and starts with none of the second
    cannot match any of the router's routes, so the answer is the same. (One common
    prefix per router was not enough: ``/api/v1`` let every path in for a router of
    ``/api/v1/events``, ``/api/v1/whoami`` …, and ``/`` for the console's.) A router
    with anything but plain HTTP / WebSocket routes (a mount, a nested router) is left
    as it is, and so is a request under a ``root_path`` (the path would be compared
    with the wrong string)."""
    guarded = 0
    for entry in app.router.routes:
        routes = getattr(getattr(entry, "original_router", None), "routes", None)
        if not routes or not all(isinstance(r, Route | WebSocketRoute)
                                 and r.path.startswith("/") for r in routes):
            continue
        exact = frozenset(r.path for r in routes if "{" not in r.path)
        prefixes = tuple(sorted({r.path.split("{", 1)[0] for r in routes
                                 if "{" in r.path}))
        if any(len(p) <= 1 for p in prefixes):
            continue
        original = entry.matches

        def matches(scope: Scope, _original: Any = original, _exact: frozenset[str] = exact,
                    _prefixes: tuple[str, ...] = prefixes) -> tuple[Match, Scope]:
            path = scope["path"]
            if path in _exact or path.startswith(_prefixes) or scope.get("root_path"):
                return _original(scope)  # type: ignore[no-any-return]
            return Match.NONE, {}
        entry.matches = matches  # type: ignore[method-assign]
        guarded += 1
    return guarded


#: Journal entries a tenant's /events request may scan before answering (bounded work
#: per request; the answer then carries ``resume_since``).
TENANT_SCAN = 100_000


def _tenant_journal(rt: Runtime, who: Principal,
                    q: JournalQuery) -> tuple[list[dict[str, Any]], int | None]:
    """The entries of ``q`` a tenant may see, scanning the journal in chunks."""
    out: list[dict[str, Any]] = []
    cursor, scanned = q.since, 0
    while len(out) < q.limit:
        chunk = rt.store.journal(dataclasses.replace(q, since=cursor, limit=1000))
        for e in chunk:
            if entry_visible(who, e.kind, e.key, e.value, e.previous):
                out.append(e.to_json_dict())
        scanned += len(chunk)
        if len(chunk) < 1000:
            return out, None
        cursor = chunk[-1].seq
        if scanned >= TENANT_SCAN:
            return out, cursor
    return out, None


def _ops_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["ops"])

    @r.get("/events", summary="The change journal (who, what, when, why, previous value)")
    def events(rt: RT, who: Caller, page: Paging,
               since: Annotated[int, Query(
                   ge=0, le=INT64_MAX, description="only seq > since (with newest_first: "
                   "seq < since; 0 = from the newest)")] = 0,
               kind: str | None = None, key: str | None = None, actor: str | None = None,
               action: Action | None = None,
               newest_first: bool = False) -> dict[str, Any]:
        q = JournalQuery(since=since, kind=kind, key=key, actor=actor, action=action,
                         limit=page.offset + page.limit + 1, descending=newest_first)
        if who.role is Role.TENANT:
            entries, resume = _tenant_journal(rt, who, q)
        else:
            entries, resume = [e.to_json_dict() for e in rt.store.journal(q)], None
        out = page.apply(entries)
        out["total"] = None  # the journal is open-ended; follow next_offset or 'since'
        out["last_seq"] = rt.store.last_seq()
        if resume is not None:  # scan bound reached: continue with since=resume_since
            out["resume_since"] = resume
        return out

    @r.get("/logs", summary="Search the controller's logs (GBT-8.4: query, keyword, download)")
    def get_logs(rt: RT, who: Caller, grep: str | None = None,
                 level: Annotated[str | None, Query(pattern="^(debug|info|key|warning|error)$")]
                 = None,
                 module: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
        recs = list(logs.search(rt.settings.state, grep=grep, level=level, module=module,
                                limit=limit))
        return {"items": recs, "total": len(recs)}

    @r.get("/quarantine", summary="Stored rows set aside at load because they no longer "
           "validate (kept verbatim with the error); operators and viewers")
    def quarantine(rt: RT, who: Caller) -> dict[str, Any]:
        if who.role is Role.TENANT:
            raise ForbiddenError("the quarantine holds every tenant's objects; "
                                 "ask an operator or viewer")
        items = [q.to_json_dict() for q in rt.store.quarantined()]
        return {"items": items, "total": len(items),
                "fix": "re-create each object with valid values, then DELETE "
                       "/api/v1/quarantine/{id} (or 'cpn quarantine drop ID')"}

    @r.delete("/quarantine/{row_id}", status_code=204,
              summary="Forget a quarantined row once it has been dealt with")
    def quarantine_drop(row_id: Annotated[int, Path(ge=0, le=INT64_MAX)], rt: RT,
                        who: Operator) -> Response:
        if not rt.store.drop_quarantined(row_id):
            raise NotFoundError("quarantined row", str(row_id))
        return Response(status_code=204)

    @r.get("/whoami", summary="The caller's token name, role and tenant")
    async def whoami(who: Caller) -> dict[str, Any]:  # no I/O: no worker-thread hop
        return {"name": who.name, "role": who.role.value, "tenant": who.tenant}

    return r
