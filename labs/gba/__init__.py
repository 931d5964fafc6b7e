"""The GBA multi-centre lab (GBA-5.2, GBA-6.5f, WP-3.3.4): ``cpn lab gba``.

Rules: cheap to import; ``register(lab_app)`` adds the ``gba`` command to the ``cpn lab``
typer group; the work lives in ``labs.gba.run`` (loaded when the command runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(lab_app: typer.Typer) -> None:
    @lab_app.command("gba")
    def gba(report: Annotated[Path, typer.Option("--report", help="Report directory.")]
            = Path("var/gba-report")) -> None:
        """GBA multi-centre lab: jobs placed by energy/price/data/network/manual policies
        through REST, SR paths to the chosen sites, decisions explained from the journal.

        Example:  cpn lab gba --report var/gba-report
        """
        from labs.gba.run import run_cli

        raise typer.Exit(run_cli(report))
