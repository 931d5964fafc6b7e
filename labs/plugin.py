"""Labs plug-in: ``cpn lab security-video`` and the flow-steering component.

Rules: cheap to import. ``components(rt)`` runs the flow controller when the config has
``flows: {enabled: true, ...}``, plus the lab's minimal DNS responder when the config
has ``lab_dns: {enabled: true}`` and ``dns_compute.plugin`` is not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controller.models.base import Model

if TYPE_CHECKING:
    from controller.runtime import Component, Runtime


class LabDnsSection(Model):
    """``lab_dns:`` — ``enabled``: serve the lab's minimal responder on ``--dns`` when
    the ``dns_compute`` responder is not installed."""

    enabled: bool = False


def _flows_section() -> type[Model]:
    from controller.flows import FlowsSection

    return FlowsSection


CONFIG_SECTIONS: dict[str, type[Model]] = {"flows": _flows_section(), "lab_dns": LabDnsSection}


def components(rt: Runtime) -> list[Component]:
    out: list[Component] = []
    if rt.cfg is None:
        return out
    flows = None
    from controller.flows import FlowController, FlowsSection

    sec = rt.cfg.sections.get("flows")
    if isinstance(sec, FlowsSection) and sec.enabled:
        flows = FlowController(sec)
        out.append(flows)
    dns_sec = rt.cfg.sections.get("lab_dns")
    if isinstance(dns_sec, LabDnsSection) and dns_sec.enabled and not has_dns_compute():
        from labs.security_video.dns_fallback import FallbackDns

        out.append(FallbackDns(flows))
    return out


def has_dns_compute() -> bool:
    try:
        return importlib.util.find_spec("dns_compute.plugin") is not None
    except ModuleNotFoundError:
        return False


def register_cli(app: typer.Typer) -> None:
    lab = typer.Typer(help="Run the labs (root; network namespaces).", no_args_is_help=True)

    @lab.command("security-video")
    def security_video(
        report: Annotated[Path, typer.Option("--report", help="Report directory.")]
        = Path("var/security-video-report"),
        no_steer: Annotated[bool, typer.Option("--no-steer", help="Only the baseline: "
                                               "no steering by CPN.")] = False,
        fps: Annotated[float, typer.Option(help="Camera frames per second.")] = 30.0,
        frame_size: Annotated[int, typer.Option(help="Frame size in bytes.")] = 1200,
        before_s: Annotated[float, typer.Option(help="Seconds before the load.")] = 4.0,
        after_s: Annotated[float, typer.Option(help="Seconds after the load starts.")] = 6.0,
    ) -> None:
        """GBA-App.B: the security-video handover lab with a measured report.

        Example:  sudo cpn lab security-video --report var/sv-report
        """
        from labs.security_video.__main__ import run_cli

        raise typer.Exit(run_cli(report, steer_modes=[False] if no_steer else [True, False],
                                 fps=fps, frame_size=frame_size, before_s=before_s,
                                 after_s=after_s))

    from labs.gba import register as register_gba

    register_gba(lab)
    app.add_typer(lab, name="lab")
