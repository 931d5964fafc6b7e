"""Labs plug-in: ``cpn lab …`` and every ``cpn bench NAME``.

Rules: cheap to import. The benches live here, not in the packages they measure:
product code imports nothing from ``labs`` (``docs/architecture.md``), so the lab
registers the benches (``BENCHES``: name -> (module with ``run(**opts) -> dict``,
one-line summary)) through ``controller.plugins``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BENCHES: dict[str, tuple[str, str]] = {
    "store": ("labs.bench.store", "Sustained updates/s into the state store with journal."),
    "program": ("labs.bench.program",
                "1,000 SR policies programmed on one namespace headend over netlink."),
    "switch": ("labs.bench.switch",
               "Controller-side make-before-break policy switch on a 5-router lab."),
    "srpolicy_bgp": ("labs.bench.srpolicy_bgp",
                     "SR policies sent over BGP SR Policy until GoBGP's RIB holds them "
                     "(goal >= 1,000/s)."),
    "cspf": ("labs.bench.cspf",
             "CSPF ms per path at 1k/5k/20k nodes, product vs previous engine A/B "
             "(goal ≤ 5/10/20 ms)."),
    "schedule": ("labs.bench.schedule",
                 "Placements/s scoring every feasible node at 5k / 20k nodes, cached vs "
                 "recomputed columns A/B (goal >= 5,000 / 2,000/s)."),
    "placement": ("labs.bench.placement",
                  "Joint placement 250 / 1k / 4k flows x 50 sites: gap to the FULL model's "
                  "bound within 10 s (goal <= 1 %), greedy gap (<= 5 %)."),
    "bgp-ingest": ("labs.bench.bgp_ingest",
                   "10,000 routes with compute metadata GoBGP → ExaBGP → store"),
    "telemetry-ingest": ("labs.bench.telemetry_ingest",
                         "Site-report metric updates/s into state (decode+validate+CATS+store)."),
    "threshold-latency": ("labs.bench.threshold_latency",
                          "Agent threshold crossing → controller store event, p99 (netns)."),
    "rwa": ("labs.bench.rwa", "RWA: 100 nodes, 96 channels, 500 lightpaths; ms/request "
            "(goal ≤ 50 ms)."),
    "optical-provision": ("labs.bench.optical_provision", "Provision a 5-NE OCh path via "
                          "NETCONF (confirmed commit) on lab netconfd NEs (goal ≤ 2 s)."),
    "restoration": ("labs.bench.restoration", "Fiber cut → restored path on lab netconfd "
                    "NEs (goal ≤ 3 s)."),
    "intent": ("labs.bench.intent",
               "SR policy intents: created → programmed and read back (p50/p99 over 200 "
               "intents, 20 routers; goal p99 ≤ 100 ms) and 1,000 from cold (goal ≤ 5 s)."),
    "sdwan-failover": ("labs.bench.sdwan_failover",
                       "SD-WAN SLA breach (nftables loss, or breach=delay: an iperf3 "
                       "flood congesting a shaped underlay) → app traffic on the other "
                       "underlay, 100 ms probes, median/p99 over 20 rounds (goal ≤ 1 s)."),
    "repath": ("labs.bench.repath",
               "Link down → new path programmed (goal ≤ 100 ms) and the stream gap with the "
               "backup pre-installed (goal ≤ 20 ms, kernel SRv6)."),
    "dns": ("labs.bench.dns", "Embedded responder vs Knot (1 UDP worker) with dnsperf, "
            "A/B alternated: answers per CPU-second and per wall-second on an uncached mix "
            "(goal ≥ 0.6× Knot) and a cached one (≥ 1.0×), scaling 1 → 2 worker processes "
            "(≥ 1.8×, CPN and Knot under the light generator labs/dnsload.c, which "
            "counts only valid answers; the lower of the wall-clock and dedicated-cores "
            "ratios, not met when the lone worker did not get its core; client CPU and "
            "the ceiling it sets printed; dnsperf's figures too), metric-change → "
            "changed-answer latency."),
    "dns-cache-memory": ("labs.bench.dns_cache", "RSS growth of the embedded DNS server "
                         "answering 300 k client sources in random letter case (≤ 20 MB)."),
    "api-keepalive": ("labs.bench.api_keepalive", "REST on one reused keep-alive "
                      "connection, server process pinned to one core: ms a request (≤ 2 ms) "
                      "and authenticated GETs per server CPU-second (≥ 2,000), whoami and "
                      "a site list, asyncio vs uvloop alternated."),
    "console": ("labs.bench.console", "Web console load time on the GBA example in "
                "headless Chromium, reload vs login alternated (goal < 1 s)."),
}


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
        console: Annotated[Path | None, typer.Option(
            help="Also watch the web console in headless Chromium through the CPN run "
                 "(timeline and screenshots in this directory; the browser takes CPU "
                 "from the lab).")] = None,
    ) -> None:
        """GBA-App.B: the security-video handover lab with a measured report.

        Example:  sudo cpn lab security-video --report var/sv-report
        """
        from labs.security_video.__main__ import run_cli

        raise typer.Exit(run_cli(report, steer_modes=[False] if no_steer else [True, False],
                                 fps=fps, frame_size=frame_size, before_s=before_s,
                                 after_s=after_s,
                                 console_dir=str(console) if console else None))

    @lab.command("intents")
    def intents(
        report: Annotated[Path, typer.Option("--report", help="Report directory.")]
        = Path("var/intents-report"),
        rate: Annotated[int, typer.Option(help="Stream rate during the link cut (Hz).")]
        = 1000,
        seconds: Annotated[float, typer.Option(help="Stream duration (s).")] = 4.0,
    ) -> None:
        """SR policy intents on a 10-router namespace backbone: created over REST and
        NETCONF, verified by capture, re-pathed under a 1 kHz stream when a link is cut,
        repaired after a hand-deleted route; prints and writes a measured report.

        Example:  sudo cpn lab intents --report var/intents-report
        """
        from labs.intents.scenario import run_cli as run_intents

        raise typer.Exit(run_intents(report, rate, seconds))

    @lab.command("placement")
    def placement(
        report: Annotated[Path, typer.Option("--report", help="Report directory.")]
        = Path("var/placement-report"),
    ) -> None:
        """A flow with a bandwidth and delay requirement placed through REST becomes a
        programmed SR path (read back from the kernel, probed, carrying a UDP stream) and
        a DNS answer; both follow it when it moves and are released when it ends. Real
        kernel SRv6 routers in namespaces; prints and writes a report.

        Example:  sudo cpn lab placement --report var/placement-report
        """
        from labs.intents.placement import run_cli as run_placement

        raise typer.Exit(run_placement(report))

    @lab.command("crosslayer")
    def crosslayer(report: Annotated[Path, typer.Option("--report", help="Report directory.")]
                   = Path("var/crosslayer-report")) -> None:
        """An SR policy intent between two hubs over an OTN link (GBA-5.2): the OTN path
        is provisioned on netconfd NEs and read back before the SRv6 path is programmed,
        traffic flows, the intent is deleted, the routes go and the OTN path is released
        on the NEs; prints one JSON line with the timings, writes the full report.

        Example:  sudo cpn lab crosslayer --report var/crosslayer-report
        """
        from labs.crosslayer import run_cli as run_crosslayer

        raise typer.Exit(run_crosslayer(report))

    @lab.command("centres")
    def centres(report: Annotated[Path | None, typer.Option(
            "--report", help="Also write report.json into this directory.")] = None) -> None:
        """Two real Slurm clusters as two compute centres: jobs dispatched and run, one
        centre's scheduler stopped mid-run (its waiting jobs move), a dataset upload cut
        and resumed, results fetched and checked (GBA-6.3, GBA-6.5g, GBA-6.6).

        Example:  sudo cpn lab centres --report var/centres-report
        """
        from labs.centres import main

        raise typer.Exit(main(["--report", str(report)] if report else []))

    from labs.gba import register as register_gba
    from labs.ha import register as register_ha

    register_gba(lab)
    register_ha(lab)
    app.add_typer(lab, name="lab")
