"""Controller-side site-report ingest over HTTPS with mutual TLS (GBA-6.3, WP-3.1.2).

Rules:
- Only a peer whose certificate chains to a configured CA (TLS, ``CERT_REQUIRED``) is
  heard; after the handshake ``pki.Trust.check`` refuses revoked/expired/foreign
  certificates and yields the site the certificate names. A report whose ``site``
  differs from that identity is refused (403). Every refusal is logged with a reason
  (GBT-8.4 fields) and changes nothing: the last good state is kept.
- ``IngestCore`` is sans-I/O: ``admit(body, site, ca_fp)`` decodes + validates the JSON
  payload, computes CATS L0→L1→L2 + hysteresis (``telemetry.cats``, the same code the
  agent may use) and *stages* writes; ``flush()`` commits staged objects in one
  transaction, coalescing repeated updates of the same record. An overload flip or a
  threshold report is flushed at once; everything else within ``flush_ms``. It is a
  ``telemetry.source.MetricSource``: ``flush`` writes through ``source.commit``, so a
  record BGP also writes is combined by source precedence (``telemetry.precedence``)
  against what is stored at commit time.
- Each admitted resource gets the unique compute identifier
  ``pki.compute_id(CA fp, site, resource)`` (WP-3.1.2) stored in
  ``ComputeResource.compute_id``; ``ComputeLifecycle`` records onboarding, last seen
  (written at most every ``SEEN_EVERY_S`` or on a state change) and state changes.
- Staleness (R14): agent-sourced metrics not refreshed within ``stale_after_periods``
  declared periods are marked ``stale`` and a key event is logged, once.
- Endpoint: ``POST /v1/report`` (JSON ``Report``), bodies over ``MAX_BODY`` refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import h11
import pydantic

from controller.errors import CpnError, Issue, ValidationError, issues_from_pydantic
from controller.logs import key_event
from controller.models import ComputeMetrics, ComputeResource, Site
from controller.models.base import Entity
from controller.store.base import Change, Store
from telemetry import cats
from telemetry.grading import Benchmark, ComputeGrade, grade
from telemetry.models import (
    ComputeLifecycle,
    LifecycleEvent,
    LifecycleState,
    Report,
    TelemetrySection,
)
from telemetry.pki import Trust, compute_id
from telemetry.records import construct, replace
from telemetry.source import commit

log = logging.getLogger("cpn.telemetry.ingest")

MAX_BODY = 1 << 20
SEEN_EVERY_S = 30.0
SITE_KEYS = ("cpu_pct", "mem_pct", "load1", "gpu_free", "energy_w", "price_per_hour")


class Refused(ValidationError):
    """A report refused for who sent it (identity), not for what it says → HTTP 403."""


@dataclass
class Admission:
    """What one admitted report did: ``site``, ``seq``, ``updates`` (metric records +
    resource values staged), ``flips`` ((service, overloaded) hysteresis changes)."""

    site: str
    seq: int
    updates: int
    flips: list[tuple[str, bool]] = field(default_factory=list)
    urgent: bool = False


def decode_report(body: bytes) -> Report:
    """Bytes → ``Report`` or ``ValidationError`` naming the bad field (sans-I/O)."""
    try:
        return Report.model_validate_json(body)
    except pydantic.ValidationError as exc:
        raise ValidationError(issues_from_pydantic(exc), source="report") from None


class IngestCore:
    """Sans-I/O ingest: decode → identity check → CATS → staged, coalesced writes (a
    ``MetricSource``)."""

    actor = "telemetry-ingest"

    def __init__(self, store: Store, cats_cfg: cats.CatsConfig | None = None,
                 stale_after_periods: float = 3.0) -> None:
        self.store = store
        self.cfg = cats_cfg or cats.CatsConfig()
        self._table = cats.compile_table(self.cfg)
        self.stale_after = stale_after_periods
        self.staged: dict[tuple[str, str], Entity] = {}
        self.trackers: dict[str, cats.MetricsTracker] = {}
        self.metrics: dict[str, ComputeMetrics] = {}
        self.lifecycle: dict[str, ComputeLifecycle] = {}
        self.resources: dict[str, ComputeResource] = {}
        self.sites: set[str] = set()
        self.last: dict[str, tuple[datetime, int]] = {}
        self._ids: dict[tuple[str, str], str] = {}
        self.admitted = self.refused = 0
        self._reload()
        self._unsub = store.subscribe(self._on_commit)

    def close(self) -> None:
        self._unsub()

    def _reload(self) -> None:
        self.sites = {s.name for s in self.store.list(Site)}
        self.resources = {r.key: r for r in self.store.list(ComputeResource)}
        self.metrics = {m.key: m for m in self.store.list(ComputeMetrics)}
        self.lifecycle = {c.key: c for c in self.store.list(ComputeLifecycle)}

    def _on_commit(self, changes: list[Change]) -> None:
        # keep caches coherent with writes made by others (config apply, REST, BGP)
        caches: dict[str, dict[str, Any]] = {
            ComputeResource.KIND: self.resources, ComputeMetrics.KIND: self.metrics,
            ComputeLifecycle.KIND: self.lifecycle}
        for ch in changes:
            if ch.kind == Site.KIND:
                (self.sites.add if ch.value is not None else self.sites.discard)(ch.key)
            else:
                cache = caches.get(ch.kind)
                if cache is None:
                    continue
                if ch.value is None:
                    cache.pop(ch.key, None)
                else:
                    cache[ch.key] = ch.value

    def _stage(self, obj: Entity) -> None:
        self.staged[(obj.KIND, obj.key)] = obj

    def admit(self, body: bytes, peer_site: str, ca_fp: str,
              now: float | None = None) -> Admission:
        """Decode and admit one report from ``peer_site`` (the certificate's identity)."""
        report = decode_report(body)
        if report.site != peer_site:
            raise Refused.single("site", f"certificate is for site {peer_site!r} but the "
                                 f"report is for {report.site!r}",
                                 "an agent may only report for its own site")
        if report.site not in self.sites:
            raise ValidationError.single("site", f"unknown site {report.site!r}",
                                         "declare the site in the controller config first")
        prev = self.last.get(report.site)
        if prev is not None and (report.sent_at, report.seq) <= prev:
            raise ValidationError.single("seq", f"out-of-order or replayed report (seq "
                                         f"{report.seq}, last {prev[1]})", "")
        self.last[report.site] = (report.sent_at, report.seq)
        t = time.time() if now is None else now
        ts = datetime.fromtimestamp(t, UTC)
        adm = Admission(report.site, report.seq, 0, urgent=report.reason == "threshold")
        self._admit_resources(report, ca_fp, ts, adm)
        if report.benchmark is not None:
            self._grade(report.site, report.benchmark)
        site_l0 = {k: float(v) for k in SITE_KEYS if (v := getattr(report, k)) is not None}
        # the site's values are normalised once; each service record adds its own two
        site_part = cats.l1_part(site_l0, self._table)
        entries = [("*", site_l0, True)]
        entries += [(s.service, {**site_l0, "util_pct": s.util_pct,
                                 "queue_depth": float(s.queue_depth)}, s.up)
                    for s in report.services]
        for service, l0, up in entries:
            key = f"{report.site}/{service}"
            tracker = self.trackers.get(key)
            if tracker is None:
                tracker = self.trackers[key] = cats.MetricsTracker(self.cfg, smooth=False,
                                                                   table=self._table)
                old = self.metrics.get(key)
                if old is not None:
                    tracker.hysteresis.state = old.overloaded
            l1, l2, over = tracker.update(l0, t, part=site_part)
            old = self.metrics.get(key)
            if old is None or old.overloaded != over:
                adm.flips.append((service, over))
                adm.urgent = True
            # the agent's own observation; precedence with BGP applies at commit
            m = construct(
                ComputeMetrics, site=report.site, service=service, l0=l0, l1=l1, l2=l2,
                overloaded=over, available=up, stale=False, source="agent",
                period_s=report.interval_s, window_s=self.cfg.window_s, updated_at=ts)
            self.metrics[key] = m
            self._stage(m)
            adm.updates += 1
        self.admitted += 1
        return adm

    def _grade(self, site: str, bench: Benchmark) -> None:
        """WP-3.1.5: a measured benchmark becomes the node's grade (logical units,
        tier, capability classes), keeping the last figures for usage statistics."""
        old = self.store.get(ComputeGrade, f"{site}/{bench.node}")
        g = grade(bench)
        hist = [*(old.history if old is not None else []), g.resnet50_img_s][-16:]
        self._stage(ComputeGrade(site=site, node=bench.node, benchmark=bench, grade=g,
                                 history=hist))

    def _admit_resources(self, report: Report, ca_fp: str, ts: datetime,
                         adm: Admission) -> None:
        for sample in report.resources:
            key = f"{report.site}/{sample.name}"
            ident = (ca_fp, key)
            cid = self._ids.get(ident)
            if cid is None:
                cid = self._ids[ident] = compute_id(ca_fp, report.site, sample.name)
            res = self.resources.get(key)
            if res is None:
                # WP-3.1.2: authenticated compute enters management on first report
                res = ComputeResource(site=report.site, name=sample.name,
                                      description=str(sample.extended.get(
                                          "description", f"reported by site {report.site}")),
                                      value=sample.value, scope=["*"], shareable=True,
                                      extended=sample.extended, compute_id=cid)
            else:
                # fields were validated when the record was made; only value/ids change
                res = replace(res, value=sample.value, compute_id=cid,
                              extended={**res.extended, **sample.extended}
                              if sample.extended else res.extended)
            self.resources[key] = res
            self._stage(res)
            adm.updates += 1
            self._touch_lifecycle(cid, report.site, sample.name, ca_fp, ts)

    def _touch_lifecycle(self, cid: str, site: str, resource: str, ca_fp: str,
                         ts: datetime) -> None:
        lc = self.lifecycle.get(cid)
        if lc is None:
            lc = ComputeLifecycle(compute_id=cid, site=site, resource=resource,
                                  ca_fingerprint=ca_fp, onboarded_at=ts, last_seen=ts,
                                  history=[LifecycleEvent(at=ts, state=LifecycleState.ONLINE,
                                                          note="onboarded")])
            key_event(log, "compute onboarded", compute_id=cid, site=site, resource=resource,
                      ca=ca_fp[:16])
        elif lc.state is not LifecycleState.ONLINE:
            lc = _transition(lc, LifecycleState.ONLINE, ts, "reporting again")
        elif (ts - lc.last_seen).total_seconds() >= SEEN_EVERY_S:
            lc = lc.model_copy(update={"last_seen": ts})
        else:
            return
        self.lifecycle[cid] = lc
        self._stage(lc)

    def backlog(self) -> int:
        return len(self.staged)

    def flush(self, actor: str | None = None) -> int:
        """Commit staged objects in one transaction (through source precedence);
        returns how many were written."""
        if not self.staged:
            return 0
        staged, self.staged = self.staged, {}
        try:
            return len(commit(self.store, actor or self.actor, "site agent reports",
                              list(staged.values())))
        except CpnError as exc:  # kept for the next flush; newer observations win
            self.staged = {**staged, **self.staged}
            log.warning("committing %d agent records failed (%s); kept for the next "
                        "flush", len(staged), exc)
            return 0

    def check_stale(self, now: float | None = None) -> list[str]:
        """Mark agent metrics stale after ``stale_after`` declared periods (R14)."""
        t = time.time() if now is None else now
        ts = datetime.fromtimestamp(t, UTC)
        out = []
        for key, m in list(self.metrics.items()):
            if m.source != "agent" or m.stale:
                continue
            age = t - m.updated_at.timestamp()
            if age > self.stale_after * m.period_s:
                self._stage(m.model_copy(update={"stale": True}))
                self.metrics[key] = m.model_copy(update={"stale": True})
                self.trackers.pop(key, None)
                out.append(key)
                key_event(log, "site metrics stale", site=m.site, service=m.service,
                          age_s=round(age, 1), period_s=m.period_s)
                if m.service == "*":
                    self._stale_lifecycle(m.site, ts)
        return out

    def _stale_lifecycle(self, site: str, ts: datetime) -> None:
        for cid, lc in list(self.lifecycle.items()):
            if lc.site == site and lc.state is LifecycleState.ONLINE:
                self.lifecycle[cid] = _transition(lc, LifecycleState.STALE, ts, "no reports")
                self._stage(self.lifecycle[cid])


def _transition(lc: ComputeLifecycle, state: LifecycleState, ts: datetime,
                note: str) -> ComputeLifecycle:
    hist = [*lc.history, LifecycleEvent(at=ts, state=state, note=note)][-32:]
    return lc.model_copy(update={"state": state, "last_seen": ts, "history": hist})


# --------------------------------------------------------------------------- server


def server_context(sec: TelemetrySection) -> ssl.SSLContext:
    """TLS server context demanding a client certificate from the configured CAs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(sec.server_cert, sec.server_key)
    ctx.load_verify_locations(cafile=str(sec.ca_bundle))
    return ctx


class IngestServer:
    """Component: the mTLS ingest endpoint plus the flush and staleness loops."""

    name = "telemetry-ingest"

    def __init__(self, sec: TelemetrySection, store: Store | None = None) -> None:
        self.sec = sec
        self._store = store
        self.core: IngestCore | None = None
        self.trust = Trust(sec.ca_bundle, list(sec.crl), {int(s, 16) for s in sec.revoked})
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self.port = 0
        self._sessions: Any = None

    async def start(self, rt: Any) -> None:
        store = self._store or rt.store
        self._sessions = getattr(rt, "sessions", None)  # GBA-6.7: telemetry sessions
        self.core = IngestCore(store, self.sec.cats,
                               stale_after_periods=self.sec.stale_after_periods)
        self._ctx = server_context(self.sec)
        host, port = self.sec.host_port()
        self._server = await asyncio.start_server(self._conn, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks = [asyncio.create_task(self._flusher()), asyncio.create_task(self._stale())]
        key_event(log, "telemetry ingest listening", listen=f"{host}:{self.port}",
                  ca_bundle=str(self.sec.ca_bundle))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.core is not None:
            self.core.flush()
            self.core.close()

    async def _flusher(self) -> None:
        assert self.core is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.sec.flush_ms / 1000)
            self.core.flush()

    async def _stale(self) -> None:
        assert self.core is not None
        while True:
            await asyncio.sleep(self.sec.check_s)
            stale = self.core.check_stale()
            if stale:
                self.core.flush()
            if self._sessions is not None:
                for key in stale:
                    site, _, service = key.partition("/")
                    if service == "*":
                        self._sessions.down("telemetry", site, "no report within "
                                            f"{self.sec.stale_after_periods:g} periods", site)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            await writer.start_tls(self._ctx)
        except (ssl.SSLError, OSError) as exc:
            log.warning("telemetry TLS handshake refused", extra={"fields": {
                "peer": str(peer), "reason": getattr(exc, "reason", None) or str(exc)}})
            writer.close()
            return
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            try:
                site, ca_fp = self.trust.check(der)
            except ValidationError as exc:
                log.warning("telemetry client certificate refused", extra={"fields": {
                    "peer": str(peer), "reason": str(exc)}})
                await _send_once(reader, writer, 403, {"error": str(exc)})
                return
            await self._serve_http(reader, writer, site, ca_fp, peer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, h11.ProtocolError):
            pass
        finally:
            writer.close()

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          site: str, ca_fp: str, peer: Any) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
        while True:
            req, body = await _read_request(conn, reader)
            if req is None:
                return
            status, payload = self._handle(req, body, site, ca_fp, peer)
            await _write_response(conn, writer, status, payload)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    def _handle(self, req: h11.Request, body: bytes, site: str, ca_fp: str,
                peer: Any) -> tuple[int, dict[str, Any]]:
        assert self.core is not None
        if req.method != b"POST" or req.target != b"/v1/report":
            return 404, {"error": "POST /v1/report only"}
        if len(body) > MAX_BODY:
            return 413, {"error": f"body over {MAX_BODY} bytes"}
        try:
            adm = self.core.admit(body, site, ca_fp)
            if self._sessions is not None:
                self._sessions.up("telemetry", site, site)
        except ValidationError as exc:
            self.core.refused += 1
            log.warning("site report refused", extra={"fields": {
                "site": site, "peer": str(peer), "reason": str(exc)}})
            return (403 if isinstance(exc, Refused) else 400), {
                "error": str(exc), "issues": [_issue(i) for i in exc.issues]}
        if adm.urgent:
            self.core.flush()  # committed before the key event is logged
        else:
            self._wake.set()
        for service, over in adm.flips:
            key_event(log, "overload state changed", site=site, service=service,
                      overloaded=over, seq=adm.seq)
        return 202, {"site": site, "seq": adm.seq, "updates": adm.updates}


def _issue(i: Issue) -> dict[str, str]:
    return {"path": i.path, "message": i.message, "fix": i.fix}


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader,
                        ) -> tuple[h11.Request | None, bytes]:
    req: h11.Request | None = None
    chunks: list[bytes] = []
    size = 0
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            continue
        if isinstance(ev, h11.Request):
            req = ev
        elif isinstance(ev, h11.Data):
            size += len(ev.data)
            if size <= MAX_BODY + 1:
                chunks.append(bytes(ev.data))
        elif isinstance(ev, h11.EndOfMessage):
            return req, b"".join(chunks)
        elif isinstance(ev, h11.ConnectionClosed | h11.PAUSED):
            return None, b""


async def _write_response(conn: h11.Connection, writer: asyncio.StreamWriter, status: int,
                          payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    out = conn.send(h11.Response(status_code=status, headers=[
        ("content-type", "application/json"), ("content-length", str(len(body)))]))
    out = (out or b"") + (conn.send(h11.Data(data=body)) or b"")
    out += conn.send(h11.EndOfMessage()) or b""
    writer.write(out)
    await writer.drain()


async def _send_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                     payload: dict[str, Any]) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        req, _ = await asyncio.wait_for(_read_request(conn, reader), 5)
    except (TimeoutError, h11.ProtocolError):
        return
    if req is not None:
        await _write_response(conn, writer, status, payload)
