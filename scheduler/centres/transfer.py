"""Staging a dataset onto a centre: a chunked, resumable, checksummed transfer paced by the
controller's bandwidth cap (GBA-6.3 data, GBA-6.4.3g chunked bulk transfer with a cap).

Rules:
- The same discipline as the REST upload (``scheduler.centres.data``): the centre says
  how many bytes of this version it already holds (``stage_offset``), chunks are sent
  from exactly there (``stage_chunk``), and the SHA-256 of the whole copy decides at the
  end (``stage_commit``). A transfer cut anywhere — a dropped connection, a centre
  that stopped answering, a controller restart — resumes at the centre's offset.
- Every chunk takes its bytes from the ``Throttle`` first (the controller's one token
  bucket, shared with REST uploads and downloads): a capped transfer of S bytes takes
  about S / cap.
- ``progress`` (optional) is told the bytes the centre holds after each chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from scheduler.centres.base import CentreAdapter

CHUNK = 1 << 20


class Pacer(Protocol):
    async def take(self, n: int) -> None: ...


def _read(path: Path, offset: int, n: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(n)


async def stage(adapter: CentreAdapter, src: Path, name: str, sha256: str, *,
                pace: Pacer | None = None, chunk: int = CHUNK,
                progress: Callable[[int], None] | None = None) -> int:
    """Copy ``src`` to ``adapter``'s data area as ``name``; returns the bytes sent now
    (less than the size when an earlier cut copy was resumed)."""
    size = src.stat().st_size
    at = await adapter.stage_offset(name, sha256)  # more than size: the commit drops it
    sent = 0
    if progress is not None:
        progress(at)
    while at < size:
        data = await asyncio.to_thread(_read, src, at, min(chunk, size - at))
        if not data:
            break
        if pace is not None:
            await pace.take(len(data))
        at = await adapter.stage_chunk(name, sha256, at, data)
        sent += len(data)
        if progress is not None:
            progress(at)
    await adapter.stage_commit(name, sha256)
    return sent
