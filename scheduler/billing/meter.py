"""Metering (GBA-6.7): usage records from what really ran, read from the journal.

Rules:
- Jobs: every run that started and ended at a centre (``Job.run`` and earlier
  ``attempts``, as the centre reported them) becomes one record per resource it held
  (``run.resources``: ``cpu`` cores, ``gpu``, ``npu``, ``memory`` GiB; the job's
  requirements × replicas when the centre did not say), quantity = units × seconds
  between the centre's start and end. The site's reported price per core·hour
  (``ComputeMetrics`` of the site, ``l0.price_per_hour``, else ``Site.price_per_hour``)
  is captured in the CPU record.
- Time-held products are intervals read from the journal (the audit trail of every
  change, so nothing is sampled): an accelerator instance ``in-use`` (billed to the
  tenant of the job it runs, else to the order that lists the instance); a service's
  flows steered to a site (its ``requirements.bandwidth_mbps``, billed to the order
  listing the service); a slice held (its ``guaranteed_mbps``, billed to the order
  listing the slice). An interval closes when the object changes or is deleted; a
  closed interval becomes a record. Intervals still open are reported by
  ``open_usage`` (bills show them as running lines up to now).
- The meter is incremental and restartable: it keeps the journal position and the
  open intervals in the store's meta table; records have deterministic ids, so a
  replay writes nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from controller.events import StateChanged
from controller.models import ComputeMetrics, Job, Service, Site
from controller.store.base import Action, JournalEntry, JournalQuery
from scheduler.billing.models import Order, Product, UsageRecord

if TYPE_CHECKING:
    from controller.runtime import Runtime

log = logging.getLogger("cpn.billing")

META = "billing.meter"
JOB_PRODUCTS = {"cpu": Product.CPU, "gpu": Product.GPU, "npu": Product.NPU,
                "memory": Product.MEMORY}
REQ_FIELDS = {"cpu": "cpu_cores", "gpu": "gpu", "npu": "npu", "memory": "memory_gib"}


def seconds(start: datetime, end: datetime) -> Decimal:
    """Exact seconds between two instants (microsecond resolution)."""
    d = end - start
    return Decimal(d.days * 86400 + d.seconds) + Decimal(d.microseconds) / Decimal(10**6)


def _dt(v: Any) -> datetime | None:
    if not v:
        return None
    t = datetime.fromisoformat(v) if isinstance(v, str) else v
    assert isinstance(t, datetime)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def site_price(store: Any, site: str | None) -> Decimal | None:
    """The price per core·hour a site reports (agent metrics first, then the site)."""
    if site is None:
        return None
    m = store.get(ComputeMetrics, f"{site}/*")
    v = m.l0.get("price_per_hour") if m is not None else None
    if v is None:
        s = store.get(Site, site)
        v = s.price_per_hour if s is not None else None
    return None if v is None else Decimal(str(v)).quantize(Decimal("0.000001"))


def job_records(job: dict[str, Any], store: Any) -> list[UsageRecord]:
    """Usage of every run of ``job`` (a journal value) that started and ended."""
    out = []
    runs = [*(job.get("attempts") or []), *([job["run"]] if job.get("run") else [])]
    spec = job.get("spec") or {}
    req = spec.get("requirements") or {}
    replicas = Decimal(str(spec.get("replicas", 1)))
    for run in runs:
        start, end = _dt(run.get("started_at")), _dt(run.get("ended_at"))
        if start is None or end is None or end <= start:
            continue
        held = {k: Decimal(str(v)) for k, v in (run.get("resources") or {}).items()
                if k in JOB_PRODUCTS and v}
        if not held:  # the centre did not say: what the job asked for
            held = {k: Decimal(str(req.get(f, 0))) * replicas for k, f in REQ_FIELDS.items()
                    if req.get(f)}
        secs = seconds(start, end)
        site = run.get("site")
        for res, units in sorted(held.items()):
            product = JOB_PRODUCTS[res]
            out.append(UsageRecord(
                id=f"job:{job['id']}.{run.get('attempt', 1)}:{res}", tenant=job["tenant"],
                product=product, site=site, quantity=units * secs, rate=units,
                start=start, end=end, source="job", ref=job["id"],
                site_price=site_price(store, site) if product is Product.CPU else None,
                detail={"centre_job_id": run.get("centre_job_id"), "node": run.get("node"),
                        "seconds": str(secs), "exit_code": run.get("exit_code")}))
    return out


@dataclass
class Interval:
    """An open time-held interval: who pays, what, where, how many units, since when."""

    source: str
    ref: str
    product: str
    tenant: str
    site: str | None
    rate: str
    start: str
    detail: dict[str, Any]

    def close(self, end: datetime) -> UsageRecord | None:
        start = _dt(self.start)
        assert start is not None
        if end <= start:
            return None
        rate = Decimal(self.rate)
        return UsageRecord(
            id=f"{self.source}:{self.ref}:{self.start}", tenant=self.tenant,
            product=Product(self.product), site=self.site,
            quantity=rate * seconds(start, end), rate=rate, start=start, end=end,
            source=self.source, ref=self.ref, detail=self.detail)


def _order_tenant(store: Any, kind: str, key: str, at: datetime) -> str:
    for o in store.list(Order):
        if o.covers(at) and any(i.kind == kind and i.key == key for i in o.items):
            return str(o.tenant)
    return ""


def interval_for(e: JournalEntry, store: Any) -> Interval | None:
    """The interval a journal entry opens (None: the object holds nothing now)."""
    v, at = e.value, e.ts
    if v is None:
        return None
    if e.kind == "instance":
        if v.get("state") != "in-use":
            return None
        task = str(v.get("task") or "")
        job = store.get(Job, task) if task else None
        tenant = job.tenant if job is not None else _order_tenant(store, "instance", e.key, at)
        return Interval("instance", e.key, Product.INSTANCE.value, tenant,
                        (v.get("topology") or {}).get("cluster"), "1", at.isoformat(),
                        {"task": task})
    if e.kind == "flow-steering":
        if not v.get("site") or not v.get("committed", True):
            return None
        svc = store.get(Service, v["service"])
        mbps = svc.requirements.bandwidth_mbps if svc is not None else 0
        if not mbps:
            return None
        return Interval("flow", e.key, Product.FLOW.value,
                        _order_tenant(store, "service", v["service"], at), v["site"],
                        str(Decimal(str(mbps))), at.isoformat(), {"service": v["service"]})
    if e.kind == "slice":
        mbps = v.get("guaranteed_mbps")
        if not mbps:
            return None
        return Interval("slice", e.key, Product.SLICE.value,
                        _order_tenant(store, "slice", e.key, at), None,
                        str(Decimal(str(mbps))), at.isoformat(), {"color": v.get("color")})
    return None


HELD_KINDS = ("instance", "flow-steering", "slice")


class Meter:
    """Turns journal entries into usage records; state in the store's meta table."""

    def __init__(self, store: Any) -> None:
        self.store = store
        raw = store.get_meta(META)
        st = json.loads(raw) if raw else {}
        self.seq: int = int(st.get("seq", 0))
        self.open: dict[str, Interval] = {k: Interval(**v) for k, v in
                                          st.get("open", {}).items()}
        self.lock = threading.Lock()

    def _save(self) -> None:
        self.store.set_meta(META, json.dumps(
            {"seq": self.seq, "open": {k: asdict(v) for k, v in self.open.items()}}))

    def run_pass(self) -> int:
        """Read the journal since the last pass; returns usage records written."""
        with self.lock:
            return self._pass()

    def _pass(self) -> int:
        written = 0
        while True:
            entries = self.store.journal(JournalQuery(since=self.seq, limit=5000))
            if not entries:
                break
            records: list[UsageRecord] = []
            for e in entries:
                records += self._entry(e)
            fresh = [r for r in records if self.store.get(UsageRecord, r.id) is None]
            if fresh:
                with self.store.transaction("meter", "usage metered") as txn:
                    for r in fresh:
                        txn.put(r)
                written += len(fresh)
            self.seq = entries[-1].seq
            self._save()
        return written

    def _entry(self, e: JournalEntry) -> list[UsageRecord]:
        if e.kind == "job":
            if e.value is None or e.value.get("state") not in ("finished", "failed",
                                                                "cancelled"):
                return []
            return job_records(e.value, self.store)
        if e.kind not in HELD_KINDS:
            return []
        okey = f"{e.kind}/{e.key}"
        new = None if e.action is Action.DELETE else interval_for(e, self.store)
        old = self.open.get(okey)
        if old is not None and new is not None and (old.site, old.rate, old.tenant) == \
                (new.site, new.rate, new.tenant):
            return []  # the same holding goes on
        out = []
        if old is not None:
            rec = old.close(e.ts)
            if rec is not None:
                out.append(rec)
            del self.open[okey]
        if new is not None:
            self.open[okey] = new
        return out

    def open_usage(self, now: datetime) -> list[UsageRecord]:
        """What open intervals have used up to ``now`` (not stored)."""
        out = []
        with self.lock:
            held = list(self.open.values())
        for iv in held:
            r = iv.close(now)
            if r is not None:
                out.append(r.model_copy(update={"detail": {**r.detail, "running": True}}))
        return out


class MeterComponent:
    """Runs a meter pass after commits (coalesced) and every ``period_s``."""

    name = "meter"

    def __init__(self, period_s: float = 30.0) -> None:
        self.period_s = period_s
        self.meter: Meter | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsub: Any = None

    async def start(self, rt: Runtime) -> None:
        self.meter = Meter(rt.store)
        rt.settings.extra["meter"] = self
        self._wake = asyncio.Event()
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        await asyncio.to_thread(self.meter.run_pass)
        self._task = asyncio.create_task(self._loop(), name="meter")

    def _on_change(self, ev: StateChanged) -> None:
        if ev.kinds() & {"job", *HELD_KINDS}:
            self._wake.set()

    async def _loop(self) -> None:
        assert self.meter is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.period_s):
                    await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.2)
            try:
                n = await asyncio.to_thread(self.meter.run_pass)
                if n:
                    log.info("metered %d usage records", n)
            except Exception:
                log.exception("metering pass failed; retrying in %.0f s", self.period_s)

    async def stop(self) -> None:
        if self._unsub is not None:
            self._unsub()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
