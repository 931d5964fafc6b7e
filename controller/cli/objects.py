"""Client commands over the REST API: sites, links, services, nodes, resources, routers,
jobs, events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from controller.cli.admin import ApiOpt, StateOpt, TokenOpt
from controller.cli.client import Client, fail, print_json, print_table

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

# plural -> (columns for the table, example key)
KINDS: dict[str, tuple[list[str], str]] = {
    "sites": (["name", "kind", "region", "interconnects"], "MEC-1"),
    "links": (["a", "b", "kind", "delay_ms", "jitter_ms", "loss_pct", "capacity_mbps",
               "available_mbps", "state"], "HUB-GZ~HUB-SZ"),
    "services": (["name", "anycast", "port", "affinity", "requirements", "instances"], "video"),
    "nodes": (["site", "name", "arch", "awake"], "MEC-1/srv1"),
    "resources": (["site", "name", "type", "dynamic", "value", "unit", "scope"], "MEC-1/cpu"),
    "routers": (["name", "site", "loopback", "locator"], "R1"),
}


def _kind_app(plural: str, columns: list[str], example: str) -> typer.Typer:
    sub = typer.Typer(help=f"{plural.capitalize()} (read through the REST API).",
                      no_args_is_help=True)

    @sub.command("list")
    def list_(api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None,
              as_json: JsonOpt = False) -> None:
        items = Client(api, token, state).get_all(f"/api/v1/{plural}")
        print_json(items) if as_json else print_table(items, columns)

    list_.__doc__ = f"List {plural}.\n\nExample:  cpn {plural} list"

    @sub.command("get")
    def get(key: Annotated[str, typer.Argument()], api: ApiOpt = None, token: TokenOpt = None,
            state: StateOpt = None) -> None:
        print_json(Client(api, token, state).call("GET", f"/api/v1/{plural}/{key}"))

    get.__doc__ = f"Show one of the {plural} as JSON.\n\nExample:  cpn {plural} get {example}"
    return sub


def register(app: typer.Typer) -> None:
    for plural, (columns, example) in KINDS.items():
        app.add_typer(_kind_app(plural, columns, example), name=plural)
    app.add_typer(jobs_app, name="jobs")
    app.command("events")(events)


jobs_app = typer.Typer(help="Jobs: submit, list, get, modify, cancel, delete.",
                       no_args_is_help=True)
JOB_COLUMNS = ["id", "tenant", "spec.name", "spec.kind", "state", "site", "spec.priority",
               "submitted_at"]


@jobs_app.command("submit")
def jobs_submit(
    name: Annotated[str | None, typer.Option(help="Job name.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="YAML/JSON job spec.")]
    = None,
    cpu: Annotated[float, typer.Option(help="CPU cores per replica.")] = 0,
    gpu: Annotated[float, typer.Option(help="GPUs per replica.")] = 0,
    memory_gib: Annotated[float, typer.Option(help="Memory per replica, GiB.")] = 0,
    replicas: Annotated[int, typer.Option(min=1)] = 1,
    tenant: Annotated[str | None, typer.Option(help="Tenant (operators only).")] = None,
    api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None,
) -> None:
    """Submit a job from flags or a spec file.

    Example:  cpn jobs submit --name resnet --gpu 2 --memory-gib 32
    Example:  cpn jobs submit -f examples/job.yaml
    """
    if file:
        from controller.errors import ValidationError
        from controller.yamlsafe import load_file

        try:
            spec = load_file(file)
        except ValidationError as exc:
            fail(f"cannot read job spec: {exc}")
        if not isinstance(spec, dict):
            fail(f"{file}: a job spec must be a mapping (name:, requirements: …)")
    elif name:
        spec = {"name": name, "replicas": replicas,
                "requirements": {"cpu_cores": cpu, "gpu": gpu, "memory_gib": memory_gib}}
    else:
        raise typer.BadParameter("give --name (and resources) or --file SPEC")
    body: dict[str, Any] = {"spec": spec}
    if tenant:
        body["tenant"] = tenant
    job = Client(api, token, state).call("POST", "/api/v1/jobs", json=body)
    typer.echo(f"{job['id']} {job['state']}")


@jobs_app.command("list")
def jobs_list(state_filter: Annotated[str | None, typer.Option("--state-is",
                                                              help="Only jobs in this state.")]
              = None,
              api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None,
              as_json: JsonOpt = False) -> None:
    """List jobs (a tenant sees its own).

    Example:  cpn jobs list --state-is queued
    """
    params = {"state": state_filter} if state_filter else {}
    items = Client(api, token, state).get_all("/api/v1/jobs", **params)
    print_json(items) if as_json else print_table(items, JOB_COLUMNS)


@jobs_app.command("get")
def jobs_get(job_id: str, api: ApiOpt = None, token: TokenOpt = None,
             state: StateOpt = None) -> None:
    """Show a job.

    Example:  cpn jobs get job-1a2b3c4d
    """
    print_json(Client(api, token, state).call("GET", f"/api/v1/jobs/{job_id}"))


@jobs_app.command("modify")
def jobs_modify(job_id: str,
                set_: Annotated[list[str], typer.Option("--set", help="FIELD=VALUE on the spec "
                                                        "(dotted; value parsed as YAML)")],
                api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None) -> None:
    """Modify a job that has not started.

    Example:  cpn jobs modify job-1a2b3c4d --set priority=500 --set requirements.gpu=4
    """
    patch: dict[str, Any] = {}
    for item in set_:
        field, sep, raw = item.partition("=")
        if not sep or not field:
            raise typer.BadParameter(f"expected FIELD=VALUE, got {item!r}", param_hint="--set")
        cur = patch
        *parents, leaf = field.split(".")
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = yaml.safe_load(raw)
    job = Client(api, token, state).call("PATCH", f"/api/v1/jobs/{job_id}", json=patch)
    typer.echo(json.dumps(job["spec"], indent=2))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, api: ApiOpt = None, token: TokenOpt = None,
                state: StateOpt = None) -> None:
    """Cancel a job.

    Example:  cpn jobs cancel job-1a2b3c4d
    """
    job = Client(api, token, state).call("POST", f"/api/v1/jobs/{job_id}/cancel")
    typer.echo(f"{job['id']} {job['state']}")


@jobs_app.command("delete")
def jobs_delete(job_id: str, api: ApiOpt = None, token: TokenOpt = None,
                state: StateOpt = None) -> None:
    """Delete an ended job.

    Example:  cpn jobs delete job-1a2b3c4d
    """
    Client(api, token, state).call("DELETE", f"/api/v1/jobs/{job_id}")
    typer.echo(f"deleted {job_id}")


def events(
    kind: Annotated[str | None, typer.Option(help="Only this kind (site, link, job …).")]
    = None,
    key: Annotated[str | None, typer.Option(help="Only this object key.")] = None,
    since: Annotated[int, typer.Option(help="Only journal seq > SINCE.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the change journal: who changed what, when, why.

    Example:  cpn events --kind link --limit 20
    """
    params: dict[str, Any] = {"since": since, "limit": limit}
    if kind:
        params["kind"] = kind
    if key:
        params["key"] = key
    page = Client(api, token, state).call("GET", "/api/v1/events", params=params)
    if as_json:
        print_json(page["items"])
    else:
        print_table(page["items"], ["seq", "ts", "actor", "action", "kind", "key", "reason"])
