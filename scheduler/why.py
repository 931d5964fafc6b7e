"""``GET /api/v1/why/{kind}/{id}`` and ``cpn why KIND ID``: why not elsewhere (issue 14).

Rules:
- ``job`` and ``flow`` read the stored ``SchedulingDecision`` (``job:<id>``,
  ``flow:<id>``): each other site with the constraint that ruled it out (compute
  filter, capacity, delay bound, SRLG, optical reach …), from the decision's inputs —
  nothing is re-decided. When the decision's network part is an SR policy intent, its
  path alternatives follow.
- ``intent`` (key ``headend~color~endpoint``): the k cheapest paths judged against the
  intent's constraints (``srv6.intents.whynot``), with the programmed one marked, plus
  the placement decision it carries, if any.
- Unknown ids are 404 naming the kind and the key; a read needs a caller.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from fastapi import APIRouter

from controller.api.deps import RT, Caller
from controller.cli.admin import ApiOpt, StateOpt, TokenOpt
from controller.errors import NotFoundError
from scheduler.decisions import SchedulingDecision, why_not

Kind = Literal["job", "flow", "intent"]


def intent_paths(store: Any, key: str) -> dict[str, Any]:
    from srv6.api_paths import topology_from_store
    from srv6.intents.models import SrPolicyIntentStatus
    from srv6.intents.whynot import path_alternatives
    from srv6.models import SrPolicyIntent

    it = store.get(SrPolicyIntent, key)
    if it is None:
        raise NotFoundError(SrPolicyIntent.KIND, key)
    st = store.get(SrPolicyIntentStatus, key)
    existing = {s.key: list(s.active.links) for s in store.list(SrPolicyIntentStatus)
                if s.active is not None}
    active = st.active.links if st is not None and st.active is not None else None
    out: dict[str, Any] = {
        "intent": key, "state": st.state.value if st else "pending",
        "reason": st.reason if st else "not reconciled yet",
        "constraints": it.constraints.model_dump(mode="json", exclude_defaults=True),
        "paths": path_alternatives(topology_from_store(store), it, active, existing)}
    return out


def answer(store: Any, kind: Kind, ident: str) -> dict[str, Any]:
    """The "why not elsewhere" answer for one job, flow or intent."""
    if kind == "intent":
        out = intent_paths(store, ident)
        from srv6.models import SrPolicyIntent

        it = store.get(SrPolicyIntent, ident)
        ref = it.name.removeprefix("place:") if it is not None else ""
        dec = store.get(SchedulingDecision, ref) if ref else None
        if dec is not None:
            out["placement"] = why_not(dec)
        return out
    dec = store.get(SchedulingDecision, f"{kind}:{ident}")
    if dec is None:
        raise NotFoundError(SchedulingDecision.KIND, f"{kind}:{ident}")
    res = why_not(dec)
    if dec.intent:
        try:
            res["network"] = intent_paths(store, dec.intent)
        except NotFoundError:
            res["network"] = {"intent": dec.intent, "state": "released"}
    return res


def why_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["scheduler"])

    @r.get("/scheduler/decisions", summary="Stored scheduling decisions (with inputs)")
    def decisions(rt: RT, who: Caller) -> list[dict[str, Any]]:
        del who
        return [d.to_json_dict() for d in sorted(rt.store.list(SchedulingDecision),
                                                 key=lambda d: d.key)]

    @r.get("/scheduler/decisions/{key:path}", summary="One scheduling decision")
    def decision(key: str, rt: RT, who: Caller) -> dict[str, Any]:
        del who
        d = rt.store.get(SchedulingDecision, key)
        if d is None:
            raise NotFoundError(SchedulingDecision.KIND, key)
        return d.to_json_dict()

    @r.get("/why/{kind}/{ident:path}",
           summary="Why a job, flow or intent is not elsewhere (per site / path)")
    def why(kind: Kind, ident: str, rt: RT, who: Caller) -> dict[str, Any]:
        del who
        return answer(rt.store, kind, ident)

    return r


def register_cli(app: typer.Typer) -> None:
    @app.command("why")
    def why(kind: Annotated[str, typer.Argument(help="job, flow or intent")],
            ident: Annotated[str, typer.Argument(help="job id, flow id, or intent key "
                                                      "headend~color~endpoint")],
            as_json: Annotated[bool, typer.Option("--json")] = False,
            api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
        """Why a job, flow or SR policy intent went where it did and not elsewhere:
        each other site (compute filter, capacity, delay bound, SRLG, optical reach) or
        path, from the stored decision.

        Example:  cpn why job j-42      cpn why intent BJ~100~M1
        """
        import json

        from controller.cli.client import Client

        if kind not in ("job", "flow", "intent"):
            typer.echo(f"error: KIND {kind!r} is not one of job, flow, intent "
                       "(e.g. cpn why job j-42)", err=True)
            raise typer.Exit(2)
        res = Client(api, token, state).call("GET", f"/api/v1/why/{kind}/{ident}")
        if as_json:
            typer.echo(json.dumps(res, indent=2))
            return
        for line in render(res):
            typer.echo(line)


def render(res: dict[str, Any]) -> list[str]:
    """The CLI's text form of an answer."""
    out: list[str] = []
    if "summary" in res:
        out.append(f"{res['summary']}   (policy {res.get('policy') or '-'}, "
                   f"decided {res.get('decided_at')})")
        for n in res["not_chosen"]:
            out.append(f"  not {n['site']:<16} {n['constraint']:<14} {n['why']}")
        part = res.get("network_part")
        if part:  # the placement's path as the network carries it (its intent's status)
            line = f"  network part {part['state']}"
            if part.get("constraint"):
                line += f" ({part['constraint']})"
            if part.get("reason"):
                line += f": {part['reason']}"
            if part.get("fix"):
                line += f"; fix: {part['fix']}"
            out.append(line)
    net = res.get("network") if "summary" in res else res
    if net and "paths" in net:
        out.append(f"intent {net['intent']} ({net['state']}): paths")
        for p in net["paths"]:
            out.append(f"  {p['verdict']:<14} {' > '.join(p['hops'])}  "
                       f"{p['delay_ms']:g} ms  {p['why']}")
    if "placement" in res:
        out += render(res["placement"])
    return out
