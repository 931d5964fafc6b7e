"""The ``CentreAdapter`` Protocol: how CPN drives a compute centre's own workload manager
(GBA-6.3 adaptation layer, GBA-6.5g dispatch, GBA-6.6 results, GBA-7 adaptation ↔ scheduling).

Rules every backend keeps (``tests/scheduler/centres/contract.py`` checks them):
- A submission carries a ``key`` (``<cpn job id>.<attempt>``). ``submit`` is idempotent
  by key: it looks the key up at the centre first and returns the existing centre job
  id instead of submitting twice (a controller that crashed between submit and store
  write adopts the job it already made).
- ``jobs()`` lists every CPN job the centre knows (live and recently ended), one
  ``CentreJobStatus`` each; watching is polling it (a Kubernetes backend may watch).
- ``cancel``/``modify`` act on a centre job id; cancelling an ended job is a no-op;
  modifying a started job raises ``CentreRefused``.
- Results live in the job's directory at the centre: ``stdout``/``stderr`` and the
  declared outputs; ``read`` returns bytes from ``offset`` (``logs`` follow a file).
- Staging is a chunked, resumable, checksummed transfer into the centre's data area
  (``scheduler.centres.transfer`` drives it, paced by the controller's bandwidth cap):
  ``stage_offset`` says how many bytes of this version's copy the centre holds,
  ``stage_chunk`` appends at exactly that offset (else ``CentreRefused`` naming the
  offset to resume at), ``stage_commit`` verifies the SHA-256 and puts the file in
  place (a mismatch drops the copy: ``CentreRefused`` "checksum mismatch").
  ``report`` gives resources, load, energy and price.
- Failures are our errors: ``CentreUnavailable`` (scheduler down, unreachable — retry
  or go elsewhere), ``CentreRefused`` (the centre said no — go elsewhere), both
  carrying the centre's own message.

A Kubernetes Jobs backend fits unchanged: key → Job name/label, submit → create Job
(409 AlreadyExists = adopt), jobs → list/watch Jobs by label, cancel → delete with
background propagation, modify → patch while ``suspend: true`` or refuse, stdout →
pod logs, outputs → a PVC mounted at the job directory, stage_* → append to and
rename on that PVC (through a small helper pod), report → node allocatable minus pod
requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from controller.errors import CommitError, CpnError
from controller.errors import ConnectionError as CpnConnectionError


class CentreError(CpnError):
    """A centre operation failed; ``site`` names the centre."""

    def __init__(self, site: str, message: str) -> None:
        self.site = site
        super().__init__(f"centre {site}: {message}")


class CentreUnavailable(CentreError, CpnConnectionError):
    """The centre's workload manager cannot be reached or is down (REST 503)."""


class CentreRefused(CentreError, CommitError):
    """The centre refused the request (bad resources, job already started …; REST 502)."""


class CentreJobState(StrEnum):
    """A centre job's state in CPN's words (each backend maps its own)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    LOST = "lost"  # node failure, preempted by the centre: requeue elsewhere


ENDED = frozenset({CentreJobState.COMPLETED, CentreJobState.FAILED, CentreJobState.CANCELLED,
                   CentreJobState.TIMEOUT, CentreJobState.LOST})


@dataclass(frozen=True, slots=True)
class CentreJob:
    """What to run: ``key`` (``job-id.attempt``), ``job_id``, ``name``, ``command``
    (shell script run in the job directory), ``cpus``, ``memory_mib``, ``gpus``,
    ``walltime_s``, ``priority`` (0–1000), ``inputs`` (file names staged into the
    centre's data area, linked into the job directory), ``outputs`` (declared result
    files), ``env``."""

    key: str
    job_id: str
    name: str
    command: str
    cpus: int = 1
    memory_mib: int = 0
    gpus: int = 0
    walltime_s: float = 3600.0
    priority: int = 100
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CentreJobStatus:
    """One job as the centre sees it: ``key``, ``centre_id``, ``state``, ``raw_state``
    (the workload manager's word), ``exit_code``, ``reason``, ``submitted_at`` /
    ``started_at`` / ``ended_at`` (epoch s, 0 = not yet), ``node``."""

    key: str
    centre_id: str
    state: CentreJobState
    raw_state: str = ""
    exit_code: int | None = None
    reason: str = ""
    submitted_at: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    node: str = ""


@dataclass(frozen=True, slots=True)
class JobChange:
    """A modify: any of ``walltime_s``, ``priority``, ``cpus`` (``None`` = keep)."""

    walltime_s: float | None = None
    priority: int | None = None
    cpus: int | None = None


@dataclass(frozen=True, slots=True)
class ResultFile:
    """A file in the job directory: ``name`` (relative), ``size`` (bytes), ``sha256``."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class CentreReport:
    """GBA-6.3 periodic report: ``resources`` (totals: ``cpu`` cores, ``memory`` GiB,
    ``gpu``), ``allocated`` (same keys), ``load`` (0–1, allocated CPU share),
    ``energy_w`` (power draw now, W) and ``energy_source`` (``meter`` or ``model``:
    idle + load × (max − idle)), ``price_per_hour``, ``nodes`` (name → state),
    ``queue`` (pending, running counts)."""

    resources: dict[str, float]
    allocated: dict[str, float]
    load: float
    energy_w: float
    energy_source: str
    price_per_hour: float
    nodes: dict[str, str] = field(default_factory=dict)
    pending: int = 0
    running: int = 0


@runtime_checkable
class CentreAdapter(Protocol):
    """One compute centre's workload manager (Slurm, Kubernetes, the simulator)."""

    site: str
    backend: str

    async def submit(self, job: CentreJob) -> str:
        """Submit (idempotent by ``job.key``); returns the centre job id."""
        ...

    async def find(self, key: str) -> CentreJobStatus | None: ...

    async def jobs(self) -> list[CentreJobStatus]: ...

    async def cancel(self, centre_id: str) -> None: ...

    async def modify(self, centre_id: str, change: JobChange) -> None: ...

    async def results(self, key: str) -> list[ResultFile]:
        """stdout, stderr and the declared outputs that exist, with checksums."""
        ...

    async def read(self, key: str, name: str, offset: int = 0,
                   limit: int = 1 << 20) -> bytes: ...

    async def stage_offset(self, name: str, sha256: str) -> int:
        """Bytes the centre holds of an unfinished copy of this version (0 = none)."""
        ...

    async def stage_chunk(self, name: str, sha256: str, offset: int, data: bytes) -> int:
        """Append ``data`` at ``offset`` (= ``stage_offset``); returns the bytes held."""
        ...

    async def stage_commit(self, name: str, sha256: str) -> None:
        """Verify the copy's SHA-256 and put it in place as ``name``."""
        ...

    async def staged(self, name: str) -> str | None:
        """The sha256 of a staged file, ``None`` when absent."""
        ...

    async def report(self) -> CentreReport: ...

    async def close(self) -> None: ...
