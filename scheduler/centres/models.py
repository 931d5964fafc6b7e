"""Centres: the ``centres:`` config section and each centre's observed status (GBA-6.3).

Rules:
- ``centres.sites`` maps a site name to its workload manager: ``backend: slurm`` with
  ``conf`` (the cluster's slurm.conf) and ``workdir`` (its shared filesystem as the
  controller sees it), or ``backend: sim`` (the in-process simulator; tests and
  dry labs only — it runs nothing).
- ``CentreStatus`` (kind ``centre``) is written only by the dispatcher: ``state`` up /
  down with ``reason`` and ``since``, and the last GBA-6.3 report (resources,
  allocated, load, energy, price, queue lengths). The scheduler places nothing at a
  centre that is down and takes a centre's capacity from its report.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from controller.models.base import Entity, Model, Name, register
from controller.models.job import utcnow


class CentreConfig(Model):
    """One centre: ``backend`` (slurm / sim); Slurm: ``conf``, ``partition``,
    ``jobcomp`` (jobcomp/filetxt file, for jobs squeue has forgotten), ``rest``
    (slurmrestd address, ``unix:/path`` or ``http://host:port``: submit, list and cancel
    over kept-alive connections instead of a client process per call) with ``run_as``
    (the account slurmrestd runs jobs as; job directories are given to it); ``workdir``
    (job directories and staged data); ``price_per_hour`` (¥/h, reported), ``idle_w`` /
    ``max_w`` (W, energy model when the cluster has no meter); simulator: ``cpus``,
    ``memory_gib``, ``gpus``, ``runtime_s``."""

    backend: Literal["slurm", "sim"]
    conf: Path | None = None
    workdir: Path
    partition: str = ""
    jobcomp: Path | None = None
    rest: str | None = Field(default=None, pattern=r"^(unix:/\S+|http://[^/\s]+:\d+/?)$")
    run_as: str = ""
    price_per_hour: float = Field(default=1.0, ge=0)
    idle_w: float = Field(default=100.0, ge=0)
    max_w: float = Field(default=400.0, ge=0)
    cpus: int = Field(default=8, ge=1)
    memory_gib: float = Field(default=32.0, gt=0)
    gpus: int = Field(default=0, ge=0)
    runtime_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _slurm_needs_conf(self) -> CentreConfig:
        if self.backend == "slurm" and self.conf is None:
            raise ValueError("backend slurm needs conf: the cluster's slurm.conf path")
        return self


class CentresSection(Model):
    """``centres:`` — ``sites`` (site → ``CentreConfig``); ``poll_s`` (how often job
    states are read from each centre); ``report_s`` (GBA-6.3 resource report period);
    ``default_walltime_s`` (for a job without ``walltime_s``/``runtime_estimate_s``);
    ``parallel`` (submissions in flight per centre); ``lost_after_s`` (a dispatched job
    the centre does not list after this long is lost and requeued)."""

    sites: dict[Name, CentreConfig] = Field(default_factory=dict)
    poll_s: float = Field(default=1.0, gt=0, le=3600)
    report_s: float = Field(default=10.0, gt=0, le=86400)
    default_walltime_s: float = Field(default=3600.0, gt=0)
    parallel: int = Field(default=16, ge=1, le=256)
    lost_after_s: float = Field(default=30.0, gt=0)


@register
class CentreStatus(Entity):
    """A centre as last seen (GBA-6.3): ``site``, ``backend``, ``state`` (up / down),
    ``reason``, ``since`` (last state change), ``resources`` / ``allocated`` (cpu
    cores, memory GiB, gpu), ``load`` (0–1), ``energy_w`` and ``energy_source``,
    ``price_per_hour``, ``pending`` / ``running`` (jobs in its queue), ``reported_at``."""

    KIND = "centre"
    site: Name
    backend: str
    state: Literal["up", "down"] = "up"
    reason: str = ""
    since: datetime = Field(default_factory=utcnow)
    resources: dict[str, float] = Field(default_factory=dict)
    allocated: dict[str, float] = Field(default_factory=dict)
    load: float = 0.0
    energy_w: float = 0.0
    energy_source: str = ""
    price_per_hour: float = 0.0
    pending: int = 0
    running: int = 0
    reported_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.site
