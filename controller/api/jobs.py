"""Job routes (GBA-6.5d, GBA-6.6): submit, list, get, modify, cancel, report status, delete.

Rules:
- A tenant-role caller acts within its own tenant only; an operator names the
  tenant (default ``default``).
- Submission is refused over the tenant's concurrent-jobs quota or resource
  quota, naming the quota (the scheduler enforces the full quota tree later).
- Modify only before the job starts; delete only after it ends; state changes
  follow ``controller.models.job.TRANSITIONS``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Body, Query, Response

from controller.api.deps import RT, Caller, Operator, Paging
from controller.auth import Principal
from controller.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    issues_from_pydantic,
)
from controller.models import Dataset, DatasetState, Job, JobSpec, JobState, Model, Role, Tenant
from controller.models.job import MODIFIABLE, TERMINAL
from controller.runtime import Runtime

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class SubmitJob(Model):
    """Body of POST /jobs: the job spec plus, for operators, ``tenant``."""

    spec: JobSpec
    tenant: str | None = None


class JobStatusReport(Model):
    """Body of POST /jobs/{id}/status (site adapters, GBA-6.3): new ``state``,
    ``site`` where it runs, ``reason``."""

    state: JobState
    site: str | None = None
    reason: str = ""


def _visible(job: Job, who: Principal) -> bool:
    return who.role is not Role.TENANT or job.tenant == who.tenant


def _get(rt: Runtime, job_id: str, who: Principal) -> Job:
    job = rt.store.get(Job, job_id)
    if job is None or not _visible(job, who):
        raise NotFoundError("job", job_id)
    return job


def _check_quota(rt: Runtime, tenant: str, spec: JobSpec) -> None:
    t = rt.store.get(Tenant, tenant)
    if t is None:
        if tenant == "default":
            return
        raise ValidationError.single("body.tenant", f"unknown tenant {tenant!r}",
                                     "create the tenant first or omit tenant")
    active = [j for j in rt.store.list(Job) if j.tenant == tenant and j.state not in TERMINAL]
    q = t.quota
    if q.jobs is not None and len(active) + 1 > q.jobs:
        raise ConflictError(f"over quota: tenant {tenant!r} quota.jobs is {q.jobs} and "
                            f"{len(active)} jobs are active; wait for one to end or raise "
                            "the quota")
    for field in ("cpu_cores", "gpu", "npu", "memory_gib", "bandwidth_mbps"):
        limit = getattr(q, field)
        if limit is None or q.borrowing:
            continue
        used = sum(getattr(j.spec.requirements, field) * j.spec.replicas for j in active)
        want = getattr(spec.requirements, field) * spec.replicas
        if used + want > limit:
            raise ConflictError(f"over quota: tenant {tenant!r} quota.{field} is {limit}, "
                                f"{used:g} in use, this job asks {want:g}")


@router.post("", status_code=201, summary="Submit a job")
def submit(rt: RT, who: Caller, body: SubmitJob) -> dict[str, Any]:
    if who.role is Role.VIEWER:
        raise ForbiddenError("role viewer may not submit jobs (needs role tenant or operator)")
    if who.role is Role.TENANT:
        if body.tenant not in (None, who.tenant):
            raise ForbiddenError(f"role tenant of {who.tenant!r} may not submit for "
                                 f"tenant {body.tenant!r}")
        tenant = who.tenant or "default"
    else:
        tenant = body.tenant or "default"
    _check_quota(rt, tenant, body.spec)
    for i, name in enumerate(body.spec.datasets):
        ds = rt.store.get(Dataset, name)
        if ds is None or (who.role is Role.TENANT and ds.tenant != tenant):
            raise ValidationError.single(f"body.spec.datasets[{i}]",
                                         f"unknown dataset {name!r}",
                                         "register and upload it first (POST /api/v1/datasets)")
        if ds.state is DatasetState.FAILED:
            raise ValidationError.single(f"body.spec.datasets[{i}]",
                                         f"dataset {name!r} failed: {ds.reason}",
                                         "upload it again")
    job = Job(id=f"job-{secrets.token_hex(4)}", tenant=tenant, owner=who.name, spec=body.spec)
    rt.writer.put(job, f"api:{who.name}", "submit job", create_only=True)
    return job.to_json_dict()


@router.get("", summary="List jobs (a tenant sees its own)")
def list_jobs(rt: RT, who: Caller, page: Paging,
              state: Annotated[JobState | None, Query()] = None,
              tenant: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    jobs = [j for j in rt.store.list(Job) if _visible(j, who)
            and (state is None or j.state is state) and (tenant is None or j.tenant == tenant)]
    jobs.sort(key=lambda j: j.submitted_at)
    return page.apply([j.to_json_dict() for j in jobs])


@router.get("/{job_id}", summary="Get a job")
def get_job(job_id: str, rt: RT, who: Caller) -> dict[str, Any]:
    return _get(rt, job_id, who).to_json_dict()


@router.patch("/{job_id}", summary="Modify a job that has not started (partial spec)")
def modify(job_id: str, rt: RT, who: Caller,
           body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    job = _get(rt, job_id, who)
    who.require_tenant_access(job.tenant)
    if job.state not in MODIFIABLE:
        raise ConflictError(f"job {job_id} is {job.state.value}; only submitted or queued "
                            "jobs can be modified")
    merged = job.spec.model_dump(mode="json")
    _deep_merge(merged, body)
    try:
        spec = JobSpec.model_validate(merged)
    except pydantic.ValidationError as exc:
        raise ValidationError(issues_from_pydantic(exc, ("body",))) from exc
    new = job.model_copy(update={"spec": spec})
    rt.writer.put(new, f"api:{who.name}", "modify job")
    return new.to_json_dict()


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = v


def transition(rt: Runtime, job: Job, state: JobState, actor: str, reason: str,
               site: str | None = None) -> Job:
    """Move ``job`` to ``state`` if the state machine allows it."""
    if not job.can_move_to(state):
        allowed = ", ".join(s.value for s in _allowed(job))
        raise ConflictError(f"job {job.id} is {job.state.value} and cannot become "
                            f"{state.value} (allowed: {allowed or 'none, it has ended'})")
    now = datetime.now(UTC)
    update: dict[str, Any] = {"state": state, "reason": reason}
    if state is JobState.RUNNING:
        update["started_at"] = now
        update["site"] = site or job.site
    if state in TERMINAL:
        update["ended_at"] = now
    new = job.model_copy(update=update)
    rt.writer.put(new, actor, reason or f"job {state.value}")
    return new


def _allowed(job: Job) -> list[JobState]:
    from controller.models.job import TRANSITIONS

    return sorted(TRANSITIONS[job.state])


@router.post("/{job_id}/cancel", summary="Cancel a job")
def cancel(job_id: str, rt: RT, who: Caller) -> dict[str, Any]:
    job = _get(rt, job_id, who)
    who.require_tenant_access(job.tenant)
    return transition(rt, job, JobState.CANCELLED, f"api:{who.name}", "cancelled by user") \
        .to_json_dict()


@router.post("/{job_id}/status", summary="Report a job's state (site adapters, operators)")
def report(job_id: str, rt: RT, who: Operator, body: JobStatusReport) -> dict[str, Any]:
    job = _get(rt, job_id, who)
    return transition(rt, job, body.state, f"api:{who.name}", body.reason, body.site) \
        .to_json_dict()


@router.delete("/{job_id}", status_code=204, summary="Delete an ended job")
def delete(job_id: str, rt: RT, who: Caller) -> Response:
    job = _get(rt, job_id, who)
    who.require_tenant_access(job.tenant)
    if job.state not in TERMINAL:
        raise ConflictError(f"job {job_id} is {job.state.value}; cancel it before deleting")
    rt.writer.delete(Job, job_id, f"api:{who.name}", "delete job")
    return Response(status_code=204)
