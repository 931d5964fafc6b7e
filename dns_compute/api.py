"""REST routes of the DNS package (``/api/v1/dns``): zone, explanation, subscriptions.

Rules:
- Read-only; any authenticated caller may use them.
- ``GET /zone``: the current records (what clients with no known location get, and
  what the external primary holds) and the serial.
- ``GET /explain?name=&subnet=``: which client-subnet bucket the subnet falls in, the
  answer it gets and every candidate's score breakdown (the scheduler's ranking).
- ``GET /changes?since=SERIAL&timeout=S``: long-poll; 200 with the latest change event
  once the serial is newer than ``since``, 204 on timeout.
- ``GET /events``: Server-Sent Events, one ``event: zone`` per new zone version.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from ipaddress import ip_network
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from controller.api.deps import INT64_MAX, RT, Caller
from controller.errors import ConflictError, Issue, NotFoundError, ValidationError
from controller.runtime import Runtime
from dns_compute.component import DnsComponent
from dns_compute.zone import Zone

router = APIRouter(prefix="/api/v1/dns", tags=["dns"])


def _component(rt: Runtime) -> DnsComponent:
    comp = rt.settings.extra.get("dns_compute")
    if not isinstance(comp, DnsComponent) or comp.keeper is None:
        raise ConflictError("the DNS component is not running")
    return comp


def _zone(rt: Runtime) -> Zone:
    keeper = _component(rt).keeper
    assert keeper is not None
    if keeper.current is None:
        raise ConflictError("no zone built yet")
    return keeper.current.zone


@router.get("/zone", summary="Current compute zone records")
def zone(rt: RT, who: Caller) -> dict[str, Any]:
    z = _zone(rt)
    return {"zone": z.origin, "serial": z.serial,
            "records": [asdict(rr) for _, rr in sorted(z.rrsets.items())]}


@router.get("/explain", summary="Answer and score breakdown for a client subnet")
def explain(rt: RT, who: Caller, name: Annotated[str, Query(min_length=1)],
            subnet: str | None = None) -> dict[str, Any]:
    z = _zone(rt)
    qname = name.lower().rstrip(".") + "."
    if not qname.endswith(z.origin):
        qname = f"{qname}{z.origin}" if "." not in name.rstrip(".") else qname
    st = z.steering.get(qname)
    if st is None:
        raise NotFoundError("steered name", qname)
    bucket = "default"
    answer = st.default
    if subnet:
        try:
            net = ip_network(subnet, strict=False)
        except ValueError as exc:
            raise ValidationError(Issue("query.subnet", str(exc), "e.g. 10.0.0.0/24")) from exc
        for sub, ans in zip(st.subnets, st.buckets, strict=True):
            if sub.prefix.version == net.version and net.subnet_of(sub.prefix):  # type: ignore[arg-type]
                bucket, answer = str(sub.prefix), ans
                break
    service = next((s for s, per in z.why.items()
                    if qname == f"{s.lower()}.svc.{z.origin}"), None)
    cands = z.why.get(service or "", {}).get(bucket, [])
    sub_info = next((s.model_dump(mode="json") for s in st.subnets
                     if str(s.prefix) == bucket), None)
    return {"name": qname, "serial": z.serial, "bucket": bucket, "client": sub_info,
            "answer": {t: list(rr.rdatas) for t, rr in answer.items()},
            "candidates": [asdict(c) for c in cands]}


@router.get("/changes", summary="Long-poll for the next zone change",
            responses={204: {"description": "no change within the timeout"}})
async def changes(rt: RT, who: Caller,
                  since: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
                  timeout: Annotated[float, Query(ge=0, le=300)] = 30.0) -> Any:
    event = await _component(rt).feed.wait_newer(since, timeout)
    if event is None:
        return Response(status_code=204)
    return event


@router.get("/events", summary="Server-Sent Events of zone changes")
async def events(rt: RT, who: Caller) -> StreamingResponse:
    feed = _component(rt).feed
    queue = feed.subscribe()

    async def stream() -> AsyncIterator[bytes]:
        try:
            if feed.latest is not None:
                yield _sse(feed.latest)
            while True:
                try:
                    ev = await asyncio.wait_for(queue.get(), 15.0)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield _sse(ev)
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(stream(), media_type="text/event-stream")


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: zone\nid: {event['serial']}\ndata: {json.dumps(event)}\n\n".encode()
