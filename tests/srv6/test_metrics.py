"""The flow-steering gauges (``srv6.metrics``) read the store at scrape time, and the
SRv6 plugin registers them (the controller's own collector no longer knows flows)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from controller.store import SqliteStore
from srv6 import metrics
from srv6.flows import FlowSteering


def test_steered_site_and_program_time_are_exported(store: SqliteStore) -> None:
    with store.transaction("test", "seed") as txn:
        txn.put(FlowSteering(service="video", headend="R1", site="MEC-2",
                             decided_at=datetime.now(UTC), program_ms=3.5, committed=True))
    rt = SimpleNamespace(store=store, metrics=CollectorRegistry())
    metrics.register(rt)  # type: ignore[arg-type]
    metrics.register(rt)  # type: ignore[arg-type]  # once per runtime: no duplicate error
    text = generate_latest(rt.metrics).decode()
    assert 'cpn_flow_steered{headend="R1",service="video",site="MEC-2"} 1.0' in text
    assert 'cpn_flow_program_ms{headend="R1",service="video"} 3.5' in text
