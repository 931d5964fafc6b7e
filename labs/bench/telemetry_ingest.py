"""Bench: site-report metric updates/s into state (issue #3 goal ≥ 20,000/s).

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
``metric_updates_per_cpu_s`` divides by this process's CPU time instead of wall time,
to show how much a shared, loaded machine cost the wall-clock figure.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.models import ComputeMetrics, Site, SiteKind
from controller.store import SqliteStore
from telemetry.ingest import IngestCore

FP = "5e" * 32


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


def run(reports: int = 20_000, sites: int = 500, services: int = 4, resources: int = 4,
        batch: int = 250, **_opts: Any) -> dict[str, Any]:
    bodies = _bodies(sites, reports, services, resources)
    with tempfile.TemporaryDirectory(prefix="cpn-bench-ingest-") as tmp:
        store = SqliteStore(Path(tmp) / "state.db")
        with store.transaction("bench", "seed") as txn:
            for s in range(sites):
                txn.put(Site(name=f"S{s}", kind=SiteKind.MEC, region="r"))
        core = IngestCore(store)
        values = records = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for i, (site, body) in enumerate(bodies, 1):
            core.admit(body, site, FP)
            if i % batch == 0:
                records += core.flush("bench")
        records += core.flush("bench")
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        per_report_values = 6 + services * 2 + resources
        values = reports * per_report_values
        last = store.get(ComputeMetrics, f"S{(reports - 1) % sites}/svc0")
        ok = last is not None and last.source == "agent" and 0 <= last.l2 <= 10
        journal_rows = store.last_seq()
        store.close()
    return {"bench": "telemetry-ingest", "metric_updates_per_s": round(values / elapsed),
            "records_per_s": round(records / elapsed), "reports_per_s": round(reports / elapsed),
            "reports": reports, "sites": sites, "services_per_report": services,
            "resources_per_report": resources, "metric_values_per_report": per_report_values,
            "records_written": records, "journal_rows": journal_rows, "batch_reports": batch,
            "elapsed_s": round(elapsed, 3), "cpu_s": round(cpu, 3),
            "metric_updates_per_cpu_s": round(values / cpu), "state_checked": ok,
            "includes": "json decode+pydantic validate+identity/seq+CATS L0-L2+hysteresis+"
                        "compute ids+lifecycle+batched journaled sqlite commit",
            "excludes": "TLS handshake, HTTP framing", "goal_metric_updates_per_s": 20000}
