"""Console routes: the page (``/console``), its static files (``/console/static``) and
``/api/v1/console/overview``.

Rules:
- The page and its static files carry no data and need no token; everything the page
  shows comes from token-checked REST routes (the page's login keeps the token in the
  browser's session storage and sends it as ``Authorization: Bearer``), so roles and
  tenant scoping are exactly those of the REST API.
- Front-end libraries are vendored built files under ``static/vendor`` (licences
  beside them): nothing is fetched from elsewhere at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from controller.api.deps import RT, Caller
from controller.console.view import overview
from controller.errors import NotFoundError

STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
          ".svg": "image/svg+xml", ".md": "text/plain", ".txt": "text/plain"}


def router() -> APIRouter:
    r = APIRouter(tags=["console"])

    @r.get("/console", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    @r.get("/console/static/{path:path}", include_in_schema=False)
    def static(path: str) -> FileResponse:
        f = (STATIC / path).resolve()
        if not f.is_file() or STATIC not in f.parents:
            raise NotFoundError("console file", path)
        return FileResponse(f, media_type=_TYPES.get(f.suffix, "application/octet-stream"),
                            headers={"Cache-Control": "max-age=3600"
                                     if "vendor" in f.parts else "no-cache"})

    @r.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console")

    @r.get("/api/v1/console/overview", summary="Topology, compute, flows and sessions "
           "for the console (one document)")
    def get_overview(rt: RT, who: Caller) -> dict[str, Any]:
        out = overview(rt.store, rt.sessions.snapshot(), rt.console_views)
        out["whoami"] = {"name": who.name, "role": who.role.value, "tenant": who.tenant}
        out["seq"] = rt.store.last_seq()
        return out

    return r
