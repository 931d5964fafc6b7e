"""REST for SR policy intent status (``/api/v1/srv6``).

Rules:
- ``GET /srv6/intents[/{key}]`` (the CRUD routes) show each intent with its ``status``
  (``status_view``): the reconciler's ``SrPolicyIntentStatus``, or ``pending`` with
  the reason when none was written yet (no reconciler running, or not reached yet).
- ``GET /srv6/intent-status[/{key}]`` lists statuses alone (for dashboards and alarms).
- ``POST /srv6/intents-reconcile`` (operator) runs one reconciler pass now and returns
  its report; 503 naming the fix when no reconciler runs in this controller.
- ``GET /srv6/otn-links``: the on-demand OTN links under intents (``srv6.intents.
  crosslayer.view``): up, provisioned, which intents use each, the last optical result.
- Any authenticated caller may read.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from controller.api.deps import RT, Caller, Operator, Paging
from controller.errors import ConnectionError, NotFoundError
from controller.models import Entity
from srv6.intents.models import IntentState, SrPolicyIntentStatus

router = APIRouter(prefix="/api/v1/srv6", tags=["srv6"])


def status_view(store: Any, obj: Entity) -> dict[str, Any]:
    st = store.get(SrPolicyIntentStatus, obj.key)
    if st is None:
        st = SrPolicyIntentStatus(intent=obj.key, state=IntentState.PENDING,
                                  reason="not reconciled yet",
                                  fix="the intents reconciler programs it at its next pass "
                                      "(needs an intents: section in the config)")
    body = st.to_json_dict()
    body.pop("intent", None)
    return {"status": body}


@router.get("/intent-status", summary="Status of every SR policy intent")
def list_status(rt: RT, who: Caller, page: Paging) -> dict[str, Any]:
    del who
    rows = sorted(rt.store.list(SrPolicyIntentStatus), key=lambda s: s.key)
    return page.apply([s.to_json_dict() for s in rows])


@router.get("/intent-status/{key:path}", summary="Status of one SR policy intent")
def get_status(key: str, rt: RT, who: Caller) -> dict[str, Any]:
    del who
    st = rt.store.get(SrPolicyIntentStatus, key)
    if st is None:
        raise NotFoundError(SrPolicyIntentStatus.KIND, key)
    return st.to_json_dict()


@router.post("/intents-probe/{key:path}",
             summary="Send a probe through an intent's policy (ping; trace=true: every hop)")
async def probe_now(key: str, rt: RT, who: Operator, trace: bool = False) -> dict[str, Any]:
    del who
    import asyncio
    from dataclasses import asdict

    from srv6.intents.verify import probe_intent

    rec = rt.settings.extra.get("srv6-intents")
    if rec is None:
        raise ConnectionError("no SR policy intent reconciler runs in this controller; "
                              "add an intents: section to the config")
    res = await asyncio.get_running_loop().run_in_executor(
        rec._pool, lambda: probe_intent(rec, key, trace=trace))
    return asdict(res)


@router.post("/intents-reconcile", summary="Run one intent reconciler pass now")
async def reconcile_now(rt: RT, who: Operator) -> dict[str, Any]:
    del who
    rec = rt.settings.extra.get("srv6-intents")
    if rec is None:
        raise ConnectionError("no SR policy intent reconciler runs in this controller; "
                               "add an intents: section to the config")
    rep = await rec.run_pass()
    return {"ops": rep.ops, "repairs": rep.repairs, "frozen": rep.frozen,
            "elapsed_ms": round(rep.elapsed_ms, 3), "changed": rep.changed}


@router.get("/otn-links", summary="On-demand OTN links under intents and their OTN paths")
def otn_links(rt: RT, who: Caller) -> dict[str, Any]:
    del who
    from srv6.intents.crosslayer import view

    return view(rt)


@router.get("/slice-status", summary="What the network does with every slice (HTB classes)")
def list_slice_status(rt: RT, who: Caller, page: Paging) -> dict[str, Any]:
    del who
    from srv6.slices_enforce import SliceStatus

    rows = sorted(rt.store.list(SliceStatus), key=lambda s: s.key)
    return page.apply([s.to_json_dict() for s in rows])


@router.get("/slice-status/{name}", summary="Status of one slice: state, constraint, classes")
def get_slice_status(name: str, rt: RT, who: Caller) -> dict[str, Any]:
    del who
    from srv6.slices_enforce import SliceStatus

    st = rt.store.get(SliceStatus, name)
    if st is None:
        raise NotFoundError(SliceStatus.KIND, name)
    return st.to_json_dict()
