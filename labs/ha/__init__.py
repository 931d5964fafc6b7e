"""The HA fault lab (issue 16): ``cpn lab ha``.

Rules: cheap to import; ``register(lab_app)`` adds the ``ha`` command to ``cpn lab``;
the work lives in ``labs.ha.run`` (loaded when the command runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(lab_app: typer.Typer) -> None:
    @lab_app.command("ha")
    def ha(report: Annotated[Path, typer.Option("--report", help="Report directory.")]
           = Path("var/ha-report"),
           seed: Annotated[int | None, typer.Option(help="Random seed for the fault "
                                                    "points (default: random).")] = None,
           ) -> None:
        """Three controllers on a three-member etcd under faults: kill -9 the leader
        (twice), stop an etcd member, cut the leader off from etcd — while a client
        writes. Checks every acknowledged write is there exactly once, the journal has
        no gap or duplicate, no two controllers acted in one epoch; measures failover
        time and etcd vs SQLite write throughput (root: nftables for the cut).

        Example:  sudo cpn lab ha --report var/ha-report
        """
        from labs.ha.run import run_cli

        raise typer.Exit(run_cli(report, seed))

    @lab_app.command("ha-video")
    def ha_video(report: Annotated[Path, typer.Option("--report", help="Report directory.")]
                 = Path("var/ha-video-report")) -> None:
        """A steered video flow (the security-video data plane in namespaces, kernel
        SRv6) under three controllers on a three-member etcd: the leader is killed
        (kill -9) while the camera streams; the routes stay while nobody leads, the new
        leader's first pass changes nothing and no frame is lost; then the new leader
        moves the flow to MEC-2 (make-before-break) when MEC-1 is overloaded; last, that
        leader is cut off from etcd (nftables) under a third stream (root).

        Example:  sudo cpn lab ha-video --report var/ha-video-report
        """
        from labs.ha.video import run_cli

        raise typer.Exit(run_cli(report))
