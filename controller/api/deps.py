"""Request plumbing shared by the routers: runtime access, auth, pagination, errors.

Rules:
- Every error is JSON ``{"error": {"code", "message", "issues": [{"path",
  "message", "fix"}]}}`` with a human sentence; validation errors list field paths
  (``body.spec.replicas``).
- 401 for a missing/invalid token, 403 for a role that may not do this, 404 for
  an unknown object, 409 when the state forbids the change, 422 for bad input.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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
from controller.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


RT = Annotated[Runtime, Depends(runtime)]


def principal(request: Request,
              authorization: Annotated[str | None, Header()] = None) -> Principal:
    rt: Runtime = request.app.state.rt
    return rt.tokens.authenticate(authorization)


Caller = Annotated[Principal, Depends(principal)]


def operator(who: Caller) -> Principal:
    who.require_write()
    return who


Operator = Annotated[Principal, Depends(operator)]


class Page:
    """``?limit=&offset=`` pagination."""

    def __init__(self, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0)] = 0) -> None:
        self.limit = limit
        self.offset = offset

    def apply(self, items: list[Any]) -> dict[str, Any]:
        chunk = items[self.offset:self.offset + self.limit]
        nxt = self.offset + self.limit
        return {"items": chunk, "total": len(items), "limit": self.limit,
                "offset": self.offset, "next_offset": nxt if nxt < len(items) else None}


Paging = Annotated[Page, Depends(Page)]


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
        path = join_path(tuple(p for p in err.get("loc", ()) if p != "__root__"))
        issues.append(Issue(path, str(err.get("msg", "invalid")).removeprefix("Value error, ")))
    summary = "; ".join(str(i) for i in issues[:3])
    return JSONResponse(error_body("invalid", f"request rejected: {summary}", issues),
                        status_code=422)
