"""The OpenAPI document as clients rely on it (issue #15 REST conformance).

Rules:
- One schema per model: input and output are not split (``Site``, not ``Site-Input``
  and ``Site-Output``), so a body and a response of the same kind share one schema.
- Every error response is ``ErrorBody`` (``{"error": {"code", "message",
  "issues"}}``), never FastAPI's ``HTTPValidationError``; the document lists them
  where they happen, for every router (plugins' too), by rule:
  * ``/api/…`` needs a token: 401, and 403 (the role may not do this); it may meet
    the current state (exists already, referenced, wrong state, a component not
    running): 409; and a device or daemon it needs may refuse (502) or be
    unreachable (503);
  * a path with a ``{parameter}``, or a write naming objects in its body: 404;
  * anything with a parameter or a body may be invalid: 422.
  A router's own declaration of a status wins over the rule.
- Authentication is the ``bearer`` security scheme (HTTP ``Authorization: Bearer
  <token>``), required by every ``/api/…`` operation; the header is read by the auth
  dependency itself rather than declared as a parameter of each operation.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from controller.api.deps import ErrorBody

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
WRITES = {"post", "put", "patch", "delete"}
_DESCRIPTIONS = {
    "401": "Missing, invalid or revoked token",
    "403": "The caller's role or tenant may not do this",
    "404": "No such object",
    "409": "The current state forbids this (exists already, referenced, wrong state, "
           "over quota)",
    "422": "Invalid input: each issue names the field path and the fix",
    "502": "A device refused the change; everything was rolled back",
    "503": "A device, daemon or component this needs is unavailable; retry later",
}


def _error(status: str) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ERROR_REF}}}


def _only_ref(media: dict[str, Any]) -> None:
    """A route that parses its body itself declares ``dict``; its declared model's
    ``$ref`` replaces the generic object schema (no siblings beside the ``$ref``)."""
    schema = media.get("schema")
    if isinstance(schema, dict) and "$ref" in schema and len(schema) > 1:
        media["schema"] = {"$ref": schema["$ref"]}


def _document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes, separate_input_output_schemas=False)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}").pop("$defs", {}))
    schemas["ErrorBody"] = ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}")
    schemas["ErrorBody"].pop("$defs", None)
    doc["components"]["securitySchemes"] = {"bearer": {
        "type": "http", "scheme": "bearer",
        "description": "a token from 'cpn token create' (or config auth.tokens)"}}
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses: dict[str, Any] = op["responses"]
            wanted: list[str] = []
            if path.startswith("/api/"):
                wanted += ["401", "403", "409", "502", "503"]
                op.setdefault("security", [{"bearer": []}])
            if "{" in path or (path.startswith("/api/") and method in WRITES):
                wanted.append("404")
            # /api/… as before the token stopped being a declared header parameter
            if op.get("parameters") or op.get("requestBody") or path.startswith("/api/"):
                wanted.append("422")
            for status in wanted:
                responses.setdefault(status, _error(status))
            for media in (op.get("requestBody") or {}).get("content", {}).values():
                _only_ref(media)
            for resp in responses.values():
                for media in resp.get("content", {}).values():
                    _only_ref(media)
            for status, resp in responses.items():
                if status[:1] in "45" and status in _DESCRIPTIONS:
                    resp["content"] = {"application/json": {"schema": ERROR_REF}}
    text = json.dumps(doc)
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in text:
            schemas.pop(unused, None)
    return doc


def install(app: FastAPI) -> None:
    """Serve the document above at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's override point
