"""``cpn``: run the controller and talk to it.

Every command's ``--help`` shows an example. Client commands reach the REST API
given by ``--api`` / ``$CPN_API`` (default 127.0.0.1:8080) with the token from
``--token`` / ``$CPN_TOKEN`` / ``./var/admin.token``.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from controller.cli import admin, objects

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

#: (module, attribute) of typer apps other packages contribute, added as sub-commands.
#: The module must define ``register(app: typer.Typer) -> None``.
EXTRA_COMMANDS: list[str] = [
    "labs.cli",
]


def _extend() -> None:
    for module in EXTRA_COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        mod.register(app)


_extend()


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
