"""``cpn jobs logs|results`` and ``cpn centres`` (GBA-6.6 fetch results, GBA-6.3 reports)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from controller.cli.admin import ApiOpt, StateOpt, TokenOpt
from controller.cli.client import Client, fail, print_json, print_table
from controller.cli.objects import jobs_app


def register(app: typer.Typer) -> None:
    jobs_app.command("logs")(jobs_logs)
    jobs_app.command("results")(jobs_results)
    centres = typer.Typer(help="Compute centres (workload managers) and their reports.",
                          no_args_is_help=True)
    centres.command("list")(centres_list)
    app.add_typer(centres, name="centres")


def jobs_logs(job_id: str,
              stream: Annotated[str, typer.Option(help="stdout or stderr.")] = "stdout",
              follow: Annotated[bool, typer.Option("--follow", "-f",
                                                   help="Keep printing until the job ends.")]
              = False,
              api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """Print a job's stdout (or stderr) as its centre wrote it.

    Example:  cpn jobs logs job-1a2b3c4d --stream stderr
    Example:  cpn jobs logs job-1a2b3c4d --follow
    """
    c = Client(api, token, state)
    offset = 0
    while True:
        page = c.call("GET", f"/api/v1/jobs/{job_id}/logs",
                      params={"stream": stream, "offset": offset})
        sys.stdout.write(page["text"])
        sys.stdout.flush()
        offset = page["next_offset"]
        if not follow or page["state"] in ("finished", "failed", "cancelled"):
            if follow and page["text"]:
                continue  # drain what the job wrote before it ended
            return
        time.sleep(1.0)


def jobs_results(job_id: str,
                 get: Annotated[str | None, typer.Option(help="Download this file.")] = None,
                 out: Annotated[Path | None, typer.Option(help="Where to write --get "
                                                          "(default: its name).")] = None,
                 api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """List a job's result files (stdout, stderr, declared outputs) with sizes and
    SHA-256, or download one, checking its checksum.

    Example:  cpn jobs results job-1a2b3c4d
    Example:  cpn jobs results job-1a2b3c4d --get result.txt --out /tmp/result.txt
    """
    import hashlib

    c = Client(api, token, state)
    listing = c.call("GET", f"/api/v1/jobs/{job_id}/results")
    if get is None:
        typer.echo(f"{listing['job']} {listing['state']} at {listing['site']} "
                   f"exit code {listing['exit_code']}")
        print_table(listing["files"], ["name", "size", "sha256"])
        if listing["missing"]:
            typer.echo(f"declared but missing: {', '.join(listing['missing'])}")
        return
    want = next((f for f in listing["files"] if f["name"] == get), None)
    if want is None:
        fail(f"{job_id} has no result file {get!r}; it has: "
             f"{', '.join(f['name'] for f in listing['files']) or 'none'}")
    resp = c.http.get(f"/api/v1/jobs/{job_id}/results/{get}")
    if resp.status_code != 200:
        fail(f"{resp.status_code}: {resp.text[:300]}")
    if hashlib.sha256(resp.content).hexdigest() != want["sha256"]:
        fail(f"{get}: checksum mismatch after download; try again")
    dest = out or Path(Path(get).name)
    dest.write_bytes(resp.content)
    typer.echo(f"{dest} {len(resp.content)} bytes sha256 {want['sha256']} (verified)")


def centres_list(api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None,
                 as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the centres: state, load, resources, energy, price, queue.

    Example:  cpn centres list
    """
    doc = Client(api, token, state).call("GET", "/api/v1/centres")
    if as_json:
        print_json(doc)
        return
    print_table(doc["items"], ["site", "backend", "state", "load", "resources.cpu",
                               "energy_w", "price_per_hour", "pending", "running", "reason"])
