"""``cpn srv6 intents …``: SR policy intents and their status (via the REST API).

Rules: commands talk to a running controller through ``controller.cli.client``;
``show`` exits 3 when the intent is ``failed`` or ``degraded`` (scripts can alarm on
it); ``--json`` prints the raw answer.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from controller.cli.admin import ApiOpt, StateOpt, TokenOpt
from controller.cli.client import Client, print_table

intents_app = typer.Typer(help="SR policy intents: create, delete, and what the network "
                          "does with them (status).", no_args_is_help=True)


def _row(it: dict[str, Any]) -> dict[str, Any]:
    st = it.get("status") or {}
    act = st.get("active") or {}
    return {"intent": f"{it['headend']}~{it['color']}~{it['endpoint']}",
            "state": st.get("state", "-"),
            "path": " ".join(act.get("hops", [])) or "-",
            "backup": "yes" if st.get("backup") else "no",
            "reason": (st.get("reason") or "")[:60]}


@intents_app.command("list")
def list_(api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """Every intent with its state, active path and whether a backup is pre-installed.

    Example:  cpn srv6 intents list
    """
    rows = [_row(i) for i in Client(api, token, state).get_all("/api/v1/srv6/intents")]
    print_table(rows, ["intent", "state", "path", "backup", "reason"])


@intents_app.command("show")
def show(key: Annotated[str, typer.Argument(help="headend~color~endpoint")],
         as_json: Annotated[bool, typer.Option("--json")] = False,
         api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """One intent: spec and status (reason, fix, segment list, generations).

    Example:  cpn srv6 intents show R1~100~MEC2
    """
    it = Client(api, token, state).call("GET", f"/api/v1/srv6/intents/{key}")
    st = it.get("status") or {}
    if as_json:
        typer.echo(json.dumps(it, indent=2))
    else:
        typer.echo(f"intent      {key}   colour {it['color']}   "
                   f"constraints {json.dumps(it.get('constraints', {}))}")
        typer.echo(f"state       {st.get('state')}   generation {st.get('generation')} "
                   f"(observed {st.get('observed_generation')})")
        for label, name in (("reason", "reason"), ("constraint", "constraint"),
                            ("device", "device"), ("fix", "fix"),
                            ("programmed", "programmed_at"), ("verified", "verified_at")):
            if st.get(name):
                typer.echo(f"{label:<11} {st[name]}")
        for label in ("active", "backup"):
            p = st.get(label)
            if p:
                typer.echo(f"{label:<11} {' -> '.join(p['hops'])}  "
                           f"({p['delay_ms']:g} ms)\n{'':<11} segments "
                           f"{', '.join(p['segments'])}")
        if st.get("prefixes"):
            typer.echo(f"{'steers':<11} {', '.join(st['prefixes'])}")
    if st.get("state") in ("failed", "degraded"):
        raise typer.Exit(3)


@intents_app.command("create")
def create(
    headend: Annotated[str, typer.Option(help="Headend node.")],
    endpoint: Annotated[str, typer.Option(help="Endpoint node.")],
    color: Annotated[int, typer.Option(help="Colour (steers the endpoint's prefixes "
                                       "of this colour).")],
    max_delay_ms: Annotated[float | None, typer.Option(help="Delay bound (ms).")] = None,
    min_bw_mbps: Annotated[float, typer.Option(help="Min available Mbit/s.")] = 0.0,
    exclude_node: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    metric: Annotated[str, typer.Option(help="igp or delay.")] = "igp",
    api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None,
) -> None:
    """Create an SR policy intent; the reconciler programs it and writes its status.

    Example:  cpn srv6 intents create --headend R1 --endpoint MEC2 --color 100
    --max-delay-ms 8
    """
    body = {"headend": headend, "endpoint": endpoint, "color": color,
            "constraints": {"max_delay_ms": max_delay_ms, "min_bandwidth_mbps": min_bw_mbps,
                            "exclude_nodes": exclude_node or [], "metric": metric}}
    got = Client(api, token, state).call("POST", "/api/v1/srv6/intents", json=body)
    typer.echo(f"created {got['headend']}~{got['color']}~{got['endpoint']} "
               f"(status: cpn srv6 intents show {got['headend']}~{got['color']}~"
               f"{got['endpoint']})")


@intents_app.command("delete")
def delete(key: Annotated[str, typer.Argument(help="headend~color~endpoint")],
           api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """Delete an intent; the reconciler removes its routes.

    Example:  cpn srv6 intents delete R1~100~MEC2
    """
    Client(api, token, state).call("DELETE", f"/api/v1/srv6/intents/{key}")
    typer.echo(f"deleted {key}")


@intents_app.command("otn-links")
def otn_links(as_json: Annotated[bool, typer.Option("--json")] = False,
              api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """On-demand OTN links under intents (optical.otn_links): whether each one's OTN path
    is up (read back from its NEs), which intents use it, the last optical result and a
    refusal held until its retry. Exits 3 when a refusal is held.

    Example:  cpn srv6 intents otn-links
    """
    got = Client(api, token, state).call("GET", "/api/v1/srv6/otn-links")
    if as_json:
        typer.echo(json.dumps(got, indent=2))
        return
    if not got["items"]:
        typer.echo(f"no on-demand OTN links (transport: {got['transport']})")
        return
    rows = []
    for it in got["items"]:
        last, held = it.get("last") or {}, it.get("failed")
        rows.append({"link": it["link"], "up": "yes" if it["up"] else "no",
                     "path": last.get("path") or "-",
                     "used by": " ".join(it["used_by"]) or "-",
                     "last": ("ok" if last.get("ok") else last.get("constraint", "-"))
                     if last else "-",
                     "held refusal": f"{held['constraint']} (retry in {held['retry_in_s']} s)"
                     if held else "-"})
    print_table(rows, ["link", "up", "path", "used by", "last", "held refusal"])
    if any(it.get("failed") for it in got["items"]):
        raise typer.Exit(3)


def _probe(key: str, trace: bool, count: int, api: str | None, token: str | None,
           state: str | None) -> None:
    client = Client(api, token, state)
    ok = 0
    for i in range(count):
        got = client.call("POST", f"/api/v1/srv6/intents-probe/{key}",
                          params={"trace": "true" if trace else "false"})
        if trace and i == 0:
            for hop in got["hops"]:
                sl = "-" if hop["segleft"] is None else hop["segleft"]
                typer.echo(f"  {hop['node']:<8} via {hop['dev']:<8} dst {hop['dst']:<26} "
                           f"segleft {sl}  {hop['ms']:.3f} ms")
        ok += bool(got["ok"])
        typer.echo(("ok   " if got["ok"] else "FAIL ") + got["detail"])
    typer.echo(f"{key}: {ok}/{count} probes captured at the egress with the computed "
               "segment list")
    if ok < count:
        raise typer.Exit(3)


def ping(key: Annotated[str, typer.Argument(help="headend~color~endpoint")],
         count: Annotated[int, typer.Option("-c", "--count", help="Probes.")] = 3,
         api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """Probe an SR policy: a UDP probe from the headend through the policy, captured at
    the egress, whose SRH must carry the computed segment list. Exits 3 on any miss.

    Example:  cpn srv6 ping BJ~100~M1 -c 5
    """
    _probe(key, False, count, api, token, state)


def trace(key: Annotated[str, typer.Argument(help="headend~color~endpoint")],
          api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """Trace an SR policy: one probe captured at every hop of its active path (outer
    destination and Segments Left per hop, time since it left the headend).

    Example:  cpn srv6 trace BJ~100~M1
    """
    _probe(key, True, 1, api, token, state)


def register(app: typer.Typer) -> None:
    from srv6.cli_paths import srv6_app

    srv6_app.add_typer(intents_app, name="intents")
    srv6_app.command("ping")(ping)
    srv6_app.command("trace")(trace)
    del app
