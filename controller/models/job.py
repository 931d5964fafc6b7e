"""Jobs (GBA-6.5d, GBA-6.6): submit, queue, run, finish, cancel, fail; modify.

Rules (the state machine is the table ``TRANSITIONS``):
- A job is created ``submitted``; the scheduler moves it to ``queued``, then
  ``running`` when bound to a site; it ends ``finished``, ``failed`` or ``cancelled``.
- Only a job that has not started (submitted/queued) can be modified.
- A terminal job changes no more; only a terminal job can be deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from controller.models.base import Entity, Model, Name, register
from controller.models.service import Requirements


class JobState(StrEnum):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[JobState] = frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SUBMITTED: frozenset({JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED,
                                   JobState.FAILED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED,
                                 JobState.QUEUED}),  # QUEUED: preempted and requeued
    JobState.FINISHED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

MODIFIABLE: frozenset[JobState] = frozenset({JobState.SUBMITTED, JobState.QUEUED})


class JobKind(StrEnum):
    """WP-3.3.4 workloads."""

    HPC = "hpc"
    BIG_DATA = "big-data"
    AI_TRAINING = "ai-training"
    AI_INFERENCE = "ai-inference"
    WEB = "web"
    VIDEO = "video"
    OTHER = "other"


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


def utcnow() -> datetime:
    return datetime.now(UTC)


@register
class Job(Entity):
    """A job: ``id``, ``tenant``, ``owner`` (user), ``spec``, ``state``, ``site``
    (where it runs), ``reason`` (last transition's why), timestamps."""

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

    @property
    def key(self) -> str:
        return self.id

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def can_move_to(self, new: JobState) -> bool:
        return new in TRANSITIONS[self.state]
