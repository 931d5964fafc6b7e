"""Jobs (GBA-6.5d, GBA-6.6): submit, queue, run, finish, cancel, fail; modify.

Rules (the state machine is the table ``TRANSITIONS``):
- A job is created ``submitted``; the scheduler moves it to ``queued``, then
  ``running`` when bound to a site; it ends ``finished``, ``failed`` or ``cancelled``.
- At a site with a centre (a workload manager behind a ``CentreAdapter``, GBA-6.3)
  placement makes the job ``dispatched`` (handed to the centre, waiting in its queue);
  from then on the state follows the centre: ``running`` when the centre starts it,
  ``finished`` / ``failed`` (with the exit code in ``run``) / ``cancelled`` when it
  ends. A centre that refuses or cannot be reached sends it back to ``queued``.
- ``run`` records the centre's side (centre job id, attempt, times, exit code,
  resources); metering reads site, ``started_at``/``ended_at`` and ``run.resources``.
- Only a job that has not started (submitted/queued/dispatched) can be modified;
  a dispatched job's change is applied at the centre by the dispatcher.
- A terminal job changes no more; only a terminal job can be deleted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from controller.models.base import Entity, Model, Name, register
from controller.models.compute import ResourceType
from controller.models.service import Requirements


def _rel_path(v: str) -> str:
    if v.startswith("/") or ".." in v.split("/") or not re.fullmatch(r"[A-Za-z0-9_.\-/]{1,255}", v):
        raise ValueError(f"{v!r} is not a relative path inside the job's directory "
                         "(letters, digits, '_', '.', '-', '/'; no leading '/', no '..')")
    return v


#: A relative path inside a job's directory: no leading '/', no '..' segment.
RelPath = Annotated[str, AfterValidator(_rel_path)]


class JobState(StrEnum):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[JobState] = frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SUBMITTED: frozenset({JobState.QUEUED, JobState.RUNNING, JobState.DISPATCHED,
                                   JobState.CANCELLED, JobState.FAILED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.DISPATCHED, JobState.CANCELLED,
                                JobState.FAILED}),
    # DISPATCHED → QUEUED: the centre refused it, was unreachable, or lost it
    JobState.DISPATCHED: frozenset({JobState.RUNNING, JobState.FINISHED, JobState.FAILED,
                                    JobState.CANCELLED, JobState.QUEUED}),
    JobState.RUNNING: frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED,
                                 JobState.QUEUED}),  # QUEUED: preempted and requeued
    JobState.FINISHED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

MODIFIABLE: frozenset[JobState] = frozenset({JobState.SUBMITTED, JobState.QUEUED,
                                              JobState.DISPATCHED})
#: States in which a job holds resources at its site (the scheduler charges them).
HOLDING: frozenset[JobState] = frozenset({JobState.DISPATCHED, JobState.RUNNING})


class JobKind(StrEnum):
    """WP-3.3.4 workloads."""

    HPC = "hpc"
    BIG_DATA = "big-data"
    AI_TRAINING = "ai-training"
    AI_INFERENCE = "ai-inference"
    WEB = "web"
    VIDEO = "video"
    OTHER = "other"


Scope = Literal["server", "switch", "cluster"]


def _all_scopes() -> list[Scope]:
    return ["server", "switch", "cluster"]


class AcceleratorRequest(Model):
    """Accelerator instances from the GB/T 45401 pool (GBT-6.2.8, GBT-7.2): ``count``
    instances of ``type`` with at least ``min_tflops`` / ``min_memory_gib`` each, in the
    tightest of ``scopes`` (server, switch, cluster) that has them — all or none."""

    count: int = Field(default=1, ge=1, le=64)
    type: ResourceType = ResourceType.GPU
    min_tflops: float = Field(default=0, ge=0)
    min_memory_gib: float = Field(default=0, ge=0)
    scopes: list[Scope] = Field(default_factory=_all_scopes, min_length=1)


class JobSpec(Model):
    """What a job asks for; the modifiable part of a job.

    Fields: ``name``; ``kind``; ``requirements``; ``replicas``; ``priority``
    (0–1000, higher first); ``queue``; ``policy`` (scheduling policy set name);
    ``data_site`` / ``data_gib`` (where its input lives and how big, for data-aware
    placement); ``runtime_estimate_s`` (for backfill); ``site`` (manual placement);
    ``params`` (free-form).
    """

    name: str = Field(min_length=1, max_length=128)
    kind: JobKind = JobKind.OTHER
    requirements: Requirements = Field(default_factory=Requirements)
    replicas: int = Field(default=1, ge=1, le=100_000)
    priority: int = Field(default=100, ge=0, le=1000)
    queue: Name = "default"
    policy: str | None = None
    data_site: Name | None = None
    data_gib: float = Field(default=0, ge=0)
    runtime_estimate_s: float | None = Field(default=None, gt=0)
    site: Name | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    command: str | None = Field(default=None, min_length=1, max_length=65536)
    outputs: list[RelPath] = Field(default_factory=list, max_length=64)
    walltime_s: float | None = Field(default=None, gt=0, le=366 * 86400)
    datasets: list[Name] = Field(default_factory=list, max_length=64)
    accelerators: AcceleratorRequest | None = None


class JobRun(Model):
    """The centre's side of a dispatched job (GBA-6.3): ``site``; ``attempt`` (1, 2 …
    — a job requeued elsewhere is a new attempt); ``centre_job_id`` (the workload
    manager's id, ``None`` until the submission is confirmed); ``centre_state`` (the
    workload manager's own word, e.g. ``PENDING``); ``exit_code``; ``dispatched_at`` /
    ``started_at`` / ``ended_at`` (as the centre saw them); ``node``; ``resources``
    (what the job holds: ``cpu`` cores, ``memory`` GiB, ``gpu`` …); ``instances``
    (accelerator instances taken from the GB/T 45401 pool); ``applied_spec`` (hash
    of the spec last applied at the centre, for modify)."""

    site: Name
    attempt: int = Field(default=1, ge=1)
    centre_job_id: str | None = None
    centre_state: str = ""
    exit_code: int | None = None
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    node: str = ""
    resources: dict[str, float] = Field(default_factory=dict)
    instances: list[str] = Field(default_factory=list)
    applied_spec: str = ""


def utcnow() -> datetime:
    return datetime.now(UTC)


@register
class Job(Entity):
    """A job: ``id``, ``tenant``, ``owner`` (user), ``spec``, ``state``, ``site``
    (where it runs), ``reason`` (last transition's why), timestamps (``started_at``
    is when it really started: at a centre, when the workload manager ran it), ``run``
    (the centre's side, see ``JobRun``) and ``attempts`` (earlier runs that ended in a
    requeue, newest last)."""

    KIND = "job"
    id: Name
    tenant: Name
    owner: str
    spec: JobSpec
    state: JobState = JobState.SUBMITTED
    site: Name | None = None
    reason: str = ""
    submitted_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    run: JobRun | None = None
    attempts: list[JobRun] = Field(default_factory=list, max_length=100)

    @property
    def key(self) -> str:
        return self.id

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def can_move_to(self, new: JobState) -> bool:
        return new in TRANSITIONS[self.state]
