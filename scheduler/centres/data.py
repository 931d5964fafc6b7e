"""Datasets over REST and their staging to centres (GBA-6.3 data upload/download/resume,
GBA-6.4.3g chunked bulk transfer, GBA-6.5f-7 data-aware placement, GBA-6.6).

Routes:
- ``POST /api/v1/datasets`` ``{name, size, sha256[, site]}`` — register; with ``site``
  the bytes are already at that centre (checked there by checksum: ready at once).
- ``PUT /api/v1/datasets/{name}/data`` with ``Content-Range: bytes A-B/SIZE`` — one
  chunk. ``A`` must be the number of bytes received so far (``received`` in ``GET``):
  an interrupted upload resumes where it stopped; a chunk at any other offset is 409
  naming the offset to resume at. After the last byte the SHA-256 decides: ``ready``,
  or ``failed`` with both checksums (the partial file is dropped).
- ``GET /api/v1/datasets/{name}/data`` (``Range: bytes=A-`` or ``A-B`` → 206) — download.
- ``GET /api/v1/datasets[/{name}]`` (one dataset also shows ``staging``: centre → bytes
  it holds of a copy in progress), ``DELETE /api/v1/datasets/{name}``.

Rules:
- Transfers in both directions are paced to ``datasets.bandwidth_mbps`` (one token
  bucket per controller, shared by every transfer).
- Bytes live under ``datasets.root`` (``<name>`` when ready, ``.uploads/<name>.part``
  while uploading); the store holds the record, not the bytes.
- Staging (the dispatcher's ``stage`` hook): before a job's submission each dataset is
  copied to the chosen centre and verified there; the centre joins the dataset's
  ``locations``. The copy runs in the background through the same chunked, resumable,
  checksummed transfer under the same cap (``scheduler.centres.transfer``); meanwhile
  the job waits with the copy's progress as its reason. A copy that was cut (centre
  unreachable, cancelled) resumes at the centre's offset on the next pass; a checksum
  mismatch at the centre fails the job. A dataset still uploading holds the job
  (``DataWaiting``); a failed one fails it (``DataFailed``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from controller.api.deps import RT, Caller
from controller.auth import Principal
from controller.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from controller.logs import key_event
from controller.models import Dataset, DatasetState, Job, Model, Name, Role
from controller.models.job import utcnow
from scheduler.centres.base import CentreAdapter, CentreRefused
from scheduler.centres.files import sha256_file
from scheduler.centres.transfer import stage

if TYPE_CHECKING:
    from controller.runtime import Runtime

ACTOR = "datasets"
log = logging.getLogger("cpn.datasets")


class DatasetsSection(Model):
    """``datasets:`` — ``root`` (where the controller keeps dataset bytes; default
    ``<state>/datasets``), ``bandwidth_mbps`` (cap on REST transfers, Mbit/s; 0 = none),
    ``max_chunk_mib`` (largest accepted chunk)."""

    root: Path | None = None
    bandwidth_mbps: float = Field(default=0.0, ge=0)
    max_chunk_mib: int = Field(default=64, ge=1, le=1024)


class RegisterDataset(Model):
    name: Name
    size: int = Field(ge=0, le=1 << 44)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    site: Name | None = None
    tenant: Name | None = None


class DataWaiting(Exception):
    """A job's dataset is not ready yet (still uploading)."""


class DataFailed(Exception):
    """A job's dataset failed (checksum mismatch, missing everywhere)."""


class Throttle:
    """A token bucket of ``rate`` bytes/s (0 = unlimited), burst 64 KiB."""

    def __init__(self, mbps: float) -> None:
        self.rate = mbps * 1e6 / 8
        self.burst = 64 * 1024
        self.tokens = float(self.burst)
        self.at = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            self.tokens -= n
            if self.tokens < 0:
                await asyncio.sleep(-self.tokens / self.rate)


class DataArea:
    """Dataset bytes under ``root`` and the transfer pacing."""

    def __init__(self, root: Path, bandwidth_mbps: float, max_chunk: int) -> None:
        self.root = root
        self.uploads = root / ".uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.throttle = Throttle(bandwidth_mbps)
        self.max_chunk = max_chunk
        self.moved = 0  # bytes staged to centres

    def path(self, name: str) -> Path:
        return self.root / name

    def part(self, name: str) -> Path:
        return self.uploads / f"{name}.part"

    def received(self, ds: Dataset) -> int:
        if ds.state is DatasetState.READY:
            return ds.size
        p = self.part(ds.name)
        return p.stat().st_size if p.exists() else 0


def area(rt: Runtime) -> DataArea:
    st: dict[str, Any] = rt.settings.extra.setdefault("centres", {})
    if "data" not in st:
        sec = rt.cfg.sections.get("datasets") if rt.cfg is not None else None
        cfg = sec if isinstance(sec, DatasetsSection) else DatasetsSection()
        st["data"] = DataArea(cfg.root or rt.settings.state / "datasets", cfg.bandwidth_mbps,
                              cfg.max_chunk_mib << 20)
    out: DataArea = st["data"]
    return out


def _get(rt: Runtime, name: str, who: Principal) -> Dataset:
    ds = rt.store.get(Dataset, name)
    if ds is None or (who.role is Role.TENANT and ds.tenant != who.tenant):
        raise NotFoundError("dataset", name)
    return ds


def _view(ds: Dataset, a: DataArea, rt: Runtime | None = None) -> dict[str, Any]:
    out = {**ds.to_json_dict(), "received": a.received(ds)}
    stager = rt.settings.extra.get("centres", {}).get("stager") if rt is not None else None
    if isinstance(stager, DataStager):  # copies to centres in progress: site → bytes there
        out["staging"] = {site: stager.held.get((n, site), 0)
                          for (n, site), t in stager.copies.items()
                          if n == ds.name and not t.done()}
    return out


_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def router(rt: Runtime, adapters: dict[str, CentreAdapter]) -> APIRouter:
    r = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])

    @r.post("", status_code=201, summary="Register a dataset (size, sha256[, site])")
    async def register(body: RegisterDataset, rt: RT, who: Caller) -> dict[str, Any]:
        if who.role is Role.VIEWER:
            raise ForbiddenError("role viewer may not register datasets")
        tenant = who.tenant if who.role is Role.TENANT else body.tenant
        if rt.store.get(Dataset, body.name) is not None:
            raise ConflictError(f"dataset {body.name!r} exists; delete it first or pick "
                                "another name")
        ds = Dataset(name=body.name, tenant=tenant or "default", size=body.size,
                     sha256=body.sha256)
        if body.site is not None:
            adapter = adapters.get(body.site)
            if adapter is None:
                raise ValidationError.single("body.site", f"{body.site!r} is not a centre",
                                             f"one of: {', '.join(sorted(adapters))}")
            have = await adapter.staged(body.name)
            if have != body.sha256:
                raise ValidationError.single(
                    "body.site", f"centre {body.site} has no {body.name} with sha256 "
                    f"{body.sha256[:12]}… (it has {have[:12] + '…' if have else 'none'})",
                    "put the file in the centre's data area, or upload it here")
            ds = ds.model_copy(update={"state": DatasetState.READY, "ready_at": utcnow(),
                                       "locations": [body.site]})
        rt.writer.put(ds, f"api:{who.name}", "register dataset", create_only=True)
        return _view(ds, area(rt))

    @r.get("", summary="List datasets")
    def list_(rt: RT, who: Caller) -> dict[str, Any]:
        a = area(rt)
        items = [_view(d, a) for d in rt.store.list(Dataset)
                 if who.role is not Role.TENANT or d.tenant == who.tenant]
        return {"items": items, "total": len(items)}

    @r.get("/{name}", summary="A dataset with bytes received so far")
    def get(name: str, rt: RT, who: Caller) -> dict[str, Any]:
        return _view(_get(rt, name, who), area(rt), rt)

    @r.put("/{name}/data", summary="Upload one chunk (Content-Range; resumable)")
    async def put_data(name: str, request: Request, rt: RT, who: Caller,
                       content_range: Annotated[str | None, Header(alias="Content-Range")]
                       = None) -> dict[str, Any]:
        ds = _get(rt, name, who)
        who.require_tenant_access(ds.tenant)
        a = area(rt)
        if ds.state is not DatasetState.UPLOADING:
            raise ConflictError(f"dataset {name} is {ds.state.value}"
                                + (f" ({ds.reason}); delete and register it again"
                                   if ds.reason else "; nothing more to upload"))
        m = _RANGE.match(content_range or "")
        if m is None:
            raise ValidationError.single("header.Content-Range",
                                         f"missing or malformed: {content_range!r}",
                                         f"send 'bytes START-END/{ds.size}'")
        start, end, total = (int(x) for x in m.groups())
        have = a.received(ds)
        if total != ds.size or end < start or end >= total:
            raise ValidationError.single("header.Content-Range",
                                         f"{content_range} does not fit size {ds.size}",
                                         f"send 'bytes START-END/{ds.size}'")
        if end - start + 1 > a.max_chunk:
            raise ValidationError.single("header.Content-Range", "chunk too large",
                                         f"send at most {a.max_chunk} bytes a chunk")
        if start != have:
            raise ConflictError(f"dataset {name} has {have} bytes; resume at byte {have} "
                                f"(this chunk starts at {start})")
        want = end - start + 1
        got = 0
        with a.part(name).open("ab") as fh:
            async for piece in request.stream():
                if got + len(piece) > want:
                    fh.truncate(start)
                    raise ValidationError.single("body", "more bytes than Content-Range "
                                                 "says", "send exactly END-START+1 bytes")
                await a.throttle.take(len(piece))
                fh.write(piece)
                got += len(piece)
            if got != want:  # cut short: keep what arrived, the client resumes from it
                fh.flush()
        if a.received(ds) < ds.size:
            return _view(ds, a)
        digest = await asyncio.to_thread(sha256_file, a.part(name))
        if digest != ds.sha256:
            a.part(name).unlink(missing_ok=True)
            new = ds.model_copy(update={"state": DatasetState.FAILED, "reason": (
                f"checksum mismatch: received bytes hash to {digest}, registered "
                f"{ds.sha256}")})
        else:
            a.part(name).replace(a.path(name))
            new = ds.model_copy(update={"state": DatasetState.READY, "ready_at": utcnow()})
        rt.writer.put(new, f"api:{who.name}", f"dataset {name} {new.state.value}")
        return _view(new, a)

    @r.get("/{name}/data", summary="Download (Range: bytes=A- or A-B)")
    async def get_data(name: str, rt: RT, who: Caller,
                       range_: Annotated[str | None, Header(alias="Range")] = None,
                       ) -> Response:
        ds = _get(rt, name, who)
        a = area(rt)
        path = a.path(name)
        if ds.state is not DatasetState.READY or not path.exists():
            raise ConflictError(f"dataset {name} is {ds.state.value} and not held by the "
                                "controller; nothing to download here")
        start, end = 0, ds.size - 1
        if range_:
            m = re.match(r"^bytes=(\d+)-(\d*)$", range_)
            if m is None or int(m.group(1)) >= max(ds.size, 1):
                return Response(status_code=416, headers={"Content-Range": f"bytes */{ds.size}"})
            start = int(m.group(1))
            end = min(int(m.group(2)), end) if m.group(2) else end

        async def body() -> AsyncIterator[bytes]:
            with path.open("rb") as fh:
                fh.seek(start)
                left = end - start + 1
                while left > 0:
                    chunk = fh.read(min(64 * 1024, left))
                    if not chunk:
                        return
                    await a.throttle.take(len(chunk))
                    left -= len(chunk)
                    yield chunk

        headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
        if range_:
            headers["Content-Range"] = f"bytes {start}-{end}/{ds.size}"
        return StreamingResponse(body(), status_code=206 if range_ else 200,
                                 media_type="application/octet-stream", headers=headers)

    @r.delete("/{name}", status_code=204, summary="Delete a dataset no job needs")
    def delete(name: str, rt: RT, who: Caller) -> Response:
        ds = _get(rt, name, who)
        who.require_tenant_access(ds.tenant)
        users = [j.id for j in rt.store.list(Job) if name in j.spec.datasets
                 and not j.terminal]
        if users:
            raise ConflictError(f"dataset {name} is used by {', '.join(users[:5])}; "
                                "cancel them first")
        a = area(rt)
        a.part(name).unlink(missing_ok=True)
        a.path(name).unlink(missing_ok=True)
        rt.writer.delete(Dataset, name, f"api:{who.name}", "delete dataset")
        return Response(status_code=204)

    return r


class DataStager:
    """The dispatcher's ``stage`` hook: every dataset of the job onto the centre, each
    copy a background transfer (``scheduler.centres.transfer``) under the cap; the job
    waits (``DataWaiting``, with the progress) until its copies are verified there."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        #: (dataset, site) → the running or finished copy (bytes sent by it)
        self.copies: dict[tuple[str, str], asyncio.Task[int]] = {}
        #: (dataset, site) → bytes the centre holds so far
        self.held: dict[tuple[str, str], int] = {}

    async def stage(self, job: Job, adapter: CentreAdapter) -> None:
        for name in job.spec.datasets:
            ds = self.rt.store.get(Dataset, name)
            if ds is None:
                raise DataFailed(f"dataset {name} does not exist (deleted?)")
            if ds.state is DatasetState.FAILED:
                raise DataFailed(f"dataset {name} failed: {ds.reason}")
            if ds.state is not DatasetState.READY:
                a = area(self.rt)
                raise DataWaiting(f"waiting for dataset {name} ({a.received(ds)} of "
                                  f"{ds.size} bytes uploaded)")
            if await adapter.staged(name) == ds.sha256:
                self._located(name, adapter.site)
                continue
            src = area(self.rt).path(name)
            if not src.exists():
                raise DataFailed(f"dataset {name} is only at {', '.join(ds.locations)}; "
                                 f"the controller holds no copy to stage to {adapter.site}")
            self._copy(ds, src, adapter)

    def _copy(self, ds: Dataset, src: Path, adapter: CentreAdapter) -> None:
        """Start, follow or finish the copy of ``ds`` to ``adapter``; raises what the
        job should wait for or fail of."""
        key = (ds.name, adapter.site)
        task = self.copies.get(key)
        retry = ""
        if task is not None and task.done():
            del self.copies[key]
            exc = task.exception() if not task.cancelled() else None
            if exc is None and not task.cancelled():
                self._located(ds.name, adapter.site)
                return
            if isinstance(exc, CentreRefused | ValueError) and "checksum" in str(exc):
                raise DataFailed(f"staging {ds.name} to {adapter.site} failed: {exc}")
            retry = f" (resumed after: {exc or 'cancelled'})"
            task = None
        if task is None:
            a = area(self.rt)

            def progress(n: int, key: tuple[str, str] = key) -> None:
                self.held[key] = n

            async def copy() -> int:
                sent = await stage(adapter, src, ds.name, ds.sha256, pace=a.throttle,
                                   progress=progress)
                a.moved += sent
                key_event(log, "dataset staged", dataset=ds.name, site=adapter.site,
                          bytes=sent, size=ds.size)
                return sent

            self.copies[key] = asyncio.create_task(copy())
        held = self.held.get(key, 0)
        pct = 10 * (10 * held // max(1, ds.size))  # in steps of 10 %: few journal entries
        raise DataWaiting(f"staging dataset {ds.name} to {adapter.site}: {pct} % of "
                          f"{ds.size} bytes{retry}")

    def _located(self, name: str, site: str) -> None:
        self.held.pop((name, site), None)
        with self.rt.store.transaction(ACTOR, f"{ACTOR}: {name} verified at {site}") as txn:
            ds = txn.get(Dataset, name)
            if ds is not None and site not in ds.locations:
                txn.put(ds.model_copy(update={"locations": [*ds.locations, site]}))
