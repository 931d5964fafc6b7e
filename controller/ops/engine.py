"""Where alarms come from: one level-triggered engine over every alarm source.

Rules:
- A *source* is a name and a function returning the conditions that hold now
  (``Condition``: type, resource, severity, text, tenant). Each pass compares them
  with the active alarms of that source in the store: new or changed conditions are
  raised, alarms whose condition no longer holds are cleared. A restart therefore
  heals: what held before and no longer does is cleared at the first pass.
- Built-in sources read the store (``derived``): site overload, staleness and
  unavailability (``ComputeMetrics``), any object whose ``status.state`` is degraded or
  failed (SR policy intents, slices, SD-WAN policies, optical paths … as their
  reconcilers write status), user-set thresholds (``AlarmThreshold``, GBT-8) and
  sessions reported down (``SessionTable``: BGP peers, telemetry agents); plus the
  optical NE alarms when an optical controller runs.
- Plugins add sources through ``rt.alarm_sources[name] = fn`` (Knot publishing, …);
  plugins never import this module's callers, the controller never imports plugins.
- A pass runs after committed changes (coalesced; at most one per ``min_gap_s``) and at
  least every ``poll_s``;
  a source that raises is logged and skipped (its alarms are kept as they are).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.events import StateChanged
from controller.models import ComputeMetrics
from controller.models.base import ENTITY_KINDS
from controller.ops.models import Alarm, AlarmThreshold, Severity, alarm_id

if TYPE_CHECKING:
    from controller.runtime import Runtime

log = logging.getLogger("cpn.alarms")


@dataclass(frozen=True, slots=True)
class Condition:
    """Something wrong now: alarm ``type`` on ``resource`` with ``severity``."""

    type: str
    resource: str
    severity: Severity
    text: str
    tenant: str | None = None


Source = Callable[[], Iterable[Condition]]

#: status.state → severity of the alarm raised for it
STATUS_SEVERITY = {"degraded": Severity.MAJOR, "failed": Severity.CRITICAL}


def metric_conditions(metrics: Iterable[ComputeMetrics]) -> list[Condition]:
    out = []
    for m in metrics:
        where = f"{m.site}/{m.service}"
        if m.overloaded:
            util = ", ".join(f"{k}={v:g}" for k, v in sorted(m.l0.items())
                             if k.endswith("_pct"))
            out.append(Condition("site-overloaded", where, Severity.MAJOR,
                                 f"{where} overloaded ({util or 'by its source'}); flows "
                                 "and placements avoid it until it recovers"))
        if m.stale:
            out.append(Condition("telemetry-stale", where, Severity.MINOR,
                                 f"no {m.source} update for {where} within 3 periods of "
                                 f"{m.period_s:g} s; excluded from planning"))
        elif not m.available:
            out.append(Condition("service-unavailable", where, Severity.MAJOR,
                                 f"{where} reported unavailable by {m.source}"))
    return out


@dataclass(frozen=True, slots=True)
class ObjectStatus:
    """The status of one desired object: ``kind`` (of the object, not of its status
    record), ``key``, ``state`` (pending/programmed/verified/degraded/failed), ``reason``."""

    kind: str
    key: str
    state: str
    reason: str = ""


def _text(v: Any) -> str:
    return str(getattr(v, "value", v)) if v is not None else ""


def statuses(store: Any) -> list[ObjectStatus]:
    """Every status a reconciler wrote: an object's ``status`` field (``.state``), or a
    separate ``<kind>-status`` record with a ``state`` (e.g. ``sr-policy-intent-status``)."""
    out = []
    for cls in ENTITY_KINDS.values():
        fields = getattr(cls, "model_fields", {})
        if "status" in fields:
            for o in store.list(cls):
                st = getattr(o, "status", None)
                get = st.get if isinstance(st, dict) else lambda k, st=st: getattr(st, k, None)
                if st is not None and get("state") is not None:
                    out.append(ObjectStatus(cls.KIND, o.key, _text(get("state")),
                                            _text(get("reason"))))
        elif cls.KIND.endswith("-status") and "state" in fields:
            for o in store.list(cls):
                reason = _text(getattr(o, "reason", ""))
                fix = _text(getattr(o, "fix", ""))
                out.append(ObjectStatus(cls.KIND.removesuffix("-status"), o.key,
                                        _text(o.state),
                                        f"{reason}; fix: {fix}" if fix else reason))
    return out


def status_conditions(items: Iterable[ObjectStatus]) -> list[Condition]:
    """Objects whose reconciler reports degraded or failed (intents, slices, …)."""
    out = []
    for st in items:
        sev = STATUS_SEVERITY.get(st.state)
        if sev is None:
            continue
        text = f"{st.kind} {st.key} {st.state}"
        out.append(Condition(f"{st.kind}-status", st.key, sev,
                             f"{text}: {st.reason}" if st.reason else text))
    return out


def threshold_conditions(rules: Iterable[AlarmThreshold], store: Any) -> list[Condition]:
    out = []
    for rule in rules:
        cls = ENTITY_KINDS.get(rule.kind)
        if cls is None:
            continue
        for obj in store.list(cls):
            if rule.match and not obj.key.startswith(rule.match):
                continue
            val = rule.breached(obj.to_json_dict())
            if val is None:
                continue
            text = (rule.text or f"{rule.kind} {obj.key}: {rule.field} = {val:g} "
                    f"{rule.op.value} {rule.value:g}") + f" (threshold {rule.name})"
            out.append(Condition(f"threshold:{rule.name}", obj.key, rule.severity, text,
                                 getattr(obj, "tenant", None)))
    return out


class AlarmEngine:
    """The component that keeps the alarm store in step with every source."""

    name = "alarms"

    def __init__(self, poll_s: float = 1.0, min_gap_s: float = 0.25) -> None:
        self.poll_s = poll_s
        self.min_gap_s = min_gap_s
        self.passes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsub: Callable[[], None] | None = None
        self.rt: Runtime | None = None

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self._wake = asyncio.Event()
        rt.alarm_sources.setdefault("derived", self._derived)
        rt.alarm_sources.setdefault("sessions", rt.sessions.conditions)
        rt.alarm_sources.setdefault("optical", self._optical)
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        await asyncio.to_thread(self.run_pass)
        self._task = asyncio.create_task(self._loop(), name="alarm-engine")

    def _on_change(self, ev: StateChanged) -> None:
        if ev.kinds() != {Alarm.KIND}:
            self._wake.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()
            # coalesce a burst of commits into one pass, at most one pass per min_gap_s
            # (a flood of metric updates must not turn the engine into a busy loop)
            await asyncio.sleep(max(0.05, self.min_gap_s - (loop.time() - last)))
            last = loop.time()
            try:
                await asyncio.to_thread(self.run_pass)
            except Exception:
                log.exception("alarm pass failed; retrying in %.1f s", self.poll_s)

    async def stop(self) -> None:
        if self._unsub is not None:
            self._unsub()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ----------------------------------------------------------------- sources
    def _derived(self) -> list[Condition]:
        assert self.rt is not None
        store = self.rt.store
        out = metric_conditions(store.list(ComputeMetrics))
        out += status_conditions(statuses(store))
        out += threshold_conditions(store.list(AlarmThreshold), store)
        return out

    def _optical(self) -> list[Condition]:
        from controller.netconf.state import optical_source

        assert self.rt is not None
        ctl = optical_source(self.rt)
        if ctl is None:
            return []
        return [Condition("optical-ne-alarm", f"{a.ne}:{a.resource}", Severity.MAJOR,
                          f"NE {a.ne} reports {a.type} on {a.resource}")
                for a in ctl.alarms()]

    # ----------------------------------------------------------------- the pass
    def run_pass(self) -> int:
        """One level-triggered pass over every source; returns alarms written."""
        assert self.rt is not None
        book = self.rt.alarms
        active: dict[str, dict[str, Alarm]] = {}
        for a in book.list():
            if a.active:
                active.setdefault(a.source, {})[a.id] = a
        written = 0
        for name, fn in list(self.rt.alarm_sources.items()):
            try:
                conds = list(fn())
            except Exception:
                log.exception("alarm source %s failed; its alarms are kept as they are", name)
                continue
            have = active.get(name, {})
            seen = set()
            for c in conds:
                aid = alarm_id(c.type, c.resource)
                seen.add(aid)
                cur = have.get(aid)
                if cur is not None and cur.severity is c.severity and cur.text == c.text:
                    continue
                if book.raise_alarm(c.type, c.resource, c.severity, c.text, source=name,
                                    tenant=c.tenant) is not None:
                    written += 1
            for aid, a in have.items():
                if aid not in seen and book.clear(a.type, a.resource,
                                                  f"{a.text} — no longer holds",
                                                  source=name) is not None:
                    written += 1
        self.passes += 1
        return written
