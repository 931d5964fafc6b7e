"""Site-report ingest (GBA-6.3, WP-3.1.2/3.1.4): decode, identity, CATS, lifecycle,
staleness — sans-I/O core, plus one loopback mTLS round trip."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.errors import ValidationError
from controller.models import ComputeMetrics, ComputeResource, Site, SiteKind
from controller.store import SqliteStore
from telemetry.ingest import IngestCore, IngestServer, Refused
from telemetry.models import ComputeLifecycle, LifecycleState, TelemetrySection
from telemetry.pki import CertificateAuthority, compute_id

FP = "ab" * 32


def _body(site: str = "MEC-1", seq: int = 1, util: float = 40.0, cpu: float = 30.0,
          **extra: Any) -> bytes:
    rep = {"site": site, "seq": seq, "sent_at": datetime.now(UTC).isoformat(),
           "interval_s": 1.0, "cpu_pct": cpu, "mem_pct": 50.0, "energy_w": 300.0,
           "price_per_hour": 2.0,
           "resources": [{"name": "gpu0", "value": 3, "extended": {"model": "T4"}}],
           "services": [{"service": "video", "util_pct": util, "queue_depth": 2}], **extra}
    return json.dumps(rep).encode()


@pytest.fixture
def core(store: SqliteStore) -> IngestCore:
    with store.transaction("test", "seed") as txn:
        txn.put(Site(name="MEC-1", kind=SiteKind.MEC, region="r"))
        txn.put(Site(name="MEC-2", kind=SiteKind.MEC, region="r"))
    return IngestCore(store)


def test_admit_writes_metrics_resources_and_lifecycle(core: IngestCore,
                                                      store: SqliteStore) -> None:
    adm = core.admit(_body(), "MEC-1", FP)
    assert adm.updates == 3 and core.flush() >= 4
    m = store.get(ComputeMetrics, "MEC-1/video")
    assert m is not None and m.source == "agent" and m.l0["util_pct"] == 40.0
    assert 0 < m.l2 <= 10 and set(m.l1) >= {"compute_norm", "service_norm"}
    site = store.get(ComputeMetrics, "MEC-1/*")
    assert site is not None and site.l0["cpu_pct"] == 30.0 and site.period_s == 1.0
    res = store.get(ComputeResource, "MEC-1/gpu0")
    cid = compute_id(FP, "MEC-1", "gpu0")
    assert res is not None and res.compute_id == cid and res.value == 3
    lc = store.get(ComputeLifecycle, cid)
    assert lc is not None and lc.state is LifecycleState.ONLINE and lc.site == "MEC-1"
    assert lc.history[0].note == "onboarded"


def test_higher_load_scores_lower(core: IngestCore, store: SqliteStore) -> None:
    core.admit(_body("MEC-1", util=10), "MEC-1", FP)
    core.admit(_body("MEC-2", util=95), "MEC-2", FP)
    core.flush()
    low, high = store.get(ComputeMetrics, "MEC-1/video"), store.get(ComputeMetrics,
                                                                    "MEC-2/video")
    assert low is not None and high is not None and low.l2 > high.l2
    assert high.overloaded and not low.overloaded


def test_identity_mismatch_refused_state_kept(core: IngestCore, store: SqliteStore) -> None:
    core.admit(_body("MEC-1", util=20), "MEC-1", FP)
    core.flush()
    with pytest.raises(Refused, match="MEC-2"):
        core.admit(_body("MEC-1", seq=2, util=99), "MEC-2", FP)
    core.flush()
    m = store.get(ComputeMetrics, "MEC-1/video")
    assert m is not None and m.l0["util_pct"] == 20


@pytest.mark.parametrize("body,what", [
    (b"{not json", "json"),
    (_body(util=150), "util_pct"),
    (_body(site="NOWHERE"), "unknown site"),
    (_body(cpu=float("nan")).replace(b"NaN", b"NaN"), "cpu_pct"),
    (_body(surprise=1), "surprise"),
])
def test_bad_reports_rejected_with_reason(core: IngestCore, body: bytes, what: str) -> None:
    peer = "NOWHERE" if b"NOWHERE" in body else "MEC-1"
    with pytest.raises(ValidationError) as info:
        core.admit(body, peer, FP)
    assert what.lower() in str(info.value).lower()
    assert core.staged == {}


def test_replayed_report_refused(core: IngestCore) -> None:
    body = _body(seq=5)
    core.admit(body, "MEC-1", FP)
    with pytest.raises(ValidationError, match="replayed"):
        core.admit(body, "MEC-1", FP)


def test_overload_flip_is_urgent_and_hysteresis_holds(core: IngestCore) -> None:
    assert core.admit(_body(seq=1, util=50), "MEC-1", FP).urgent  # first record
    assert core.admit(_body(seq=2, util=90), "MEC-1", FP).flips == [("video", True)]
    assert core.admit(_body(seq=3, util=75), "MEC-1", FP).flips == []  # inside the band
    assert core.admit(_body(seq=4, util=60), "MEC-1", FP).flips == [("video", False)]


def test_stale_after_three_periods(core: IngestCore, store: SqliteStore) -> None:
    t0 = time.time()
    core.admit(_body(), "MEC-1", FP, now=t0)
    core.flush()
    assert core.check_stale(now=t0 + 2.5) == []
    assert sorted(core.check_stale(now=t0 + 3.5)) == ["MEC-1/*", "MEC-1/video"]
    core.flush()
    m = store.get(ComputeMetrics, "MEC-1/video")
    assert m is not None and m.stale and not m.usable
    lc = store.get(ComputeLifecycle, compute_id(FP, "MEC-1", "gpu0"))
    assert lc is not None and lc.state is LifecycleState.STALE
    assert core.check_stale(now=t0 + 10) == []  # logged once
    core.admit(_body(seq=9), "MEC-1", FP, now=t0 + 11)
    core.flush()
    lc = store.get(ComputeLifecycle, compute_id(FP, "MEC-1", "gpu0"))
    assert lc is not None and lc.state is LifecycleState.ONLINE and len(lc.history) == 3


def test_loopback_mtls_round_trip(core: IngestCore, store: SqliteStore,
                                  tmp_path: Path) -> None:
    core.close()
    ca = CertificateAuthority(tmp_path / "ca")
    ca.init()
    ca.issue("MEC-1")
    sec = TelemetrySection(listen="127.0.0.1:0", ca_bundle=ca.cert_path,
                           server_cert=ca.dir / "server.pem", server_key=ca.dir / "server.key",
                           crl=[ca.dir / "crl.pem"])

    async def go() -> tuple[int, int]:
        srv = IngestServer(sec, store=store)
        await srv.start(None)
        try:
            ctx = ssl.create_default_context(cafile=str(ca.cert_path))
            ctx.load_cert_chain(ca.dir / "sites/MEC-1.pem", ca.dir / "sites/MEC-1.key")
            async with httpx.AsyncClient(verify=ctx) as c:
                url = f"https://127.0.0.1:{srv.port}/v1/report"
                ok = await c.post(url, content=_body())
                bad = await c.post(url, content=_body("MEC-2", seq=2))
            return ok.status_code, bad.status_code
        finally:
            await srv.stop()

    assert asyncio.run(go()) == (202, 403)
    assert store.get(ComputeMetrics, "MEC-1/video") is not None
    assert store.get(ComputeMetrics, "MEC-2/video") is None


def test_agent_sessions_go_up_on_reports_and_down_when_stale(core: IngestCore,
                                                              store: SqliteStore,
                                                              tmp_path: Path) -> None:
    """GBA-6.7: a site agent's telemetry session is up while it reports and down (an
    alarm condition) once its reports stop for the declared periods."""
    from types import SimpleNamespace

    from controller.ops.sessions import SessionTable

    core.close()
    ca = CertificateAuthority(tmp_path / "ca")
    ca.init()
    ca.issue("MEC-1")
    sec = TelemetrySection(listen="127.0.0.1:0", ca_bundle=ca.cert_path,
                           server_cert=ca.dir / "server.pem", server_key=ca.dir / "server.key",
                           stale_after_periods=0.5, check_s=0.1)
    rt = SimpleNamespace(store=store, sessions=SessionTable())

    async def go() -> list[str]:
        srv = IngestServer(sec)
        await srv.start(rt)
        seen = []
        try:
            ctx = ssl.create_default_context(cafile=str(ca.cert_path))
            ctx.load_cert_chain(ca.dir / "sites/MEC-1.pem", ca.dir / "sites/MEC-1.key")
            async with httpx.AsyncClient(verify=ctx) as c:
                r = await c.post(f"https://127.0.0.1:{srv.port}/v1/report", content=_body())
                assert r.status_code == 202
            seen.append(rt.sessions.snapshot()[0].state)
            for _ in range(50):
                await asyncio.sleep(0.1)
                if rt.sessions.snapshot()[0].state == "down":
                    break
            seen.append(rt.sessions.snapshot()[0].state)
        finally:
            await srv.stop()
        return seen

    assert asyncio.run(go()) == ["up", "down"]
    cond = rt.sessions.conditions()
    assert [c.type for c in cond] == ["telemetry-session-down"]
    assert "MEC-1" in cond[0].text


def test_a_failed_commit_keeps_the_records_for_the_next_flush(core: IngestCore,
                                                              store: SqliteStore) -> None:
    """A commit that failed (etcd out of reach, leadership lost mid-write) used to drop
    what the agents had reported; the records now stay staged, newer ones winning."""
    from controller.store import StoreUnavailable

    core.admit(_body(util=10), "MEC-1", FP)
    real = store.transaction

    def down(actor: str, reason: str = "") -> object:
        raise StoreUnavailable("etcd: UNAVAILABLE")

    store.transaction = down  # type: ignore[method-assign]
    assert core.flush() == 0 and core.backlog() == 4
    core.admit(_body(seq=2, util=20), "MEC-1", FP)
    store.transaction = real  # type: ignore[method-assign]
    assert core.flush() >= 3 and core.backlog() == 0
    m = store.get(ComputeMetrics, "MEC-1/video")
    assert m is not None and m.l0["util_pct"] == 20


def test_two_controllers_admitting_one_sites_reports_end_at_the_newest(
        tmp_path: Path) -> None:
    """Issue 16, on a real etcd: each controller admits the reports sent to it. The
    older report, committed last by the other replica, must not replace the newer."""
    from controller.store.etcd import EtcdStore
    from labs.etcd import EtcdCluster, have_etcd

    if not have_etcd():
        pytest.skip("needs etcd-server (bootstrap.sh)")
    with EtcdCluster(1, root=tmp_path / "etcd") as cluster:
        url = cluster.url("/ingest")
        a, b = EtcdStore.from_url(url, member="c1"), EtcdStore.from_url(url, member="c2")
        try:
            with a.transaction("test", "seed") as txn:
                txn.put(Site(name="MEC-1", kind=SiteKind.MEC, region="r"))
            assert b.wait_applied(a.cluster_rev)
            ca, cb = IngestCore(a), IngestCore(b)
            ca.admit(_body(seq=1, util=10), "MEC-1", FP, now=time.time() - 1)
            cb.admit(_body(seq=2, util=90), "MEC-1", FP, now=time.time())
            assert cb.flush() >= 3        # the newer report lands first ...
            assert a.wait_applied(b.cluster_rev)
            ca.flush()                    # ... the older one, late, changes nothing
            for st in (a, b):
                assert st.wait_applied(max(a.cluster_rev, b.cluster_rev))
                m = st.get(ComputeMetrics, "MEC-1/video")
                assert m is not None and m.l0["util_pct"] == 90
        finally:
            a.close()
            b.close()
