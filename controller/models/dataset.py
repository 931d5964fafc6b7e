"""Datasets (GBA-6.3 data upload/download/resume, GBA-6.6 query datasets, GBA-6.5f-7).

Rules:
- A dataset is registered with its ``size`` and ``sha256`` before any byte arrives;
  it is ``uploading`` until the last byte, then ``ready`` when the bytes hash to
  ``sha256`` or ``failed`` (with the reason) when they do not.
- ``locations`` are the sites that hold a verified copy (the controller's store first,
  then each centre it was staged to); data-aware placement reads them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from controller.models.base import Entity, Name, register
from controller.models.job import utcnow


class DatasetState(StrEnum):
    UPLOADING = "uploading"
    READY = "ready"
    FAILED = "failed"


@register
class Dataset(Entity):
    """``name``, ``tenant``, ``size`` (bytes), ``sha256`` (hex), ``state``, ``reason``,
    ``locations`` (site names holding a verified copy), ``created_at``, ``ready_at``."""

    KIND = "dataset"
    name: Name
    tenant: Name = "default"
    size: int = Field(ge=0, le=1 << 44)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    state: DatasetState = DatasetState.UPLOADING
    reason: str = ""
    locations: list[Name] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    ready_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.name
