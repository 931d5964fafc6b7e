"""Plugin: SRv6 dataplane — ``cpn node-agent`` and the ``program`` / ``switch`` benches.

Rules: cheap to import (pyroute2, ssl servers load inside the command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BENCHES: dict[str, tuple[str, str]] = {
    "program": ("labs.bench.program",
                "1,000 SR policies programmed on one namespace headend over netlink."),
    "switch": ("labs.bench.switch",
               "Controller-side make-before-break policy switch on a 5-router lab."),
}


def register_cli(app: typer.Typer) -> None:
    @app.command("node-agent")
    def node_agent(
        listen: Annotated[str, typer.Option(help="HOST:PORT to serve HTTPS on.")],
        cert: Annotated[Path, typer.Option(help="Agent certificate (PEM).")],
        key: Annotated[Path, typer.Option(help="Agent private key (PEM).")],
        ca: Annotated[Path, typer.Option(help="CA that signs controller certificates.")],
        node: Annotated[str, typer.Option(help="Node name reported to the controller.")]
        = "node",
    ) -> None:
        """Apply SRv6 state on this node for the controller (HTTPS, mutual TLS).

        Example: ip netns exec r1 cpn node-agent --listen 10.99.0.1:7443 --node r1
        --cert server.pem --key server.key --ca ca.pem
        """
        from srv6.dataplane.agent import serve

        for p in (cert, key, ca):
            if not p.exists():
                raise typer.BadParameter(f"{p} does not exist")
        serve(listen, cert, key, ca, node)
