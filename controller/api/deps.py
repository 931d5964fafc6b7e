"""Request plumbing shared by the routers: runtime access, auth, pagination, errors.

Rules:
- Every error is JSON ``{"error": {"code", "message", "issues": [{"path",
  "message", "fix"}]}}`` with a human sentence; validation errors list field paths
  (``body.spec.replicas``).
- 401 for a missing/invalid token, 403 for a role that may not do this, 404 for
  an unknown object, 409 when the state forbids the change, 422 for bad input.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.auth import Principal
from controller.errors import (
    AuthError,
    CommitError,
    ConflictError,
    ConnectionError,
    CpnError,
    ForbiddenError,
    Issue,
    NotFoundError,
    ValidationError,
    join_path,
)
from controller.models.base import Strict
from controller.runtime import Runtime

log = logging.getLogger("cpn.api")

#: Bounds of integer query parameters: SQLite integers are signed 64-bit (a larger
#: ``since`` overflowed into a 500), and no page starts beyond a billion items.
INT64_MAX = 2**63 - 1
MAX_OFFSET = 1_000_000_000


# The dependencies below are ``async def`` on purpose: none of them waits on anything
# on the loop (the token check is a dict hit; the store lookup behind a cache miss, at
# most every few seconds a token, runs on a worker thread: the store's lock may be held
# by a committing writer), and FastAPI runs a plain ``def`` dependency in a worker
# thread — a thread hop per dependency per request, the largest cost of a small GET
# (issue #19).


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


RT = Annotated[Runtime, Depends(runtime)]


async def principal(request: Request) -> Principal:
    # the header read directly, not declared as a ``Header()`` parameter: FastAPI
    # re-inspects a declared parameter's annotation on every request (~15 % of a small
    # GET); the OpenAPI document declares the bearer scheme instead (``openapi.py``)
    rt: Runtime = request.app.state.rt
    header = request.headers.get("authorization")
    who = rt.tokens.cached(header)
    if who is None:
        who = await run_in_threadpool(rt.tokens.authenticate, header)
    return who


Caller = Annotated[Principal, Depends(principal)]


async def operator(who: Caller) -> Principal:
    who.require_write()
    return who


Operator = Annotated[Principal, Depends(operator)]


class Page:
    """``?limit=&offset=`` pagination."""

    def __init__(self, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> None:
        self.limit = limit
        self.offset = offset

    def apply(self, items: list[Any]) -> dict[str, Any]:
        chunk = items[self.offset:self.offset + self.limit]
        nxt = self.offset + self.limit
        return {"items": chunk, "total": len(items), "limit": self.limit,
                "offset": self.offset, "next_offset": nxt if nxt < len(items) else None}


async def paging(limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> Page:
    return Page(limit, offset)


Paging = Annotated[Page, Depends(paging)]


class ErrorIssue(Strict):
    """One problem: ``path`` (``body.spec.replicas``, ``query.since``), ``message``,
    ``fix``."""

    path: str
    message: str
    fix: str = ""


class ErrorDetail(Strict):
    """``code`` (``invalid``, ``not_found``, ``conflict``, ``unauthorized`` …), a
    human ``message`` and the ``issues`` it is made of."""

    code: str
    message: str
    issues: list[ErrorIssue] = []


class ErrorBody(Strict):
    """Every error response of the API."""

    error: ErrorDetail


def error_body(code: str, message: str, issues: list[Issue] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message,
                      "issues": [{"path": i.path, "message": i.message, "fix": i.fix}
                                 for i in issues or []]}}


def _status(exc: CpnError) -> tuple[int, str]:
    if isinstance(exc, AuthError):
        return 401, "unauthorized"
    if isinstance(exc, ForbiddenError):
        return 403, "forbidden"
    if isinstance(exc, NotFoundError):
        return 404, "not_found"
    if isinstance(exc, ConflictError):
        return 409, "conflict"
    if isinstance(exc, ValidationError):
        return 422, "invalid"
    if isinstance(exc, CommitError):  # a device refused; everything was rolled back
        return 502, "device_rejected"
    if isinstance(exc, ConnectionError):  # a device or daemon unreachable: retry later
        return 503, "unavailable"
    return 500, "error"


async def cpn_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CpnError)
    status, code = _status(exc)
    issues = exc.issues if isinstance(exc, ValidationError) else None
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    message = str(exc) if not isinstance(exc, ValidationError) else exc.render()
    return JSONResponse(error_body(code, message, issues), status_code=status, headers=headers)


async def request_validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err.get("loc", ()) if p != "__root__")
        if err.get("type") == "json_invalid":  # loc is (body, character offset)
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            issues.append(Issue("body", f"not valid JSON{at}: "
                                f"{(err.get('ctx') or {}).get('error', 'decode error')}",
                                "send a JSON document with Content-Type: application/json"))
            continue
        path = join_path(loc)
        issues.append(Issue(path, str(err.get("msg", "invalid")).removeprefix("Value error, ")))
    summary = "; ".join(str(i) for i in issues[:3])
    return JSONResponse(error_body("invalid", f"request rejected: {summary}", issues),
                        status_code=422)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
               413: "too_large", 415: "unsupported_media_type", 422: "invalid"}


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method …) in the documented shape
    instead of ``{"detail": …}``."""
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such path {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    return JSONResponse(error_body(code, message), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected: logged with its traceback, answered in the documented shape."""
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("error", f"internal error ({type(exc).__name__}); the "
                                   "controller log has the details"), status_code=500)
