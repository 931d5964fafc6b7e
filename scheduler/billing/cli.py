"""``cpn bill TENANT --month YYYY-MM`` and ``cpn usage``: bills and usage over REST."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

ApiOpt = Annotated[str | None, typer.Option("--api", help="Controller HOST:PORT")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Raw JSON")]


def _this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def register(app: typer.Typer) -> None:
    @app.command("bill")
    def bill(tenant: str,
             month: Annotated[str | None, typer.Option(help="YYYY-MM [this month]")] = None,
             api: ApiOpt = None, token: TokenOpt = None, raw: JsonOpt = False) -> None:
        """A tenant's bill for a month, line by line (GBA-6.7).

        Example: cpn bill ai-lab --month 2026-12
        """
        from controller.cli.client import Client, print_json, print_table

        b = Client(api, token).call("GET", f"/api/v1/bills/{tenant}",
                                    params={"month": month or _this_month()})
        if raw:
            print_json(b)
            return
        typer.echo(f"bill {b['tenant']} {b['month']} — plan {b['plan']} ({b['plan_kind']}), "
                   f"order {b['order']}")
        print_table(b["lines"], ["product", "site", "quantity", "included", "unit",
                                 "unit_price", "amount"])
        typer.echo(f"total {b['total']} {b['currency']}")

    @app.command("usage")
    def usage(month: Annotated[str | None, typer.Option(help="YYYY-MM [this month]")] = None,
              tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None,
              api: ApiOpt = None, token: TokenOpt = None, raw: JsonOpt = False) -> None:
        """Usage records of a month (example: cpn usage --month 2026-12 --tenant ai-lab)."""
        from controller.cli.client import Client, print_json, print_table

        c = Client(api, token)
        params = {"month": month or _this_month(), **({"tenant": tenant} if tenant else {})}
        items = c.get_all("/api/v1/usage", **params)
        if raw:
            print_json(items)
            return
        print_table(items, ["tenant", "product", "site", "rate", "in_month", "start", "end",
                            "source", "ref"])
