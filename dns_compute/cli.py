"""``cpn resolve NAME [--subnet CIDR] [--server HOST:PORT]``: the answer and why.

Rules:
- The answer comes from a real DNS query (UDP, EDNS0, ECS with ``--subnet``; TCP retry
  when truncated) to the embedded responder (``--server``, ``$CPN_DNS``, default
  127.0.0.1:5353).
- The why comes from the controller's REST API (``GET /api/v1/dns/explain``): the
  client-subnet bucket and every candidate's score breakdown from the scheduler's
  ranking. ``--no-why`` skips it.
- Exit 1 when the server cannot be reached, 2 for bad input.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("resolve")(resolve)


def resolve(
    name: Annotated[str, typer.Argument(help="Name to resolve, e.g. video.svc.cpn.example")],
    subnet: Annotated[str | None, typer.Option(help="Client subnet sent as ECS "
                                                    "(RFC 7871), e.g. 10.0.0.0/24")] = None,
    rdtype: Annotated[str, typer.Option("--type", help="Query type")] = "A",
    server: Annotated[str | None, typer.Option(help="DNS server HOST:PORT "
                                                    "(default $CPN_DNS or 127.0.0.1:5353)")]
    = None,
    api: Annotated[str | None, typer.Option(help="Controller API HOST:PORT")] = None,
    token: Annotated[str | None, typer.Option(help="API bearer token")] = None,
    state: Annotated[str | None, typer.Option(help="State dir (for admin.token)")] = None,
    why: Annotated[bool, typer.Option("--why/--no-why", help="Show the score "
                                                             "breakdown")] = True,
) -> None:
    """Resolve NAME like a client would, then explain the choice.

    Example:  cpn resolve video.svc.cpn.example --subnet 10.0.1.0/24
    """
    import dns.edns
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype

    from controller.cli.client import Client, fail
    from dns_compute.component import split_hostport

    host, port = split_hostport(server or os.environ.get("CPN_DNS") or "127.0.0.1:5353")
    try:
        options = [dns.edns.ECSOption.from_text(subnet)] if subnet else []
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232,
                                       options=options)
    except (ValueError, dns.exception.DNSException) as exc:
        fail(f"bad name/type/subnet: {exc}", 2)
    try:
        resp, _tcp = dns.query.udp_with_fallback(query, host, port=port, timeout=3.0)
    except (OSError, dns.exception.DNSException) as exc:
        fail(f"no answer from DNS server {host}:{port}: {exc or type(exc).__name__} "
             "(is 'cpn run' running? set --server or $CPN_DNS)")
    scope = next((o.scopelen for o in resp.options if isinstance(o, dns.edns.ECSOption)),
                 None)
    typer.echo(f";; {host}:{port} rcode {dns.rcode.to_text(resp.rcode())}"
               + (f", ECS {subnet} scope /{scope}" if scope is not None else ""))
    for rrset in resp.answer:
        typer.echo(rrset.to_text())
    if not resp.answer:
        for rrset in resp.authority:
            typer.echo(f";; authority: {rrset.to_text()}")
    if not why or dns.rdatatype.from_text(rdtype) not in (dns.rdatatype.A,
                                                           dns.rdatatype.AAAA):
        return
    client = Client(api, token, state)
    params = {"name": name, **({"subnet": subnet} if subnet else {})}
    info = client.call("GET", "/api/v1/dns/explain", params=params)
    _print_why(info)


def _print_why(info: dict[str, Any]) -> None:
    client = info.get("client") or {}
    where = client.get("node") or client.get("region") or "unknown location"
    typer.echo(f"\nwhy: client bucket {info['bucket']} ({where}); zone serial "
               f"{info['serial']}; answer {info['answer']}")
    typer.echo(f"{'site':<12} {'address':<16} {'score':>6} {'l2':>5} {'delay_ms':>9}  "
               "eligible  breakdown")
    for c in info["candidates"]:
        parts = ", ".join(f"{k}={v:.1f}" for k, v in c["reasons"].items())
        l2 = "-" if c["l2"] is None else f"{c['l2']:.1f}"
        delay = "-" if c["path_delay_ms"] is None else f"{c['path_delay_ms']:.2f}"
        elig = "yes" if c["eligible"] else f"no: {c['why_not']}"
        typer.echo(f"{c['site']:<12} {c['address']:<16} {c['score']:>6.1f} {l2:>5} "
                   f"{delay:>9}  {elig:<8}  {parts}")
