"""REST conformance (issue #15): bounded query integers, tenant isolation, one error
shape for every error, an OpenAPI document that lists real schemas and error codes,
TCP_NODELAY on the API socket, TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import socket
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controller.api.app import create_app
from controller.api.server import ApiServer, listen_socket
from controller.cli.main import app as cli
from controller.config import parse_config
from controller.errors import ValidationError
from controller.runtime import Runtime
from labs.netns import free_port
from tests.conftest import example_runtime

TOKENS = {"operator": "op-token-0123456789", "viewer": "viewer-token-0123456789",
          "tenant": "tenant-token-0123456789"}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with example_runtime(tmp_path, "gba.yaml", (TOKENS["operator"], "ops", "operator", None),
                         (TOKENS["viewer"], "dash", "viewer", None),
                         (TOKENS["tenant"], "lab", "tenant", "ai-lab")) as runtime:
        yield runtime


@pytest.fixture
def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt), raise_server_exceptions=False)


def h(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and {"code", "message", "issues"} <= set(body["error"])
    return dict(body["error"])


def test_events_since_past_int64_is_422_not_500(client: TestClient) -> None:
    e = _error(client.get("/api/v1/events?since=9223372036854775808", headers=h("viewer")),
               422)
    assert e["issues"][0]["path"] == "query.since"
    assert client.get("/api/v1/events?since=9223372036854775807",
                      headers=h("viewer")).status_code == 200
    _error(client.get("/api/v1/sites?offset=99999999999999999999", headers=h("viewer")), 422)


def test_every_integer_query_parameter_is_bounded(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    unbounded = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                schema = p.get("schema", {})
                kinds = [schema, *schema.get("anyOf", [])]
                if any(k.get("type") == "integer" and "maximum" not in k for k in kinds):
                    unbounded.append(f"{method.upper()} {path} ?{p['name']}")
    assert unbounded == []


def test_tenant_sees_only_its_own_events_users_and_tenant(client: TestClient) -> None:
    other = client.post("/api/v1/jobs", headers=h("operator"),
                        json={"spec": {"name": "secret"}, "tenant": "city-ops"}).json()
    mine = client.post("/api/v1/jobs", headers=h("tenant"),
                       json={"spec": {"name": "train"}}).json()
    seen = client.get("/api/v1/events?kind=job", headers=h("tenant")).json()["items"]
    assert [e["key"] for e in seen] == [mine["id"]]
    assert other["id"] in {e["key"] for e in client.get(
        "/api/v1/events?kind=job", headers=h("viewer")).json()["items"]}
    everything = client.get("/api/v1/events?limit=1000", headers=h("tenant")).json()["items"]
    assert other["id"] not in {e["key"] for e in everything}
    assert {e["value"]["tenant"] for e in everything if e["kind"] == "user"} == {"ai-lab"}
    newest = client.get("/api/v1/events?newest_first=true&limit=2",
                        headers=h("tenant")).json()["items"]
    assert newest[0]["key"] == mine["id"]
    users = client.get("/api/v1/users", headers=h("tenant")).json()["items"]
    assert {u["tenant"] for u in users} == {"ai-lab"} and users
    tenants = client.get("/api/v1/tenants", headers=h("tenant")).json()["items"]
    assert [t["name"] for t in tenants] == ["ai-lab"]
    _error(client.get("/api/v1/tenants/city-ops", headers=h("tenant")), 404)
    assert len(client.get("/api/v1/tenants", headers=h("viewer")).json()["items"]) == 4


def test_token_for_missing_tenant_is_refused_at_creation(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["token", "create", "--role", "tenant", "--tenant", "nope",
                                   "--state", str(tmp_path)])
    assert out.exit_code == 1 and "no tenant 'nope'" in out.output
    text = ("tenants:\n  - {name: lab}\nauth:\n  tokens:\n"
            "    - {name: t, role: tenant, tenant: nope, token: abcdefghijklmnop}\n")
    with pytest.raises(ValidationError, match=r"auth.tokens\[0\].tenant.*unknown tenant"):
        parse_config(text)
    parse_config(text.replace("tenant: nope", "tenant: lab"))


def test_every_error_uses_the_documented_shape(client: TestClient) -> None:
    e = _error(client.post("/api/v1/sites", headers={**h("operator"),
                                                    "content-type": "application/json"},
                           content=b"{not json"), 422)
    assert e["issues"][0]["path"] == "body" and "not valid JSON" in e["issues"][0]["message"]
    assert _error(client.get("/nope"), 404)["code"] == "not_found"
    assert _error(client.delete("/healthz"), 405)["code"] == "method_not_allowed"
    _error(client.get("/api/v1/sites"), 401)
    _error(client.post("/api/v1/sites", headers=h("viewer"), json={}), 403)
    _error(client.post("/api/v1/sites", headers=h("operator"), json=[]), 422)


def test_openapi_lists_error_codes_and_entity_schemas(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text and '"detail"' not in text
    site = doc["paths"]["/api/v1/sites/{key}"]
    assert {"401", "403", "404", "422"} <= set(site["get"]["responses"])
    assert site["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Site"}
    assert site["delete"]["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"}
    create = doc["paths"]["/api/v1/sites"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Site"}
    assert {"409", "422"} <= set(create["responses"])
    assert "name" in doc["components"]["schemas"]["Site"]["properties"]


def test_api_socket_sets_tcp_nodelay_on_accepted_connections() -> None:
    """Issue #15: with proto 0 asyncio left Nagle on (~44 ms per keep-alive request)."""
    async def main() -> int:
        sock = listen_socket("127.0.0.1", 0)
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            s = w.get_extra_info("socket")
            got.set_result(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            w.close()

        server = await asyncio.start_server(conn, sock=sock)
        _, w = await asyncio.open_connection(*sock.getsockname())
        try:
            return await asyncio.wait_for(got, 5)
        finally:
            w.close()
            server.close()

    assert asyncio.run(main()) != 0


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cpn-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(
                                                            ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_p, key_p = tmp / "api.crt", tmp / "api.key"
    cert_p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_p.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return cert_p, key_p


def test_rest_over_tls_with_the_cli(rt: Runtime, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    rt.settings.api = ("127.0.0.1", port)
    rt.settings.api_tls = (cert, key)
    runner = CliRunner()

    async def main() -> tuple[Any, Any, Any]:
        server = ApiServer()
        await server.start(rt)
        try:
            args = ["sites", "list", "--api", f"https://127.0.0.1:{port}",
                    "--token", TOKENS["viewer"]]
            monkeypatch.delenv("CPN_CA", raising=False)
            untrusted = await asyncio.to_thread(runner.invoke, cli, args)
            monkeypatch.setenv("CPN_CA", str(cert))
            trusted = await asyncio.to_thread(runner.invoke, cli, args)
            plain = await asyncio.to_thread(runner.invoke, cli, [
                "sites", "list", "--api", f"127.0.0.1:{port}", "--token", TOKENS["viewer"]])
            return untrusted, trusted, plain
        finally:
            await server.stop()

    untrusted, trusted, plain = asyncio.run(main())
    assert untrusted.exit_code == 1 and "$CPN_CA" in untrusted.output
    assert trusted.exit_code == 0 and "MEC-GZ1" in trusted.output
    assert plain.exit_code == 1 and "https" in plain.output


def test_api_beyond_loopback_without_tls_warns(rt: Runtime,
                                              caplog: pytest.LogCaptureFixture) -> None:
    rt.settings.api = ("0.0.0.0", free_port())

    async def main() -> None:
        server = ApiServer()
        await server.start(rt)
        await server.stop()

    with caplog.at_level(logging.WARNING, logger="cpn.api"):
        asyncio.run(main())
    assert any("without TLS" in r.getMessage() for r in caplog.records)
