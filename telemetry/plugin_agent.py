"""Plugin: site agent, trusted onboarding CA, mTLS report ingest, link probes.

Rules: cheap to import (heavy imports inside functions). Adds the ``telemetry:``
config section, the ingest (and probe) components when that section is present,
``cpn ca …`` and ``cpn agent`` commands (its benches live in ``labs.plugin``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from telemetry.models import TelemetrySection

if TYPE_CHECKING:
    from controller.runtime import Runtime

CONFIG_SECTIONS = {"telemetry": TelemetrySection}


def components(rt: Runtime) -> list[Any]:
    sec = rt.cfg.sections.get("telemetry") if rt.cfg is not None else None
    if not isinstance(sec, TelemetrySection):
        return []
    from telemetry.ingest import IngestServer

    out: list[Any] = [IngestServer(sec)]
    if sec.probes or sec.probe_listen:
        from telemetry.probes import ProbeComponent

        out.append(ProbeComponent(sec.probes, sec.probe_listen))
    return out


DirOpt = Annotated[Path, typer.Option("--dir", help="CA directory.")]


def register_cli(app: typer.Typer) -> None:
    ca = typer.Typer(help="Trusted onboarding CA (WP-3.1.2): init, issue, revoke.",
                     no_args_is_help=True)

    @ca.command("init")
    def ca_init(dir: DirOpt = Path("./var/ca"),
                server_name: Annotated[list[str] | None, typer.Option(
                    "--server-name", help="DNS name/IP of the ingest endpoint (repeat).")] = None,
                force: bool = False) -> None:
        """Create a CA, the ingest server certificate and an empty CRL in DIR."""
        from telemetry.pki import CertificateAuthority

        names = tuple(server_name or ["localhost", "127.0.0.1"])
        out = _run(lambda: CertificateAuthority(dir).init(server_names=names, force=force))
        typer.echo(f"CA ready in {out} (ca.pem, server.pem, crl.pem)")

    @ca.command("issue")
    def ca_issue(site: Annotated[str, typer.Option("--site", help="Site name.")],
                 dir: DirOpt = Path("./var/ca"), days: int = 365, force: bool = False) -> None:
        """Issue the client certificate of a site (identity cpn-site:NAME)."""
        from telemetry.pki import CertificateAuthority

        path = _run(lambda: CertificateAuthority(dir).issue(site, days=days, force=force))
        typer.echo(f"issued {path} and {path.with_suffix('.key')}")

    @ca.command("revoke")
    def ca_revoke(site: Annotated[str, typer.Option("--site", help="Site name.")],
                  dir: DirOpt = Path("./var/ca")) -> None:
        """Revoke a site's certificate and re-issue the CRL (ingest re-reads it)."""
        from telemetry.pki import CertificateAuthority

        serial = _run(lambda: CertificateAuthority(dir).revoke(site))
        typer.echo(f"revoked {site} (serial {serial}); CRL {dir / 'crl.pem'} updated")

    app.add_typer(ca, name="ca")

    @app.command("agent")
    def agent(config: Annotated[Path, typer.Option("--config", help="Agent YAML.")],
              once: bool = typer.Option(False, help="Send one report and exit.")) -> None:
        """Run the site adapter agent (GBA-6.3): collect, report over mTLS."""
        from telemetry.agent.main import main

        raise typer.Exit(main(config, once=once))


def _run(fn: Any) -> Any:
    from controller.errors import CpnError

    try:
        return fn()
    except CpnError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
