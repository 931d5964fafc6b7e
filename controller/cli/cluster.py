"""``cpn backup`` / ``cpn restore`` (GBA-6.8) and ``cpn cluster status`` (issue 16).

Rules: each works on either backend; the store is chosen like ``cpn run`` does
(``--store`` / ``$CPN_STORE`` / ``--state``). A refused backup names the problem and
the fix and changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controller.cli.client import fail, print_json, print_table
from controller.errors import CpnError, ValidationError


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
    cl = typer.Typer(help="A cluster of controllers on etcd: members, leader, epoch, lag.",
                     no_args_is_help=True)
    cl.command("status")(cluster_status_cmd)
    app.add_typer(cl, name="cluster")


def backup(
    file: Annotated[Path, typer.Argument(help="Backup file to write (JSON, checksummed).")],
    state: Annotated[str | None, typer.Option("--state", help="State directory "
                                              "(SQLite store) [./var]")] = None,
    store: Annotated[str | None, typer.Option("--store", help="etcd://HOST:PORT,… "
                                              "[$CPN_STORE]")] = None,
) -> None:
    """Take a consistent online snapshot of the state store (objects, journal, meta,
    tokens, quarantined rows) while the controllers keep running. Quarantined rows (ones
    the store refused to load) are kept verbatim and restored as quarantined.

    Example:  cpn backup var/backup-$(date +%F).json --store etcd://127.0.0.1:2379
    """
    from controller import plugins
    from controller.cli.admin import _open_store
    from controller.store.backup import write_backup

    plugins.modules()  # every plug-in kind registered
    try:
        st = _open_store(state, store)
    except CpnError as exc:
        fail(str(exc))
    try:
        header = write_backup(st, file)
    except CpnError as exc:
        fail(str(exc))
    finally:
        st.close()
    c = header["counts"]
    typer.echo(f"backup {file}: {c['objects']} objects, journal to seq {header['last_seq']} "
               f"({c['journal']} entries), {c['tokens']} tokens, "
               f"{c['quarantined']} quarantined rows, sha256 "
               f"{header['sha256'][:16]}… from {header['source']['url']}")


def restore(
    file: Annotated[Path, typer.Argument(help="Backup file written by 'cpn backup'.")],
    state: Annotated[str | None, typer.Option("--state", help="EMPTY state directory "
                                              "(SQLite store) [./var]")] = None,
    store: Annotated[str | None, typer.Option("--store", help="EMPTY etcd cluster/prefix "
                                              "etcd://HOST:PORT,…[/prefix]")] = None,
) -> None:
    """Bring a backup back into an empty state directory or etcd cluster; the file is
    checked first (format, checksum, every object against its model).

    Example:  cpn restore var/backup.json --state var/restored && cpn run --state var/restored
    """
    from controller import plugins
    from controller.cli.admin import _open_store
    from controller.store.backup import read_backup

    plugins.modules()
    try:
        header, body = read_backup(file)
    except ValidationError as exc:
        fail(f"backup refused, nothing restored.\n{exc.render()}")
    try:
        st = _open_store(state, store)
    except CpnError as exc:
        fail(str(exc))
    try:
        st.load_dump(body)
    except CpnError as exc:
        fail(f"{exc}\nnothing restored")
    finally:
        st.close()
    n_q = len(body.get("quarantine", []))
    typer.echo(f"restored {file} ({header['counts']['objects']} objects, journal to seq "
               f"{header['last_seq']}) into {st.url}"
               + (f"; {n_q} quarantined rows kept as quarantined (cpn quarantine list)"
                  if n_q else ""))


def cluster_status_cmd(
    store: Annotated[str | None, typer.Option("--store", help="etcd://HOST:PORT,… "
                                              "[$CPN_STORE]")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Members (API address, role, lag in store revisions, heartbeat age), the leader
    and its epoch, read straight from etcd.

    Example:  cpn cluster status --store etcd://127.0.0.1:2379,127.0.0.1:22379
    """
    import os

    from controller.cluster import cluster_status
    from controller.store.etcd import EtcdStore

    url = store or os.environ.get("CPN_STORE")
    if not url or not url.startswith("etcd://"):
        fail("cpn cluster status needs --store etcd://HOST:PORT,… (a single controller on "
             "SQLite has no cluster: 'cpn status' shows it)")
    try:
        st = EtcdStore.from_url(url)
    except CpnError as exc:
        fail(str(exc))
    try:
        out = cluster_status(st)
    except CpnError as exc:
        fail(str(exc))
    finally:
        st.close()
    if as_json:
        print_json(out)
        return
    typer.echo(f"cluster {out['store']}: leader {out['leader'] or '(none — headless)'}, "
               f"epoch {out['epoch']}, journal seq {out['journal_seq']}")
    print_table([{**m, "role": "leader" if m["member"] == out["leader"] else "follower"}
                 for m in out["members"]],
                ["member", "role", "api", "epoch", "last_seq", "lag_entries",
                 "heartbeat_age_s"])
