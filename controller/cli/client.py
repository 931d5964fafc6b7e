"""A small REST client for CLI commands: base URL and token resolution, error display.

Token resolution order: ``--token``, ``$CPN_TOKEN``, then ``<state>/admin.token``
(written by ``cpn run`` on first start, mode 0600). ``--api`` / ``$CPN_API`` may be
``HOST:PORT`` (http) or a URL (``https://HOST:PORT``); ``$CPN_CA`` names the CA bundle
that signed the controller's certificate (``$CPN_TLS_VERIFY=0`` turns checking off).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer

DEFAULT_API = "127.0.0.1:8080"


def base_url(api: str | None) -> str:
    api = api or os.environ.get("CPN_API") or DEFAULT_API
    return api if api.startswith(("http://", "https://")) else f"http://{api}"


def tls_verify() -> str | bool:
    """Certificate check for ``https://``: ``$CPN_CA`` (a PEM CA bundle) if set; off
    only with ``$CPN_TLS_VERIFY=0`` (labs with throw-away certificates)."""
    if os.environ.get("CPN_TLS_VERIFY", "1").lower() in ("0", "false", "no"):
        return False
    return os.environ.get("CPN_CA") or True


def resolve_token(token: str | None, state: str | None) -> str | None:
    if token:
        return token
    if os.environ.get("CPN_TOKEN"):
        return os.environ["CPN_TOKEN"]
    path = Path(state or os.environ.get("CPN_STATE") or "./var") / "admin.token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


class Client:
    def __init__(self, api: str | None, token: str | None, state: str | None = None) -> None:
        self.base = base_url(api)
        tok = resolve_token(token, state)
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=10.0,
                                 verify=tls_verify())

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                fail(f"the controller at {self.base} presented a certificate this client "
                     f"does not trust ({exc}); set $CPN_CA to the CA bundle that signed it")
            if "WRONG_VERSION_NUMBER" in str(exc) or "record layer" in str(exc):
                fail(f"the controller at {self.base} does not speak TLS; use http://")
            fail(f"cannot reach the controller at {self.base}; is 'cpn run' running? "
                 "(set --api HOST:PORT or $CPN_API)")
        except httpx.RemoteProtocolError as exc:
            fail(f"request to {self.base}{path} failed: {exc} (does the controller serve "
                 "https? then use --api https://HOST:PORT)")
        except httpx.HTTPError as exc:
            fail(f"request to {self.base}{path} failed: {exc}")
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                msg = err["message"]
            except (ValueError, KeyError, TypeError):
                msg = resp.text[:500]
            if resp.status_code == 401:
                msg += " (give --token, set $CPN_TOKEN, or run where ./var/admin.token exists)"
            fail(f"{resp.status_code}: {msg}", 2 if resp.status_code < 500 else 1)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def get_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.call("GET", path, params={**params, "limit": 1000, "offset": offset})
            items.extend(page["items"])
            if page.get("next_offset") is None:
                return items
            offset = page["next_offset"]


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Plain aligned columns; nested values shown compactly."""
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, list):
            return ",".join(cell(x) for x in v) or "-"
        if isinstance(v, dict):
            return " ".join(f"{k}={cell(x)}" for k, x in v.items() if x not in (None, 0, "",
                                                                                  [], {}))
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    table = [[c.upper() for c in columns]] + [[cell(_dig(r, c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _dig(row: dict[str, Any], dotted: str) -> Any:
    cur: Any = row
    for part in dotted.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur
