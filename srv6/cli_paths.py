"""``cpn srv6 …`` commands: compute a path, list SR policies (via the REST API).

Rules: commands talk to a running controller through ``controller.cli.client``; an
infeasible path exits 3 after printing which constraint failed; ``--json`` prints the
raw answer.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from controller.cli.admin import ApiOpt, StateOpt, TokenOpt
from controller.cli.client import Client

srv6_app = typer.Typer(help="SRv6 paths and policies.", no_args_is_help=True)


@srv6_app.command("path")
def path(
    src: Annotated[str, typer.Option("--from", help="Headend node.")],
    dst: Annotated[str, typer.Option("--to", help="Endpoint node.")],
    max_delay_ms: Annotated[float | None, typer.Option(help="Delay bound (ms).")] = None,
    min_bw_mbps: Annotated[float, typer.Option(help="Min available Mbit/s.")] = 0.0,
    exclude_node: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    exclude_link: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    exclude_srlg: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    max_sid_depth: Annotated[int, typer.Option(help="Headend SID depth.")] = 10,
    metric: Annotated[str, typer.Option(help="igp or delay.")] = "igp",
    k: Annotated[int, typer.Option(help="k shortest paths.")] = 1,
    disjoint: Annotated[str | None, typer.Option(help="link or srlg pair.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None,
) -> None:
    """Compute a constrained path and its minimal segment list.

    Example:  cpn srv6 path --from R1 --to R3 --max-delay-ms 5
    """
    body: dict[str, Any] = {
        "headend": src, "endpoint": dst, "k": k, "disjoint": disjoint,
        "constraints": {"max_delay_ms": max_delay_ms, "min_bandwidth_mbps": min_bw_mbps,
                        "exclude_nodes": exclude_node or [],
                        "exclude_links": exclude_link or [],
                        "exclude_srlgs": exclude_srlg or [],
                        "max_sid_depth": max_sid_depth, "metric": metric}}
    got = Client(api, token, state).call("POST", "/api/v1/srv6/paths", json=body)
    if as_json:
        typer.echo(json.dumps(got, indent=2))
    else:
        for res in got.get("paths", [got]):
            typer.echo(render_path(res))
    if not got.get("ok"):
        raise typer.Exit(3)


@srv6_app.command("policies")
def policies(api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """List SR policies and their active candidate path.

    Example:  cpn srv6 policies
    """
    for pol in Client(api, token, state).get_all("/api/v1/srv6/policies"):
        act = pol.get("active") or {}
        lists = act.get("segment_lists") or []
        sids = ", ".join(lists[0]["sids"]) if lists else "-"
        typer.echo(f"{pol['headend']}~{pol['color']}~{pol['endpoint']}  "
                   f"pref={act.get('preference', '-')}  [{sids}]")


def render_path(res: dict[str, Any]) -> str:
    """Human text for one PathResult dict."""
    if not res.get("ok"):
        text = f"infeasible ({res.get('failed_constraint')}): {res.get('reason')}"
        if res.get("hops"):
            text += f"\n  path {' -> '.join(res['hops'])}"
        return text
    sl = res.get("segment_list") or {}
    return "\n".join([
        f"path     {' -> '.join(res['hops'])}",
        f"delay    {res['delay_ms']:.3f} ms   igp {res['igp_metric']}   "
        f"min free {res['min_available_mbps']:g} Mbit/s",
        f"segments {', '.join(sl.get('sids', []))}  ({' | '.join(res['segment_hops'])})",
        f"why      {res['reason']}",
    ])


def register(app: typer.Typer) -> None:
    app.add_typer(srv6_app, name="srv6")
