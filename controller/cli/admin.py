"""Commands that run or administer the controller locally: run, config, token, quarantine,
logs, status."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controller.cli.client import Client, fail, print_json, print_table
from controller.errors import CpnError, ValidationError
from controller.models import Role

if TYPE_CHECKING:
    from controller.store import Store


def hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{what} must be HOST:PORT, e.g. 127.0.0.1:8080 (got {value!r})")
    return host.strip("[]"), int(port)


def register(app: typer.Typer) -> None:
    from controller.cli import cluster

    cluster.register(app)
    app.command("run")(run)
    app.command("status")(status)
    app.command("logs")(logs_cmd)
    config_app = typer.Typer(help="Check config files.", no_args_is_help=True)
    config_app.command("check")(config_check)
    app.add_typer(config_app, name="config")
    token_app = typer.Typer(help="API tokens (roles operator, tenant, viewer).",
                            no_args_is_help=True)
    token_app.command("create")(token_create)
    token_app.command("list")(token_list)
    token_app.command("revoke")(token_revoke)
    app.add_typer(token_app, name="token")
    q_app = typer.Typer(help="Stored objects set aside at start because they no longer "
                        "validate (kept verbatim, not lost).", no_args_is_help=True)
    q_app.command("list")(quarantine_list)
    q_app.command("show")(quarantine_show)
    q_app.command("drop")(quarantine_drop)
    app.add_typer(q_app, name="quarantine")


StateOpt = Annotated[str | None, typer.Option("--state", help="State directory (default: the "
                                              "config's controller.state, else ./var).")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Where state lives: etcd://HOST:PORT,HOST:PORT[/prefix] for a cluster "
    "(default: $CPN_STORE, the config's controller.store, else STATE/state.db).")]


def run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Network config YAML "
                                                "(sites, links, services …).")] = None,
    api: Annotated[str | None, typer.Option(help="REST listen HOST:PORT [127.0.0.1:8080]")]
    = None,
    dns: Annotated[str | None, typer.Option(help="DNS listen HOST:PORT [127.0.0.1:5353]")]
    = None,
    state: StateOpt = None,
    log_level: Annotated[str | None, typer.Option(help="debug|info|key|warning|error")] = None,
    log_json: Annotated[bool, typer.Option(help="JSON lines on stderr too.")] = False,
    store: StoreOpt = None,
    member: Annotated[str | None, typer.Option(
        help="This controller's name in a cluster [host name:API port].")] = None,
    store_sync: Annotated[str | None, typer.Option(
        help="SQLite durability: full (commits fsynced before a REST/NETCONF answer "
        "acknowledges them; the default), commit (every commit fsynced) or normal (no "
        "fsync; a power loss can roll back the last ~0.5 s of commits) [the config's "
        "controller.store_sync, else full].")] = None,
) -> None:
    """Run the controller: apply the config, serve REST (and the other components)
    until Ctrl-C.

    Example:  cpn run --config examples/gba.yaml --api 127.0.0.1:8080 --state ./var

    Cluster (three controllers on one etcd cluster; one leads and programs the
    network, every one serves REST, DNS and NETCONF):
      cpn run -c examples/gba.yaml --api 127.0.0.1:8081 --state var/c1 --member c1
        --store etcd://127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
    """
    from controller import logs
    from controller.config import load_config
    from controller.runtime import Runtime, Settings
    from controller.wiring import build

    try:
        cfg = load_config(config) if config else None
    except ValidationError as exc:
        fail(f"config rejected, nothing applied.\n{exc.render()}")
    sec = cfg.controller if cfg else None
    settings = Settings(
        api=hostport(api or (sec.api if sec else "127.0.0.1:8080"), "--api"),
        dns=hostport(dns or (sec.dns if sec else "127.0.0.1:5353"), "--dns"),
        state=Path(state or (sec.state if sec else "./var")),
        log_level=log_level or (sec.log_level if sec else "info"),
        api_tls=(Path(sec.api_tls.cert), Path(sec.api_tls.key))
        if sec is not None and sec.api_tls is not None else None,
        store=store or os.environ.get("CPN_STORE") or (sec.store if sec else None),
        member=member or (sec.member if sec else ""),
        store_sync=store_sync or (sec.store_sync if sec else "full"),
    )
    logs.setup(settings.log_level, settings.state, json_stderr=log_json, process_name="cpn-run")
    try:
        rt = Runtime(cfg, settings)
        rt.apply_config()
        _ensure_admin_token(rt, settings.state)
        asyncio.run(rt.serve(build(rt)))
    except CpnError as exc:
        fail(str(exc))


def _ensure_admin_token(rt: object, state: Path) -> None:
    from controller.auth import digest, new_token
    from controller.logs import key_event

    store = rt.store  # type: ignore[attr-defined]
    path = state / "admin.token"
    if path.exists() or store.list_tokens():
        return
    tok = new_token()
    try:
        store.add_token(digest(tok), "admin", Role.OPERATOR.value, None)
    except CpnError:  # another replica of the cluster created it at the same moment
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(tok + "\n")
    import logging

    key_event(logging.getLogger("cpn.auth"), "operator token 'admin' written",
              path=str(path))


def config_check(
    file: Annotated[Path, typer.Argument(help="Config YAML to check.")],
) -> None:
    """Validate a config file without applying it; prints every problem with its path.

    Example:  cpn config check examples/gba.yaml
    """
    from controller.config import load_config

    try:
        cfg = load_config(file)
    except ValidationError as exc:
        fail(exc.render())
    counts: dict[str, int] = {}
    for e in cfg.entities:
        counts[e.KIND] = counts.get(e.KIND, 0) + 1
    typer.echo(f"{file}: ok - " + ", ".join(f"{n} {k}s" for k, n in sorted(counts.items())))


def _open_store(state: str | None, store: str | None = None) -> Store:
    from controller.store import open_store

    url = store or os.environ.get("CPN_STORE")
    return open_store(url or str(Path(state or os.environ.get("CPN_STATE") or "./var") /
                                 "state.db"))


def token_create(
    role: Annotated[Role, typer.Option("--role", help="operator | tenant | viewer")],
    name: Annotated[str | None, typer.Option(help="Token name (unique).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (required for role tenant).")]
    = None,
    state: StateOpt = None,
    store_url: StoreOpt = None,
) -> None:
    """Create an API token and print it once (only its hash is stored).

    Example:  cpn token create --role viewer --name dashboard --state ./var
    """
    from controller.auth import digest, new_token

    if role is Role.TENANT and not tenant:
        raise typer.BadParameter("role tenant needs --tenant NAME", param_hint="--tenant")
    tok = new_token()
    name = name or f"{role.value}-{tok[4:10]}"
    store = _open_store(state, store_url)
    try:
        if tenant is not None:
            from controller.models import Tenant

            if store.get(Tenant, tenant) is None:
                known = ", ".join(sorted(t.name for t in store.list(Tenant))) or "none yet"
                fail(f"no tenant {tenant!r} in {state or os.environ.get('CPN_STATE') or './var'}"
                     f" (known: {known}); declare it under 'tenants:' in the config (or POST "
                     "/api/v1/tenants) first — a token for a tenant that does not exist "
                     "would see nothing and could never be scoped")
        store.add_token(digest(tok), name, role.value, tenant)
    except CpnError as exc:
        fail(str(exc))
    finally:
        store.close()
    typer.echo(tok)


def token_list(state: StateOpt = None, store_url: StoreOpt = None) -> None:
    """List tokens (names and roles, never the secrets).

    Example:  cpn token list --state ./var
    """
    store = _open_store(state, store_url)
    try:
        print_table(store.list_tokens(), ["name", "role", "tenant", "created", "revoked"])
    finally:
        store.close()


def token_revoke(name: Annotated[str, typer.Argument()], state: StateOpt = None,
                 store_url: StoreOpt = None) -> None:
    """Revoke a token by name (effective within 5 s).

    Example:  cpn token revoke dashboard
    """
    store = _open_store(state, store_url)
    try:
        if not store.revoke_token(name):
            fail(f"no token named {name!r}; see 'cpn token list'")
    finally:
        store.close()
    typer.echo(f"revoked {name}")


def quarantine_list(state: StateOpt = None,
                    as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List stored objects that no longer matched their model when the store opened.
    Each was set aside verbatim with the reason; the controller runs without it.

    Example:  cpn quarantine list --state ./var
    """
    store = _open_store(state)
    try:
        rows = [q.to_json_dict() for q in store.quarantined()]
    finally:
        store.close()
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("nothing quarantined")
        return
    print_table(rows, ["id", "kind", "key", "ts", "error"])
    typer.echo("fix: re-create each object with valid values (REST, NETCONF or the config "
               "file), then 'cpn quarantine drop ID'; 'cpn quarantine show ID' prints the "
               "stored text")


def quarantine_show(row_id: Annotated[int, typer.Argument(help="Id from 'cpn quarantine "
                                                          "list'.")],
                    state: StateOpt = None) -> None:
    """Print a quarantined object's stored text (to repair and re-create it).

    Example:  cpn quarantine show 1 --state ./var
    """
    store = _open_store(state)
    try:
        row = next((q for q in store.quarantined() if q.id == row_id), None)
    finally:
        store.close()
    if row is None:
        fail(f"no quarantined row {row_id}; see 'cpn quarantine list'")
    typer.echo(f"# {row.kind} {row.key}: {row.error}")
    typer.echo(row.value)


def quarantine_drop(row_id: Annotated[int, typer.Argument(help="Id from 'cpn quarantine "
                                                          "list'.")],
                    state: StateOpt = None) -> None:
    """Forget a quarantined object once it has been re-created or is not wanted.

    Example:  cpn quarantine drop 1 --state ./var
    """
    store = _open_store(state)
    try:
        if not store.drop_quarantined(row_id):
            fail(f"no quarantined row {row_id}; see 'cpn quarantine list'")
    finally:
        store.close()
    typer.echo(f"dropped quarantined row {row_id}")


ApiOpt = Annotated[str | None, typer.Option("--api", help="Controller HOST:PORT "
                                            "[$CPN_API or 127.0.0.1:8080]")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="Bearer token [$CPN_TOKEN or "
                                              "./var/admin.token]")]


def status(api: ApiOpt = None, token: TokenOpt = None, state: StateOpt = None,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the controller's health, object counts and running components.

    Example:  cpn status --api 127.0.0.1:8080
    """
    c = Client(api, token, state)
    health = c.call("GET", "/healthz")
    who = c.call("GET", "/api/v1/whoami")
    if as_json:
        print_json({"health": health, "whoami": who})
        return
    typer.echo(f"controller {c.base}: {health['status']}, zone {health['zone']}, "
               f"journal seq {health['journal_seq']}")
    typer.echo("components: " + (", ".join(health["components"]) or "-"))
    cl = health.get("cluster") or {}
    if cl.get("mode") == "cluster":
        typer.echo(f"cluster: member {cl['member']}, leader {cl['leader'] or '(none)'}, "
                   f"epoch {cl['epoch']}, lag {cl['lag_entries']} journal entries"
                   + (" — this controller leads" if cl.get("is_leader") else ""))
    typer.echo("objects: " + ", ".join(f"{k}={v}" for k, v in health["objects"].items() if v))
    if health.get("quarantined"):
        typer.echo(f"quarantined: {health['quarantined']} stored object(s) no longer valid, "
                   "set aside at start - see 'cpn quarantine list'")
    typer.echo(f"you: {who['name']} ({who['role']})")


def logs_cmd(
    grep: Annotated[str | None, typer.Option(help="Keyword (case-insensitive).")] = None,
    level: Annotated[str | None, typer.Option(help="Minimum level: debug|info|key|warning|"
                                              "error")] = None,
    module: Annotated[str | None, typer.Option(help="Module prefix, e.g. cpn.api")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 200,
    state: StateOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Raw JSON lines.")] = False,
) -> None:
    """Search the controller's stored logs (GBT-8.4: level, module, pid, process, time, content).

    Example:  cpn logs --grep MEC-1 --level key
    """
    from controller.logs import LEVELS, search

    if level and level not in LEVELS:
        raise typer.BadParameter(f"level must be one of {', '.join(LEVELS)}", param_hint="--level")
    base = state or os.environ.get("CPN_STATE") or "./var"
    recs = list(search(base, grep=grep, level=level, module=module, limit=100_000))[-limit:]
    for r in recs:
        if as_json:
            typer.echo(json.dumps(r, ensure_ascii=False))
        else:
            extra = " ".join(f"{k}={v}" for k, v in (r.get("fields") or {}).items())
            typer.echo(f"{r['time']} {r['level'].upper():7} {r['module']} "
                       f"[{r['process']}:{r['pid']}] {r['content']} {extra}".rstrip())
