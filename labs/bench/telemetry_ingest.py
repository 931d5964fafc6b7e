"""Bench: site-report ingest into state, store records/s (issue #19 goal ≥ 20,000/s).

What is measured — the controller's ingest path after TLS, per report:
``IngestCore.admit`` (JSON bytes → pydantic ``Report`` validation, identity/seq checks,
CATS L0→L1→L2 + hysteresis per (site, service) and site-wide, resource values with
their compute identifiers, lifecycle) and ``flush`` (one SQLite transaction per
``batch`` reports, every row journaled with its previous value). The report bodies
are pre-encoded JSON (the agent's work), each with distinct values; sites are
round-robin so no two reports of one site share a batch (no coalescing helps).
Excluded: TLS handshakes and HTTP framing.

Figures: ``metric_updates_per_s`` counts distinct metric values admitted into state
per report — the 6 site-wide L0 values, 2 per service (util %, queue depth) and 1 per
resource; site values copied into each service record are NOT counted again.
``records_per_s`` counts store rows written (one ``ComputeMetrics`` per (site,
service) and site-wide, one ``ComputeResource`` per resource, lifecycle rows);
``reports_per_s`` whole reports. All three are printed; none is the other renamed.
``*_per_cpu_s`` divides by this process's CPU time instead of wall time, to show how
much a shared, loaded machine cost the wall-clock figure.

Rounds alternate two of the store's durability modes, each on a fresh store: ``full``
(the default; an agent's ``202`` acknowledges admission, not durability, so the flush
does not wait for the disk) and ``commit`` (an fsync inside every flush's commit).
Figures are medians with the spread (min–max) over rounds; ``figure``/``met`` are the
default mode's records/s.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.models import ComputeMetrics, Site, SiteKind
from controller.store import SqliteStore
from telemetry.ingest import IngestCore

FP = "5e" * 32
GOAL_RECORDS = 20_000


def _bodies(sites: int, reports: int, services: int, resources: int) -> list[tuple[str, bytes]]:
    rnd = random.Random(7)
    t0 = datetime.now(UTC)
    out = []
    for i in range(reports):
        site = f"S{i % sites}"
        rep = {"site": site, "seq": i // sites + 1,
               "sent_at": (t0 + timedelta(milliseconds=i)).isoformat(), "interval_s": 10,
               "cpu_pct": rnd.uniform(0, 100), "mem_pct": rnd.uniform(0, 100),
               "load1": rnd.uniform(0, 8), "gpu_free": rnd.randint(0, 8),
               "energy_w": rnd.uniform(100, 900), "price_per_hour": rnd.uniform(0.5, 5),
               "resources": [{"name": f"r{r}", "value": rnd.uniform(0, 100)}
                             for r in range(resources)],
               "services": [{"service": f"svc{s}", "util_pct": rnd.uniform(0, 100),
                             "queue_depth": rnd.randint(0, 50)} for s in range(services)]}
        out.append((site, json.dumps(rep).encode()))
    return out


def _round(bodies: list[tuple[str, bytes]], tmp: Path, sync: str, sites: int,
           batch: int) -> dict[str, Any]:
    store = SqliteStore(tmp / f"state-{sync}.db", sync=sync)
    try:
        with store.transaction("bench", "seed") as txn:
            for s in range(sites):
                txn.put(Site(name=f"S{s}", kind=SiteKind.MEC, region="r"))
        core = IngestCore(store)
        records = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for i, (site, body) in enumerate(bodies, 1):
            core.admit(body, site, FP)
            if i % batch == 0:
                records += core.flush("bench")
        records += core.flush("bench")
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        last = store.get(ComputeMetrics, f"S{(len(bodies) - 1) % sites}/svc0")
        ok = last is not None and last.source == "agent" and 0 <= last.l2 <= 10
        journal_rows = store.last_seq() - sites
        core.close()
    finally:
        store.close()
    (tmp / f"state-{sync}.db").unlink()
    return {"elapsed": elapsed, "cpu": cpu, "records": records, "ok": ok,
            "journaled": journal_rows == records}


def _med(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs)), "min": round(min(xs)),
            "max": round(max(xs))}


def run(reports: int = 8_000, sites: int = 500, services: int = 4, resources: int = 4,
        batch: int = 250, rounds: int = 3, **_opts: Any) -> dict[str, Any]:
    reports, sites, batch = int(reports), int(sites), int(batch)
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {"full": [], "commit": []}
    with tempfile.TemporaryDirectory(prefix="cpn-bench-ingest-", dir="/var/tmp") as tmp_s:
        for r in range(int(rounds)):
            # fresh bodies per round: distinct values, seq restarting with a fresh store
            bodies = _bodies(sites, reports, int(services), int(resources))
            for sync in (["full", "commit"] if r % 2 == 0 else ["commit", "full"]):
                results[sync].append(_round(bodies, Path(tmp_s), sync, sites, batch))
    per_report_values = 6 + int(services) * 2 + int(resources)
    out: dict[str, Any] = {
        "bench": "telemetry-ingest", "reports_per_round": reports, "rounds": int(rounds),
        "sites": sites, "services_per_report": int(services),
        "resources_per_report": int(resources),
        "metric_values_per_report": per_report_values, "batch_reports": batch,
        "includes": "json decode+pydantic validate+identity/seq+CATS L0-L2+hysteresis+"
                    "compute ids+lifecycle+source precedence+batched journaled sqlite commit",
        "excludes": "TLS handshake, HTTP framing"}
    for sync, rows in results.items():
        out[sync] = {
            "records_per_s": _med([x["records"] / x["elapsed"] for x in rows]),
            "records_per_cpu_s": _med([x["records"] / x["cpu"] for x in rows]),
            "metric_values_per_s": _med([reports * per_report_values / x["elapsed"]
                                         for x in rows]),
            "reports_per_s": _med([reports / x["elapsed"] for x in rows]),
            "records_per_round": rows[0]["records"],
            "state_checked": all(x["ok"] for x in rows),
            "every_record_journaled": all(x["journaled"] for x in rows)}
    figure = out["full"]["records_per_s"]["median"]
    out.update({"load_avg_before": [round(x, 2) for x in load_before],
                "load_avg_after": [round(x, 2) for x in os.getloadavg()],
                "figure": figure, "unit": "store records/s (sync=full, the default)",
                "goal": GOAL_RECORDS, "met": figure >= GOAL_RECORDS})
    return out
