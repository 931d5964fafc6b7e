"""Bench: sustained updates/s into the state store, every update journaled (issue #19).

What is measured: a real ``SqliteStore`` on disk in a temporary directory; each update
changes a ``ComputeResource`` value (as telemetry would) and appends its journal row
with the previous value. Two ways to commit:

- ``one_commit_per_update``: one transaction (one SQLite commit) per update;
- ``batched``: ``batch`` updates per transaction, as the telemetry ingest path commits.

The three durability modes (``controller.store.sqlite``), alternated round by round
(``rounds`` each, fresh store each):

- ``full`` (the default): every update is acknowledged as the REST API acknowledges a
  write — ``make_durable()`` (one fsync of the WAL for every commit since the last)
  after each commit, after each batch when batched;
- ``commit``: SQLite fsyncs inside every commit (``synchronous=FULL``);
- ``normal``: no fsync at all before an acknowledgement; a power loss can roll back the
  commits of the last checkpoint interval.

Figures are medians over rounds with the spread (min–max) and the same per CPU-second
of this process (what a loaded machine cannot depress). The disk's own fsync latency is
probed in the same directory: with ``full`` one commit per update cannot beat one
fsync per update, and ``fsync_bound_per_s`` says where that ceiling is. Each round
reopens the store and checks the last values and the journal count (restart).

A third way, ``full`` only: ``concurrent_acknowledged`` — ``writers`` threads, each
making one-update transactions and waiting for ``make_durable()`` after each, as
concurrent REST clients do. One fsync then covers every commit made while the previous
one ran (group commit), so acknowledged-durable single-update commits are no longer
capped by one fsync each; the mean number of commits per fsync is reported.

``figure``/``met`` are the default mode's (``full``); the others carry their own.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from controller.models import ComputeNode, ComputeResource, ResourceType, Site, SiteKind
from controller.store import JournalQuery, SqliteStore

GOAL_BATCHED = 50_000
GOAL_SINGLE = 20_000


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


def _fsync_ms(directory: Path, samples: int = 60) -> float:
    """Median ms of one 4 KiB write + fdatasync in ``directory`` (the disk's floor)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(samples):
            os.write(fd, b"\0" * 4096)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def _round(tmp: Path, sync: str, single: int, updates: int, batch: int,
           sites: int, per_site: int) -> dict[str, Any]:
    path = tmp / f"state-{sync}.db"
    store = SqliteStore(path, sync=sync)
    try:
        resources = _seed(store, sites, per_site)
        n = len(resources)
        seeded = store.last_seq()
        last_values: dict[str, float] = {}

        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(single):
            res = resources[i % n]
            with store.transaction("telemetry", "metric") as txn:
                txn.put(res.model_copy(update={"value": float(i + 1)}))
            store.make_durable()  # acknowledged (a no-op unless sync="full")
            last_values[res.key] = float(i + 1)
        t_single, c_single = time.perf_counter() - t0, time.process_time() - c0

        t0, c0 = time.perf_counter(), time.process_time()
        i = 0
        while i < updates:
            with store.transaction("telemetry", "metric batch") as txn:
                for _ in range(min(batch, updates - i)):
                    res = resources[i % n]
                    value = float(1_000_000 + i)  # always a real change
                    txn.put(res.model_copy(update={"value": value}))
                    last_values[res.key] = value
                    i += 1
            store.make_durable()
        t_batch, c_batch = time.perf_counter() - t0, time.process_time() - c0
        journal_rows = store.last_seq() - seeded
    finally:
        store.close()
    reopened = SqliteStore(path, sync=sync)
    try:
        restored = all(
            (obj := reopened.get(ComputeResource, k)) is not None and obj.value == v
            for k, v in last_values.items())
        tail = reopened.journal(JournalQuery(descending=True, limit=1))
        restored = restored and reopened.last_seq() - seeded == single + updates
    finally:
        reopened.close()
    path.unlink()
    return {"single": single / t_single, "single_cpu": single / max(c_single, 1e-9),
            "batched": updates / t_batch, "batched_cpu": updates / max(c_batch, 1e-9),
            "journaled": journal_rows == single + updates, "restored": restored,
            "previous_kept": bool(tail and tail[0].previous is not None)}


def _concurrent(tmp: Path, writers: int, per_writer: int, sites: int,
                per_site: int) -> dict[str, Any]:
    """``writers`` threads of acknowledged one-update commits on one ``full`` store."""
    path = tmp / "state-concurrent.db"
    store = SqliteStore(path, sync="full")
    syncs = 0
    real_sync = store._sync_wal

    def counted() -> None:
        nonlocal syncs
        syncs += 1
        real_sync()

    store._sync_wal = counted  # type: ignore[method-assign]  # count fsyncs only
    try:
        resources = _seed(store, sites, per_site)
        seeded, syncs = store.last_seq(), 0
        start = threading.Barrier(writers + 1)

        def writer(w: int) -> None:
            start.wait()
            for i in range(per_writer):
                res = resources[(w * per_writer + i) % len(resources)]
                with store.transaction("api:bench", "metric") as txn:
                    txn.put(res.model_copy(update={"value": float(w * per_writer + i + 1)}))
                store.make_durable()

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        start.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        for t in threads:
            t.join()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        total = writers * per_writer
        journaled = store.last_seq() - seeded == total
    finally:
        store.close()
    path.unlink()
    return {"per_s": total / wall, "per_cpu_s": total / max(cpu, 1e-9),
            "commits_per_fsync": total / max(syncs, 1), "journaled": journaled}


def _summary(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    xs = [r[key] for r in rows]
    return {"median": round(statistics.median(xs)), "min": round(min(xs)),
            "max": round(max(xs))}


def run(rounds: int = 3, updates: int = 40_000, batch: int = 200, single_normal: int = 8_000,
        single_full: int = 800, sites: int = 50, per_site: int = 20, writers: int = 32,
        per_writer: int = 250, **_opts: Any) -> dict[str, Any]:
    load_before = os.getloadavg()
    singles = {"full": int(single_full), "commit": int(single_full),
               "normal": int(single_normal)}
    results: dict[str, list[dict[str, Any]]] = {"full": [], "commit": [], "normal": []}
    concurrent: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cpn-bench-store-", dir="/var/tmp") as tmp_s:
        tmp = Path(tmp_s)
        fsync_ms = _fsync_ms(tmp)
        for r in range(int(rounds)):
            order = ["full", "commit", "normal"]
            order = order if r % 2 == 0 else order[::-1]
            for sync in order:
                results[sync].append(_round(tmp, sync, singles[sync], int(updates),
                                            int(batch), int(sites), int(per_site)))
            concurrent.append(_concurrent(tmp, int(writers), int(per_writer), int(sites),
                                          int(per_site)))
    out: dict[str, Any] = {"bench": "store", "rounds": int(rounds), "updates": int(updates),
                           "batch": int(batch), "one_commit_updates": singles}
    for sync, rows in results.items():
        single, batched = _summary(rows, "single"), _summary(rows, "batched")
        out[sync] = {
            "one_commit_per_update_per_s": single, "batched_per_s": batched,
            "one_commit_per_update_per_cpu_s": _summary(rows, "single_cpu"),
            "batched_per_cpu_s": _summary(rows, "batched_cpu"),
            "every_update_journaled": all(r["journaled"] for r in rows),
            "restart_restored_exactly": all(r["restored"] for r in rows),
            "journal_keeps_previous": all(r["previous_kept"] for r in rows),
            "met": batched["median"] >= GOAL_BATCHED and single["median"] >= GOAL_SINGLE,
        }
    full = out["full"]
    conc = _summary(concurrent, "per_s")
    full["concurrent_acknowledged"] = {
        "writers": int(writers), "updates": int(writers) * int(per_writer),
        "one_commit_per_update_per_s": conc,
        "per_cpu_s": _summary(concurrent, "per_cpu_s"),
        "commits_per_fsync": round(statistics.median(
            r["commits_per_fsync"] for r in concurrent), 1),
        "every_update_journaled": all(r["journaled"] for r in concurrent),
        "met": conc["median"] >= GOAL_SINGLE,
    }
    out.update({
        "fsync_ms_median": round(fsync_ms, 3),
        "fsync_bound_per_s": round(1000 / fsync_ms) if fsync_ms > 0 else None,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "figure": {"batched_per_s": full["batched_per_s"]["median"],
                   "one_commit_per_update_per_s":
                       full["one_commit_per_update_per_s"]["median"],
                   "sync": "full"},
        "goal": {"batched_per_s": GOAL_BATCHED, "one_commit_per_update_per_s": GOAL_SINGLE},
        "met": full["met"],
    })
    return out
