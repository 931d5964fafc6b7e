"""``cpn bench NAME``: benchmarks from every plugin's ``BENCHES`` (final line JSON).

The benches themselves live in ``labs`` (``labs.plugin`` registers them); the
controller only knows the registry."""

from __future__ import annotations

import importlib
import json
from typing import Annotated

import typer

bench_app = typer.Typer(help="Benchmarks; each prints a final JSON line of figures.",
                        no_args_is_help=True)

def register(app: typer.Typer) -> None:
    """Each plugin's ``BENCHES`` (name -> (module with ``run(**options) -> dict``, one-line
    help)) as ``cpn bench NAME``; options come from ``--opt KEY=VALUE``."""
    from controller import plugins

    benches: dict[str, tuple[str, str]] = {}
    for mod in plugins.modules():
        benches.update(getattr(mod, "BENCHES", {}))
    for name, (module, summary) in sorted(benches.items()):
        _make(name, module, summary)
    app.add_typer(bench_app, name="bench")


def _value(v: str) -> object:
    """A number or true/false as JSON; anything else (e.g. ``1000,5000``) as text."""
    if v[:1].isdigit() or v in ("true", "false"):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _make(name: str, module: str, summary: str) -> None:
    def cmd(opt: Annotated[list[str] | None, typer.Option("--opt", help="KEY=VALUE option "
                                                          "for the bench.")] = None) -> None:
        mod = importlib.import_module(module)
        kwargs = {}
        for item in opt or []:
            k, sep, v = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--opt")
            kwargs[k.replace("-", "_")] = _value(v)
        result = mod.run(**kwargs)
        typer.echo(json.dumps(result))

    cmd.__doc__ = f"{summary}\n\nExample:  cpn bench {name} --opt key=value"
    bench_app.command(name)(cmd)

