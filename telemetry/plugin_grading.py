"""Plugin: compute grading and recommendation (WP-3.1.5), resource index and usage
statistics (WP-3.1.4): REST routes and ``cpn grade measure|list|recommend``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from controller.runtime import Runtime

ApiOpt = Annotated[str | None, typer.Option("--api", help="Controller HOST:PORT")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token")]


def routers(rt: Runtime) -> list[Any]:
    from telemetry import grading  # noqa: F401  (registers the compute-grade kind)
    from telemetry.grading_api import router

    return [router()]


def register_cli(app: typer.Typer) -> None:
    sub = typer.Typer(help="Compute grading (WP-3.1.5): measure, list, recommend.\n\n"
                      "Example:  cpn grade recommend --tier B1.medium --count 2",
                      no_args_is_help=True)

    @sub.command("measure")
    def measure(seconds: Annotated[float, typer.Option(help="CPU seconds to spend")] = 1.5,
                node: Annotated[str, typer.Option(help="node name")] = "local") -> None:
        """Run the grading benchmark on this machine and print benchmark and grade."""
        from telemetry.grading import grade, run_benchmark

        b = run_benchmark(node, seconds)
        typer.echo(json.dumps({"benchmark": b.model_dump(mode="json"),
                               "grade": grade(b).model_dump(mode="json")}, indent=2))

    @sub.command("list")
    def list_(api: ApiOpt = None, token: TokenOpt = None) -> None:
        """Grades the site agents measured."""
        from controller.cli.client import Client, print_table

        items = Client(api, token).call("GET", "/api/v1/grades")["items"]
        print_table(items, ["site", "node", "grade.tier", "grade.units",
                            "grade.resnet50_img_s", "grade.classes",
                            "benchmark.measured_at"])

    @sub.command("recommend")
    def rec(capability: Annotated[str, typer.Option(help="logic | parallel | neural")]
            = "neural",
            tier: Annotated[str | None, typer.Option(help="B1.small | B1.medium | B1.large")]
            = None,
            min_rate: Annotated[float | None, typer.Option(help="G ops/s, GFLOPS or img/s")]
            = None,
            count: Annotated[int, typer.Option(help="nodes needed")] = 1,
            api: ApiOpt = None, token: TokenOpt = None) -> None:
        """Sites that can run a workload, best first, and why others cannot."""
        from controller.cli.client import Client, print_table

        body = {"capability": capability, "tier": tier, "min_rate": min_rate, "count": count}
        out = Client(api, token).call("POST", "/api/v1/recommend", json=body)
        print_table(out["items"], ["site", "nodes", "rate", "tier", "l2", "why"])
        for why in out["left_out"]:
            typer.echo(f"left out: {why}")

    app.add_typer(sub, name="grade")
