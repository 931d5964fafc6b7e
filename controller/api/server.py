"""The REST server as a runtime component (uvicorn on the runtime's loop).

Rules:
- The listening socket is made with ``IPPROTO_TCP``: asyncio sets ``TCP_NODELAY`` on a
  transport only when the socket's proto says TCP, and with proto 0 a reused
  keep-alive connection paid Nagle + delayed ACK (~44 ms a request; issue #15).
- ``settings.api_tls`` (cert, key) serves HTTPS; without it, listening on anything
  but a loopback address logs a warning (tokens would cross the network in clear).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from ipaddress import ip_address

import uvicorn

from controller.api.app import create_app
from controller.errors import ConnectionError, ValidationError
from controller.runtime import Runtime

log = logging.getLogger("cpn.api")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket (proto ``IPPROTO_TCP``, so accepted connections get
    ``TCP_NODELAY``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class ApiServer:
    name = "rest-api"

    def __init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.scheme = "http"

    async def start(self, rt: Runtime) -> None:
        host, port = rt.settings.api
        tls = rt.settings.api_tls
        if tls is not None:
            try:  # fail at start, naming the file, not at the first client
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(*tls)
            except (OSError, ssl.SSLError) as exc:
                raise ValidationError.single(
                    "controller.api_tls", f"cannot load certificate {tls[0]} / key "
                    f"{tls[1]}: {exc}", "give PEM files readable by the controller") from exc
        try:
            sock = listen_socket(host, port)
        except OSError as exc:
            raise ConnectionError(f"REST API cannot listen on {host}:{port}: {exc.strerror}; "
                                  "choose another with --api HOST:PORT") from exc
        config = uvicorn.Config(create_app(rt), log_config=None, access_log=False,
                                lifespan="off",
                                ssl_certfile=str(tls[0]) if tls else None,
                                ssl_keyfile=str(tls[1]) if tls else None)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(200):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()
        self.scheme = "https" if tls else "http"
        if tls is None and not is_loopback(host):
            log.warning("REST API listens on %s:%d without TLS: bearer tokens cross the "
                        "network in clear; set controller.api_tls {cert, key}", host, port)
        log.info("REST API on %s://%s:%d (OpenAPI at /openapi.json)", self.scheme, host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await asyncio.wait([self._task], timeout=5)
