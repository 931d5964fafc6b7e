"""``cpn optical paths|links|alarms``: the optical layer as the controller sees it (REST)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

ApiOpt = Annotated[str | None, typer.Option("--api", help="Controller HOST:PORT")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Raw JSON")]

COLUMNS = {
    "paths": ["id", "state", "active", "channel", "rate", "osnr-db", "route", "error"],
    "links": ["link-id", "cpn-optical-device:oper-status", "cpn-optical-device:length-km",
              "cpn-optical-device:srlg", "cpn-optical-device:in-use-channels"],
    "alarms": ["ne", "id", "type", "resource"],
}


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Optical layer: paths, OMS links, alarms.", no_args_is_help=True)
    for what in COLUMNS:
        sub.command(what)(_lister(what))
    app.add_typer(sub, name="optical")


def _lister(what: str):  # type: ignore[no-untyped-def]
    def cmd(api: ApiOpt = None, token: TokenOpt = None, raw: JsonOpt = False) -> None:
        from controller.cli.client import Client
        items = Client(api, token).call("GET", f"/api/v1/optical/{what}")["items"]
        if raw:
            typer.echo(json.dumps(items, indent=2))
            return
        cols = COLUMNS[what]
        typer.echo("\t".join(c.split(":")[-1] for c in cols))
        for it in items:
            typer.echo("\t".join(_cell(it.get(c)) for c in cols))
    cmd.__doc__ = f"List optical {what}."
    return cmd


def _cell(v: object) -> str:
    if isinstance(v, list):
        return "-".join(str(x) for x in v)
    return "" if v is None else str(v)
