"""Reservations for large jobs as stored entities (WP-3.3.3 reservation and backfill).

Rules:
- A ``Reservation`` (kind ``reservation``, keyed by node) is a node held for a large
  job that could not start: ``job``, ``site``, ``start`` (when it is expected to
  start there — the running jobs' walltime ends, epoch s) and ``made_at``. The
  ``reservation`` plug-in makes them in a pass; the scheduler component is their only
  writer.
- They persist between passes and across a controller restart: each pass starts from
  the stored ones whose job still waits and whose node still exists; what the pass
  changed (made, moved, dropped because the job was placed or left the queue) is
  written back in one transaction, and nothing is written when nothing changed.
- Backfill (the plug-in's rule) admits on a reserved node only a job whose runtime
  ends before the reservation's ``start``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import Field

from controller.models.base import Entity, register
from controller.models.job import utcnow

if TYPE_CHECKING:
    from controller.store.base import Store

#: node → (job, expected start epoch s), as ``Snapshot.reservations`` holds them
Held = dict[str, tuple[str, float]]


@register
class Reservation(Entity):
    """A node held for a large waiting job (see the module rules)."""

    KIND = "reservation"
    node: str
    job: str
    site: str | None = None
    start: float = Field(ge=0)
    made_at: datetime = Field(default_factory=utcnow)

    @property
    def key(self) -> str:
        return self.node


def load(store: Store) -> Held:
    return {r.node: (r.job, r.start) for r in store.list(Reservation)}


def save(store: Store, before: Held, after: Held, site_of: dict[str, str]) -> bool:
    """Write the difference between ``before`` (stored) and ``after``; True when
    something was written."""
    made = {n: r for n, r in after.items() if before.get(n) != r}
    dropped = [n for n in before if n not in after]
    if not made and not dropped:
        return False
    parts = [f"{r[0]} holds {n} from "
             f"{datetime.fromtimestamp(r[1], UTC).isoformat(timespec='seconds')}"
             for n, r in sorted(made.items())]
    parts += [f"{before[n][0]} released {n}" for n in sorted(dropped)]
    with store.transaction("scheduler", "scheduler: reservations: " + "; ".join(parts)[:1900]
                           ) as txn:
        for n, (job, start) in made.items():
            txn.put(Reservation(node=n, job=job, site=site_of.get(n), start=max(0.0, start)))
        for n in dropped:
            txn.delete(Reservation, n)
    return True
