"""``MetricSource``: what every observer of compute and network metrics is (DESIGN §2).

Rules:
- A metric source — the BGP speaker's ingest (``telemetry.bgp.ingest.BgpIngestCore``),
  the site-agent report ingest (``telemetry.ingest.IngestCore``), the link probes
  (``telemetry.probes.ProbeComponent``) — turns what it hears into staged store
  records, coalesced per key (the newest observation of a key wins), and writes them
  only through ``commit``.
- ``commit`` is the one write path: each record goes through ``telemetry.precedence.
  merge`` against what is stored at commit time (so a source never overwrites what a
  higher-ranked one wrote meanwhile), in one store transaction journaled with the
  source's ``actor``. A record the rule turns into nothing is not written. When
  another controller wrote one of the records meanwhile (``StoreConflict``, etcd) the
  transaction is merged again against the newer value; a caller whose commit still
  fails keeps its records staged for the next flush (nothing observed is dropped).
- ``backlog()`` is how many records wait; ``flush()`` commits them and returns how many
  were written (0 when nothing waited). Flushing twice writes nothing the second time.
- Every source passes one contract suite (``tests/telemetry/test_source.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from controller.models.base import Entity
from controller.store.base import StoreConflict, StoreFenced
from telemetry.precedence import merge

#: another controller wrote one of the records between read and commit (etcd store):
#: merged again against the newer value this many times before giving up
CONFLICT_RETRIES = 5


@runtime_checkable
class MetricSource(Protocol):
    """An observer of metrics: ``actor`` (journal actor of its writes), ``backlog()``,
    ``flush()`` (see the module rules)."""

    actor: str

    def backlog(self) -> int: ...

    def flush(self) -> int: ...


def commit(store: Any, actor: str, reason: str, records: Iterable[Entity],
           retract: Mapping[str, Collection[str]] | None = None) -> list[Entity]:
    """Write ``records`` through the precedence rule in one transaction; returns what was
    actually written (the merged records). ``retract``: per record key, the L0 keys
    the source no longer reports (``telemetry.precedence.combine``)."""
    todo = list(records)
    if not todo:
        return []
    for attempt in range(CONFLICT_RETRIES + 1):
        written: list[Entity] = []
        try:
            with store.transaction(actor, reason) as txn:
                for rec in todo:
                    # read through the transaction: a replicated store compares what
                    # was merged, and a retry merges against the newer value
                    out = merge(txn.get(type(rec), rec.key), rec,
                                retract.get(rec.key, ()) if retract else ())
                    if out is not None:
                        txn.put(out)
                        written.append(out)
            return written
        except StoreFenced:
            raise  # leadership ended: the caller keeps the records (issue 16)
        except StoreConflict:
            if attempt == CONFLICT_RETRIES:
                raise
    raise AssertionError("unreachable")
