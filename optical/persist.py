"""Optical paths in the state store: journaled, and back after a controller restart.

Rules:
- One ``OpticalPathRecord`` (kind ``optical-path``, key = path id) per path the
  controller manages, written on every recorded event of the path (actor ``optical``,
  the event as the reason) and deleted when the path is deleted — so the journal tells
  each path's story and ``cpn run`` after a restart knows which channels and
  cross-connects are its own (without it, a new path could be planned onto a channel
  a surviving path still lights).
- On start the records become the controller's paths again: ``active``, ``down`` and
  ``failed`` as they were; ``restoring`` (interrupted) as ``down``, so the next fault
  evaluation restores it; ``pending`` resumes its retries. Each NE is then reconciled
  against them (missing cross-connects re-sent).
- Alarms are not stored: they are the NEs' own state, read again on attach.
"""

from __future__ import annotations

from pydantic import Field

from controller.models import Entity
from controller.models.base import register
from optical.models import Lightpath, OduCircuit, OpticalPath, PathState

HISTORY_KEPT = 50


@register
class OpticalPathRecord(Entity):
    """A managed optical path as stored: ends, lightpaths, ODU, state, IP links riding
    on it, the last ``HISTORY_KEPT`` events."""

    KIND = "optical-path"
    id: str = Field(min_length=1, max_length=64)
    src: str
    dst: str
    working: Lightpath
    protect: Lightpath | None = None
    odu: OduCircuit | None = None
    groomed: bool = False
    state: PathState = PathState.PENDING
    active: str = Field(default="working", pattern=r"^(working|protect)$")
    ip_links: list[str] = Field(default_factory=list)
    error: str = ""
    history: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return self.id


def to_record(p: OpticalPath) -> OpticalPathRecord:
    return OpticalPathRecord(id=p.id, src=p.src, dst=p.dst, working=p.working,
                             protect=p.protect, odu=p.odu, groomed=p.groomed, state=p.state,
                             active=p.active, ip_links=list(p.ip_links), error=p.error,
                             history=p.history[-HISTORY_KEPT:])


def from_record(r: OpticalPathRecord) -> OpticalPath:
    state = PathState.DOWN if r.state is PathState.RESTORING else r.state
    return OpticalPath(r.id, r.src, r.dst, r.working, r.protect, r.odu, state, r.active,
                       tuple(r.ip_links), r.error, list(r.history), r.groomed)
