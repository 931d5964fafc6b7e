"""``cpn alarms list|ack|shelve|clear``: the alarm store over REST (GBA-6.7)."""

from __future__ import annotations

from typing import Annotated

import typer

ApiOpt = Annotated[str | None, typer.Option("--api", help="Controller HOST:PORT")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Raw JSON")]

COLUMNS = ["id", "severity", "type", "resource", "count", "acknowledged", "last_seen", "text"]


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Alarms: list, acknowledge, shelve, clear.\n\n"
                      "Example:  cpn alarms list --state all   then   cpn alarms ack A0123456789ab "
                      "--note 'on it'", no_args_is_help=True)

    @sub.command("list")
    def list_(state: Annotated[str, typer.Option(help="active | cleared | all")] = "active",
              api: ApiOpt = None, token: TokenOpt = None, raw: JsonOpt = False) -> None:
        """List alarms, worst first (shelved ones only with --state all)."""
        from controller.cli.client import Client, print_json, print_table

        out = Client(api, token).call("GET", "/api/v1/alarms",
                                      params={"state": state, "include_shelved": True})
        if raw:
            print_json(out)
            return
        print_table(out["items"], COLUMNS)

    @sub.command("ack")
    def ack(alarm: str, note: Annotated[str, typer.Option(help="why / who handles it")] = "",
            api: ApiOpt = None, token: TokenOpt = None) -> None:
        """Acknowledge an alarm (journaled with your token name and the note)."""
        from controller.cli.client import Client

        a = Client(api, token).call("POST", f"/api/v1/alarms/{alarm}/ack", json={"note": note})
        typer.echo(f"{a['id']} acknowledged by {a['acked_by']}")

    @sub.command("shelve")
    def shelve(alarm: str, minutes: Annotated[float, typer.Option(help="how long")] = 60,
               api: ApiOpt = None, token: TokenOpt = None) -> None:
        """Hide an alarm for some minutes (example: cpn alarms shelve A0123456789ab
        --minutes 30)."""
        from controller.cli.client import Client

        a = Client(api, token).call("POST", f"/api/v1/alarms/{alarm}/shelve",
                                    json={"seconds": minutes * 60})
        typer.echo(f"{a['id']} shelved until {a['shelved_until']}")

    @sub.command("clear")
    def clear(alarm: str, note: Annotated[str, typer.Option(help="why")] = "",
              api: ApiOpt = None, token: TokenOpt = None) -> None:
        """Clear an alarm by hand (raised again if its condition still holds)."""
        from controller.cli.client import Client

        a = Client(api, token).call("POST", f"/api/v1/alarms/{alarm}/clear", json={"note": note})
        typer.echo(f"{a['id']} {a['severity']}")

    app.add_typer(sub, name="alarms")
