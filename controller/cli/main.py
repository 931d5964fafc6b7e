"""``cpn``: run the controller and talk to it.

Every command's ``--help`` shows an example. Client commands reach the REST API
given by ``--api`` / ``$CPN_API`` (default 127.0.0.1:8080) with the token from
``--token`` / ``$CPN_TOKEN`` / ``./var/admin.token``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from controller import plugins
from controller.cli import admin, bench, objects

app = typer.Typer(
    name="cpn",
    help="CPN - compute-aware network control plane.\n\n"
    "Start with:  cpn run --config examples/gba.yaml   then, in another shell:  cpn status",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

admin.register(app)
objects.register(app)

bench.register(app)
for _mod in plugins.modules():
    _reg = getattr(_mod, "register_cli", None)
    if _reg is not None:
        _reg(app)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")]
    = False,
) -> None:
    if version:
        from importlib.metadata import version as v

        typer.echo(v("cpn"))
        raise typer.Exit()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
