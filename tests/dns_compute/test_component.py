"""Component start-up errors: clear, naming what and where (issue 5 "Bad input")."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from controller.errors import ConnectionError, ValidationError
from controller.runtime import Runtime, Settings
from dns_compute.component import DnsComponent
from tests.dns_compute.harness import put
from tests.dns_compute.topo import dns_section, entities


def _rt(tmp_path: Path, port: int = 0) -> Runtime:
    rt = Runtime(None, Settings(dns=("127.0.0.1", port), state=tmp_path))
    put(rt, entities())
    return rt


def test_unknown_client_node_is_a_validation_error(tmp_path: Path) -> None:
    rt = _rt(tmp_path)
    sec = dns_section(client_subnets=[{"prefix": "10.9.0.0/24", "node": "R9"},
                                      {"prefix": "10.8.0.0/24", "region": "mars"}])
    with pytest.raises(ValidationError) as err:
        asyncio.run(rt.start([DnsComponent(sec)]))
    text = str(err.value)
    assert "dns.client_subnets[0].node" in text and "'R9'" in text and "R1" in text
    assert "dns.client_subnets[1].region" in text and "mars" in text
    rt.store.close()


def test_port_in_use_is_a_connection_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))  # no SO_REUSEPORT: our bind must fail
        rt = _rt(tmp_path, busy.getsockname()[1])
        with pytest.raises(ConnectionError, match="cannot listen on 127.0.0.1:"):
            asyncio.run(rt.start([DnsComponent(dns_section())]))
        rt.store.close()


def test_second_server_on_the_same_port_is_refused() -> None:
    """SO_REUSEPORT must not let two responders share a port by accident."""
    from dns_compute.responder import Responder
    from dns_compute.server import DnsServer

    async def main() -> None:
        first = DnsServer(Responder(), "127.0.0.1", 0, udp_threads=2)
        await first.start()
        try:
            second = DnsServer(Responder(), "127.0.0.1", first.port)
            with pytest.raises(OSError):
                await second.start()
        finally:
            await first.stop()

    asyncio.run(main())
