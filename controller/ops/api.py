"""REST routes for operations: ``/api/v1/alarms`` (list, get, acknowledge, shelve,
clear), ``/api/v1/alarm-thresholds`` (CRUD, GBT-8) and ``/api/v1/changes`` (what
changed in the store: SSE stream and long-poll, for the console and scripts).

Rules:
- Reading needs any token; a tenant sees only alarms of its own tenant.
- Acknowledge / shelve / clear need role operator, or role tenant on its own alarms.
- The change feed carries kinds and journal sequence numbers only (no values, no
  keys), so it reveals nothing a caller could not read; the caller then re-reads
  what it shows through the ordinary routes, which apply tenant scoping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from controller.api.deps import INT64_MAX, RT, Caller
from controller.api.resources import crud_router
from controller.auth import Principal
from controller.errors import ForbiddenError
from controller.events import StateChanged
from controller.models import Model, Role
from controller.ops.alarms import unknown
from controller.ops.models import SEVERITY_ORDER, Alarm, AlarmThreshold, Severity
from controller.runtime import Runtime


class AckBody(Model):
    """Body of POST /alarms/{id}/ack: an optional ``note``."""

    note: str = Field(default="", max_length=1000)


class ShelveBody(Model):
    """Body of POST /alarms/{id}/shelve: ``seconds`` to hide the alarm for."""

    seconds: float = Field(allow_inf_nan=False)


def visible(a: Alarm, who: Principal) -> bool:
    return who.role is not Role.TENANT or a.tenant == who.tenant


def _mine(rt: Runtime, aid: str, who: Principal) -> Alarm:
    a = rt.store.get(Alarm, aid)
    if a is None or not visible(a, who):
        raise unknown(aid)
    return a


def _may_handle(a: Alarm, who: Principal) -> None:
    if who.role is Role.OPERATOR or (who.role is Role.TENANT and a.tenant == who.tenant):
        return
    raise ForbiddenError(f"role {who.role.value} may not acknowledge, shelve or clear alarm "
                         f"{a.id} (needs role operator, or the alarm's tenant)")


def alarm_json(a: Alarm, now: datetime) -> dict[str, Any]:
    return {**a.to_json_dict(), "active": a.active, "shelved": a.shelved(now)}


def summary(alarms: list[Alarm], now: datetime) -> dict[str, Any]:
    counts = {s.value: 0 for s in SEVERITY_ORDER if s is not Severity.CLEARED}
    unacked = shelved = 0
    for a in alarms:
        if not a.active:
            continue
        if a.shelved(now):
            shelved += 1
            continue
        counts[a.severity.value] += 1
        unacked += not a.acknowledged
    return {"active": counts, "unacknowledged": unacked, "shelved": shelved,
            "cleared": sum(1 for a in alarms if not a.active)}


def alarms_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])

    @r.get("", summary="List alarms (default: active and not shelved), worst first")
    def list_alarms(rt: RT, who: Caller,
                    state: Annotated[str, Query(pattern="^(active|cleared|all)$")] = "active",
                    severity: Severity | None = None, type: str | None = None,
                    include_shelved: bool = False,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
        now = datetime.now(UTC)
        mine = [a for a in rt.alarms.list() if visible(a, who)]
        items = [a for a in mine
                 if (state == "all" or (state == "active") == a.active)
                 and (severity is None or a.severity is severity)
                 and (type is None or a.type == type)
                 and (include_shelved or state != "active" or not a.shelved(now))]
        items.sort(key=lambda a: (SEVERITY_ORDER.index(a.severity), -a.last_seen.timestamp()))
        return {"items": [alarm_json(a, now) for a in items[:limit]], "total": len(items),
                "summary": summary(mine, now)}

    @r.get("/{aid}", summary="One alarm")
    def get_alarm(aid: str, rt: RT, who: Caller) -> dict[str, Any]:
        return alarm_json(_mine(rt, aid, who), datetime.now(UTC))

    @r.post("/{aid}/ack", summary="Acknowledge an alarm (journaled with who and note)")
    def ack(aid: str, rt: RT, who: Caller, body: AckBody | None = None) -> dict[str, Any]:
        _may_handle(_mine(rt, aid, who), who)
        a = rt.alarms.acknowledge(aid, who.name, body.note if body else "")
        return alarm_json(a, datetime.now(UTC))

    @r.post("/{aid}/shelve", summary="Hide an alarm for some seconds (at most 30 days)")
    def shelve(aid: str, rt: RT, who: Caller, body: ShelveBody) -> dict[str, Any]:
        _may_handle(_mine(rt, aid, who), who)
        return alarm_json(rt.alarms.shelve(aid, who.name, body.seconds), datetime.now(UTC))

    @r.post("/{aid}/unshelve", summary="Show a shelved alarm again")
    def unshelve(aid: str, rt: RT, who: Caller) -> dict[str, Any]:
        _may_handle(_mine(rt, aid, who), who)
        return alarm_json(rt.alarms.unshelve(aid, who.name), datetime.now(UTC))

    @r.post("/{aid}/clear", summary="Clear an alarm by hand (its source raises it again "
            "if the condition still holds)")
    def clear(aid: str, rt: RT, who: Caller, body: AckBody | None = None) -> dict[str, Any]:
        _may_handle(_mine(rt, aid, who), who)
        return alarm_json(rt.alarms.clear_by_id(aid, who.name, body.note if body else ""),
                          datetime.now(UTC))

    return r


def changes_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1/changes", tags=["ops"])

    @r.get("", summary="Long-poll: wait until the journal passes 'since' (kinds changed)")
    async def poll(rt: RT, who: Caller,
                   since: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
                   wait_s: Annotated[float, Query(ge=0, le=60)] = 25.0) -> dict[str, Any]:
        last = rt.store.last_seq()
        if last <= since and wait_s > 0:
            sub = rt.bus.subscribe(StateChanged, maxsize=64)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.get(), wait_s)
            finally:
                sub.close()
            last = rt.store.last_seq()
        kinds = sorted({e.kind for e in rt.store.journal(_since(since))}) if last > since \
            else []
        return {"seq": last, "kinds": kinds}

    @r.get("/stream", summary="Server-sent events: one 'change' event per committed "
           "transaction, {seq, kinds}")
    async def stream(request: Request, rt: RT, who: Caller) -> StreamingResponse:
        sub = rt.bus.subscribe(StateChanged, maxsize=256)

        async def gen() -> AsyncIterator[bytes]:
            try:
                yield _sse("hello", {"seq": rt.store.last_seq()})
                while not await request.is_disconnected():
                    try:
                        ev = await asyncio.wait_for(sub.get(), 15.0)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    assert isinstance(ev, StateChanged)
                    kinds = set(ev.kinds())
                    while not sub.queue.empty():  # coalesce a burst into one event
                        more = sub.queue.get_nowait()
                        assert isinstance(more, StateChanged)
                        kinds |= more.kinds()
                    yield _sse("change", {"seq": rt.store.last_seq(), "kinds": sorted(kinds),
                                          "lost": sub.dropped})
            finally:
                sub.close()

        return StreamingResponse(gen(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return r


def _since(seq: int) -> Any:
    from controller.store.base import JournalQuery

    return JournalQuery(since=seq, limit=10_000)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _check_threshold(store: Any, cls: Any, key: str, obj: Any) -> None:
    from controller.errors import ValidationError
    from controller.models.base import ENTITY_KINDS

    if isinstance(obj, AlarmThreshold) and obj.kind not in ENTITY_KINDS:
        raise ValidationError.single("body.kind", f"unknown kind {obj.kind!r}",
                                     "use one of " + ", ".join(sorted(ENTITY_KINDS)))


def routers() -> list[APIRouter]:
    return [alarms_router(),
            crud_router(AlarmThreshold, "alarm-thresholds", _check_threshold, tags=["alarms"]),
            changes_router()]
