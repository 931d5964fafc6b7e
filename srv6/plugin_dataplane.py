"""Plugin: SRv6 dataplane — the ``flows:`` config section, the flow-steering
component (``srv6.flows``) and its Prometheus gauges (``srv6.metrics``),
``cpn node-agent`` and ``cpn sr-policy-peer``.

Rules: cheap to import (pyroute2, ssl servers load inside the command).
``components(rt)`` runs the flow controller when the config has
``flows: {enabled: true, ...}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from srv6.flows import FlowsSection

if TYPE_CHECKING:
    from controller.runtime import Component, Runtime

CONFIG_SECTIONS = {"flows": FlowsSection}


def components(rt: Runtime) -> list[Component]:
    sec = rt.cfg.sections.get("flows") if rt.cfg is not None else None
    if not isinstance(sec, FlowsSection) or not sec.enabled:
        return []
    from srv6.flows import FlowController

    return [FlowController(sec)]


def routers(rt: Runtime) -> list[Any]:
    """No routes: registers the flow-steering gauges and the console's ``flows`` view
    when the API is built."""
    from srv6 import console, metrics

    metrics.register(rt)
    rt.console_views["flows"] = lambda: console.flows_view(rt.store)
    return []


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

    @app.command("sr-policy-peer")
    def sr_policy_peer(
        config: Annotated[Path, typer.Option(help="CPN config file (intents.nodes section).")],
        node: Annotated[str, typer.Option(help="Node bound to programmer bgp-sr-policy.")],
        wait: Annotated[float, typer.Option(help="Seconds to wait for the session.")] = 15.0,
    ) -> None:
        """Open the BGP SR Policy session to a router and print what was negotiated.

        Checks the pairing before CPN programs anything: the session comes up, the router's
        BGP identifier (the Route Target CPN puts on every policy) and the SR policy
        families both sides announced. Exit status 1 when the session does not come up.

        Example: cpn sr-policy-peer --config site.yaml --node R9
        """
        import json

        from controller.config import load_config
        from srv6.dataplane.bgp_config import build_bgp
        from srv6.dataplane.bgp_srpolicy import BgpSrPolicyProgrammer
        from srv6.intents.models import IntentsSection

        cfg = load_config(config)
        section = cfg.sections.get("intents")
        binding = section.nodes.get(node) if isinstance(section, IntentsSection) else None
        if binding is None or binding.bgp is None:
            raise typer.BadParameter(f"{config}: intents.nodes.{node} is not bound to "
                                     "programmer bgp-sr-policy", param_hint="--node")
        prog = build_bgp(node, binding.bgp, connect_timeout=wait)
        assert isinstance(prog, BgpSrPolicyProgrammer)
        try:
            status = prog.status()
            typer.echo(json.dumps(status, indent=2))
            if not status["established"]:
                typer.echo(prog.speaker.down_reason(), err=True)
                raise typer.Exit(1)
        finally:
            prog.close()
