"""Node agent: a node's ``PolicyProgrammer`` served over HTTPS with mutual TLS, and the
controller-side ``AgentProgrammer`` that drives it (GBA-6.4.3c, issue 4 §3).

Rules:
- The agent (``cpn node-agent --listen HOST:PORT --cert --key --ca``) owns one local
  ``NetlinkProgrammer``; every request is served under one lock, so the lifecycle
  (load → diff → commit / rollback) is the same transaction as in-process.
- TLS is mandatory both ways: the agent refuses clients without a certificate signed by
  ``--ca``; the controller verifies the agent's certificate and host name.
- API (JSON): ``GET /v1/actual`` → ``{"node", "routes"}``; ``POST /v1/load``
  ``{"routes"}``; ``GET /v1/diff`` → ``{"ops": [{"kind", "route"}], "text"}``;
  ``POST /v1/commit`` and ``POST /v1/rollback`` → ``Result`` fields. Bad input → 400
  with ``{"error"}`` naming the field; misuse (commit before load) → 409.
- ``AgentProgrammer`` can open its TCP connection from inside a namespace (``netns=``):
  the lab's controller side runs in the root namespace, which may not reach namespaces
  over TCP (LAB-NOTES), so the socket is created in the management namespace.
- Transport failures become ``ConnectionError``; a 4xx/5xx becomes
  ``RemoteProtocolError`` (or ``ValidationError`` for 400).
"""

from __future__ import annotations

import ctypes
import http.client
import json
import logging
import socket
import ssl
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from controller.errors import (
    ConnectionError,
    CpnError,
    LocalProtocolError,
    RemoteProtocolError,
    ValidationError,
)

from .programmer import PolicyProgrammer, Result
from .state import NodeState, RouteOp, route_from_dict

log = logging.getLogger("cpn.srv6.agent")
_CLONE_NEWNET = 0x40000000


# ------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    server: AgentServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"{}")
        except json.JSONDecodeError as exc:
            raise ValidationError.single("body", f"not JSON: {exc}") from None

    def _dispatch(self, method: str) -> None:
        prog = self.server.programmer
        try:
            with self.server.lock:
                if method == "GET" and self.path == "/v1/actual":
                    out: dict[str, Any] = {"node": prog.node,
                                           "routes": prog.read_actual().to_list()}
                elif method == "GET" and self.path == "/v1/diff":
                    ops = prog.diff()
                    out = {"ops": [{"kind": o.kind, "route": o.route.to_dict()} for o in ops],
                           "text": "\n".join(str(o) for o in ops)}
                elif method == "POST" and self.path == "/v1/load":
                    routes = self._body().get("routes")
                    if not isinstance(routes, list):
                        raise ValidationError.single("routes", "a list of routes is required")
                    state = NodeState.from_list(routes)
                    prog.load(state)
                    out = {"loaded": len(state)}
                elif method == "POST" and self.path == "/v1/commit":
                    out = asdict(prog.commit())
                elif method == "POST" and self.path == "/v1/rollback":
                    out = asdict(prog.rollback())
                else:
                    self._send(404, {"error": f"no {method} {self.path}"})
                    return
        except ValidationError as exc:
            self._send(400, {"error": str(exc)})
            return
        except LocalProtocolError as exc:
            self._send(409, {"error": str(exc)})
            return
        except CpnError as exc:
            self._send(500, {"error": str(exc)})
            return
        self._send(200, out)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")


class AgentServer(ThreadingHTTPServer):
    """HTTPS/mTLS server around one programmer."""

    daemon_threads = True

    def __init__(self, listen: tuple[str, int], programmer: PolicyProgrammer, cert: Path,
                 key: Path, ca: Path) -> None:
        self.programmer = programmer
        self.lock = threading.Lock()
        if ":" in listen[0]:
            self.address_family = socket.AF_INET6
        super().__init__(listen, _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        ctx.load_verify_locations(str(ca))
        ctx.verify_mode = ssl.CERT_REQUIRED  # mutual TLS
        self.socket = ctx.wrap_socket(self.socket, server_side=True)


def serve(listen: str, cert: Path, key: Path, ca: Path, node: str,
          netns: str | None = None) -> None:
    """Run the agent until interrupted (``cpn node-agent``)."""
    from .netlink import NetlinkProgrammer

    host, _, port = listen.rpartition(":")
    prog = NetlinkProgrammer(node, netns=netns)
    srv = AgentServer((host.strip("[]"), int(port)), prog, cert, key, ca)
    print(json.dumps({"node-agent": node, "listening": listen}), flush=True)
    log.info("node agent %s listening on %s", node, listen)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()
        prog.close()


# ------------------------------------------------------------------------- client


def _socket_in_netns(netns: str, addr: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP connection opened from inside ``netns`` (setns on a throwaway thread)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/var/run/netns/{netns}", "rb") as fh:
                if libc.setns(fh.fileno(), _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns({netns}) failed")
            out["sock"] = socket.create_connection(addr, timeout=timeout)
        except OSError as exc:
            out["err"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    sock: socket.socket = out["sock"]
    return sock


class _Conn(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ctx: ssl.SSLContext, netns: str | None,
                 timeout: float) -> None:
        super().__init__(host, port, context=ctx, timeout=timeout)
        self._netns = netns
        self._ctx = ctx

    def connect(self) -> None:
        if self._netns is None:
            super().connect()
            return
        raw = _socket_in_netns(self._netns, (self.host, self.port), self.timeout or 10)
        self.sock = self._ctx.wrap_socket(raw, server_hostname=self.host)


class AgentProgrammer:
    """``PolicyProgrammer`` for a remote node agent (keeps one TLS connection)."""

    def __init__(self, node: str, address: str, cert: Path, key: Path, ca: Path,
                 netns: str | None = None, timeout: float = 10.0) -> None:
        self.node = node
        host, _, port = address.rpartition(":")
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        ctx.load_cert_chain(str(cert), str(key))
        self._conn = _Conn(host.strip("[]"), int(port), ctx, netns, timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):  # one reconnect if the kept-alive connection was closed
            try:
                self._conn.request(method, path, body=data,
                                   headers={"Content-Type": "application/json"})
                resp = self._conn.getresponse()
                raw = resp.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                if attempt:
                    raise ConnectionError(f"node agent {self.node} "
                                          f"({self._conn.host}:{self._conn.port}): {exc}") \
                        from exc
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RemoteProtocolError(f"node agent {self.node}: non-JSON reply") from exc
        if resp.status == 400:
            raise ValidationError.single(f"node-agent {self.node}", payload.get("error", ""))
        if resp.status == 409:
            raise LocalProtocolError(payload.get("error", ""))
        if resp.status != 200:
            raise RemoteProtocolError(f"node agent {self.node}: HTTP {resp.status}: "
                                      f"{payload.get('error', '')}")
        return payload

    def read_actual(self) -> NodeState:
        return NodeState.from_list(self._call("GET", "/v1/actual")["routes"])

    def load(self, desired: NodeState) -> None:
        self._call("POST", "/v1/load", {"routes": desired.to_list()})

    def diff(self) -> list[RouteOp]:
        ops = self._call("GET", "/v1/diff")["ops"]
        return [RouteOp(o["kind"], route_from_dict(o["route"])) for o in ops]

    def commit(self) -> Result:
        return Result(**self._call("POST", "/v1/commit"))

    def rollback(self) -> Result:
        return Result(**self._call("POST", "/v1/rollback"))

    def close(self) -> None:
        self._conn.close()


__all__ = ["AgentProgrammer", "AgentServer", "serve"]


def main(argv: list[str] | None = None) -> int:
    """``python -m srv6.dataplane.agent`` — same as ``cpn node-agent`` without loading
    the controller's CLI (and every plugin) first."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m srv6.dataplane.agent")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--cert", type=Path, required=True)
    ap.add_argument("--key", type=Path, required=True)
    ap.add_argument("--ca", type=Path, required=True)
    ap.add_argument("--node", default="node")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    serve(a.listen, a.cert, a.key, a.ca, a.node)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
