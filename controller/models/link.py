"""Links of the IP/optical topology (GBA-5.2, GBA-6.4.3b).

Rules:
- A link joins two topology nodes (sites or routers) by name; ``a`` != ``b``.
- ``available_mbps`` never exceeds ``capacity_mbps``.
- The key is ``a~b`` unless an explicit ``id`` is given (parallel links need ids).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from controller.models.base import Entity, Name, register
from controller.models.site import InterconnectKind

LinkKind = InterconnectKind


class LinkState(StrEnum):
    UP = "up"
    DOWN = "down"


@register
class Link(Entity):
    """A bidirectional link.

    Fields: ``a``, ``b`` (endpoint names); ``kind`` (ip-private / otn / internet);
    ``delay_ms``, ``jitter_ms``, ``loss_pct`` (0–100); ``capacity_mbps``,
    ``available_mbps`` (Mbit/s); ``srlgs`` (shared-risk link groups); ``igp_metric``;
    ``state``; ``id`` (optional explicit key).
    """

    KIND = "link"
    a: Name
    b: Name
    kind: LinkKind = LinkKind.IP_PRIVATE
    delay_ms: float = Field(default=1.0, ge=0, le=10_000)
    jitter_ms: float = Field(default=0.0, ge=0, le=10_000)
    loss_pct: float = Field(default=0.0, ge=0, le=100)
    capacity_mbps: float = Field(default=10_000, gt=0)
    available_mbps: float | None = Field(default=None, ge=0)
    srlgs: list[str] = Field(default_factory=list)
    igp_metric: int = Field(default=10, ge=1, le=16_777_215)
    state: LinkState = LinkState.UP
    id: Name | None = None

    @property
    def key(self) -> str:
        return self.id or f"{self.a}~{self.b}"

    @property
    def available(self) -> float:
        return self.capacity_mbps if self.available_mbps is None else self.available_mbps

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.a == self.b:
            raise ValueError(f"a link cannot join {self.a!r} to itself")
        if self.available_mbps is not None and self.available_mbps > self.capacity_mbps:
            raise ValueError(
                f"available_mbps ({self.available_mbps}) exceeds capacity_mbps "
                f"({self.capacity_mbps})"
            )
        return self
