"""Bench: sustained updates/s into the state store, every update journaled.

What is measured (issue #2 goal ≥ 20,000 updates/s): a real ``SqliteStore`` on
disk (WAL, synchronous=NORMAL) in a temporary directory; each update changes a
``ComputeResource`` value (as telemetry would) and appends its journal row with
the previous value. Two modes, reported side by side:

- ``txn_per_update``: one transaction (one SQLite commit) per update;
- ``batched``: ``batch`` updates per transaction, as the telemetry ingest path
  commits coalesced updates.

The figure ``updates_per_s`` is the batched rate (the ingest path's); both are
printed. Restart is verified: the store is reopened and the last values checked.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from controller.models import ComputeNode, ComputeResource, ResourceType, Site, SiteKind
from controller.store import JournalQuery, SqliteStore


def _seed(store: SqliteStore, sites: int, per_site: int) -> list[ComputeResource]:
    out = []
    with store.transaction("bench", "seed") as txn:
        for s in range(sites):
            site = Site(name=f"S{s}", kind=SiteKind.COMPUTE_CENTRE, region="r")
            txn.put(site)
            txn.put(ComputeNode(site=site.name, name="n0"))
            for r in range(per_site):
                res = ComputeResource(site=site.name, name=f"cpu{r}", description="cpu load",
                                      type=ResourceType.CPU, value=0.0, scope=["n0"],
                                      unit="%")
                txn.put(res)
                out.append(res)
    return out


def run(updates: int = 50_000, batch: int = 200, sites: int = 50, per_site: int = 20,
        **_opts: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cpn-bench-store-") as tmp:
        path = Path(tmp) / "state.db"
        store = SqliteStore(path)
        resources = _seed(store, sites, per_site)
        n = len(resources)
        seeded = store.last_seq()

        single = min(updates, 20_000)
        t0 = time.perf_counter()
        for i in range(single):
            res = resources[i % n]
            with store.transaction("telemetry", "metric") as txn:
                txn.put(res.model_copy(update={"value": float(i + 1)}))
        t_single = time.perf_counter() - t0

        t0 = time.perf_counter()
        i = 0
        last_values: dict[str, float] = {}
        while i < updates:
            with store.transaction("telemetry", "metric batch") as txn:
                for _ in range(min(batch, updates - i)):
                    res = resources[i % n]
                    value = float(1_000_000 + i)  # always a real change
                    txn.put(res.model_copy(update={"value": value}))
                    last_values[res.key] = value
                    i += 1
        t_batch = time.perf_counter() - t0
        journal_rows = store.last_seq() - seeded
        store.close()

        reopened = SqliteStore(path)
        restored = all(
            (obj := reopened.get(ComputeResource, k)) is not None and obj.value == v
            for k, v in last_values.items()
        )
        tail = reopened.journal(JournalQuery(descending=True, limit=1))
        reopened.close()

    return {
        "bench": "store",
        "updates_per_s": round(updates / t_batch),
        "txn_per_update_updates_per_s": round(single / t_single),
        "batched_updates_per_s": round(updates / t_batch),
        "batch": batch,
        "updates": updates,
        "journal_rows": journal_rows,
        "every_update_journaled": journal_rows == single + updates,
        "restart_restored_exactly": restored,
        "journal_tail_has_previous": bool(tail and tail[0].previous is not None),
        "goal_updates_per_s": 20_000,
    }
