"""REST for what ran at the centres (GBA-6.6 fetch results, GBA-6.3 centre reports).

Routes:
- ``GET /api/v1/jobs/{id}/logs?stream=stdout|stderr&offset=N&limit=N`` — the job's
  output as text from byte ``offset`` (poll with the returned ``next_offset`` to follow).
- ``GET /api/v1/jobs/{id}/results`` — stdout, stderr and the declared outputs that
  exist, with size and SHA-256; ``GET /api/v1/jobs/{id}/results/{name}`` — one file's
  bytes (``Range: bytes=N-`` honoured).
- ``GET /api/v1/centres`` / ``GET /api/v1/centres/{site}`` — each centre's status and
  last report.

Rules: a tenant sees only its own jobs; a job that never reached a centre has no logs
(409 naming its state); the files are read from the attempt that ran last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from controller.api.deps import RT, Caller
from controller.auth import Principal
from controller.errors import ConflictError, NotFoundError, ValidationError
from controller.models import Job, Role
from scheduler.centres.base import CentreAdapter
from scheduler.centres.models import CentreStatus

if TYPE_CHECKING:
    from controller.runtime import Runtime


def _job(rt: Runtime, job_id: str, who: Principal) -> Job:
    job = rt.store.get(Job, job_id)
    if job is None or (who.role is Role.TENANT and job.tenant != who.tenant):
        raise NotFoundError("job", job_id)
    return job


def _where(job: Job, adapters: dict[str, CentreAdapter]) -> tuple[CentreAdapter, str]:
    run = job.run if job.run is not None and job.run.centre_job_id else next(
        (a for a in reversed(job.attempts) if a.centre_job_id), None)
    if run is None:
        raise ConflictError(f"job {job.id} is {job.state.value} and never ran at a centre; "
                            "it has no logs or results (yet)")
    adapter = adapters.get(run.site)
    if adapter is None:
        raise ConflictError(f"job {job.id} ran at {run.site}, which is no longer a "
                            "configured centre (centres.sites)")
    return adapter, f"{job.id}.{run.attempt}"


def router(adapters: dict[str, CentreAdapter]) -> APIRouter:
    r = APIRouter(tags=["centres"])

    @r.get("/api/v1/jobs/{job_id}/logs", summary="A job's stdout/stderr from the centre")
    async def logs(job_id: str, rt: RT, who: Caller,
                   stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
                   offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
                   limit: Annotated[int, Query(ge=1, le=16 << 20)] = 1 << 20,
                   ) -> dict[str, Any]:
        job = _job(rt, job_id, who)
        adapter, key = _where(job, adapters)
        data = await _read(adapter, key, stream, offset, limit, missing_ok=True)
        return {"job": job.id, "state": job.state.value, "stream": stream, "offset": offset,
                "next_offset": offset + len(data), "text": data.decode(errors="replace")}

    @r.get("/api/v1/jobs/{job_id}/results", summary="A job's result files with checksums")
    async def results(job_id: str, rt: RT, who: Caller) -> dict[str, Any]:
        job = _job(rt, job_id, who)
        adapter, key = _where(job, adapters)
        files = await adapter.results(key)  # CentreUnavailable: 503
        declared = set(job.spec.outputs)
        have = {f.name for f in files}
        return {"job": job.id, "state": job.state.value, "site": adapter.site,
                "exit_code": job.run.exit_code if job.run else None,
                "files": [{"name": f.name, "size": f.size, "sha256": f.sha256}
                          for f in files],
                "missing": sorted(declared - have)}

    @r.get("/api/v1/jobs/{job_id}/results/{name:path}", summary="One result file's bytes")
    async def result_file(job_id: str, name: str, rt: RT, who: Caller,
                          range_: Annotated[str | None, Header(alias="Range")] = None,
                          ) -> Response:
        job = _job(rt, job_id, who)
        adapter, key = _where(job, adapters)
        start = 0
        if range_:
            if not range_.startswith("bytes=") or not range_[6:].rstrip("-").isdigit():
                raise ValidationError.single("header.Range", f"unsupported Range {range_!r}",
                                             "use 'bytes=N-'")
            start = int(range_[6:].rstrip("-").split("-")[0])
        data = await _read(adapter, key, name, start, 64 << 20, missing_ok=False)
        return Response(content=data, media_type="application/octet-stream",
                        status_code=206 if range_ else 200)

    @r.get("/api/v1/centres", summary="Centres: state and last GBA-6.3 report")
    def centres(rt: RT, who: Caller) -> dict[str, Any]:
        items = [c.to_json_dict() for c in rt.store.list(CentreStatus)]
        known = {c["site"] for c in items}
        items += [{"site": s, "backend": a.backend, "state": "unknown",
                   "reason": "not contacted yet"} for s, a in adapters.items()
                  if s not in known]
        return {"items": sorted(items, key=lambda c: c["site"]), "total": len(items)}

    @r.get("/api/v1/centres/{site}", summary="One centre")
    def centre(site: str, rt: RT, who: Caller) -> dict[str, Any]:
        c = rt.store.get(CentreStatus, site)
        if c is None:
            raise NotFoundError("centre", site)
        return c.to_json_dict()

    return r


async def _read(adapter: CentreAdapter, key: str, name: str, offset: int, limit: int,
                *, missing_ok: bool) -> bytes:
    try:
        return await adapter.read(key, name, offset, limit)
    except FileNotFoundError as exc:
        if missing_ok:
            return b""
        raise NotFoundError("result file", f"{name} ({exc})") from exc
    except ValueError as exc:
        raise ValidationError.single("path.name", str(exc), "name a declared output, "
                                     "stdout or stderr") from exc
