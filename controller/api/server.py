"""The REST server as a runtime component (uvicorn on the runtime's loop)."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn

from controller.api.app import create_app
from controller.errors import ConnectionError
from controller.runtime import Runtime

log = logging.getLogger("cpn.api")


class ApiServer:
    name = "rest-api"

    def __init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, rt: Runtime) -> None:
        host, port = rt.settings.api
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            raise ConnectionError(f"REST API cannot listen on {host}:{port}: {exc.strerror}; "
                                  "choose another with --api HOST:PORT") from exc
        config = uvicorn.Config(create_app(rt), log_config=None, access_log=False,
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(200):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()
        log.info("REST API on http://%s:%d (OpenAPI at /openapi.json)", host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await asyncio.wait([self._task], timeout=5)
