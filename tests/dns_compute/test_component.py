"""Component start-up errors: clear, naming what and where (issue 5 "Bad input")."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from controller.errors import ConnectionError, ValidationError
from controller.runtime import Runtime, Settings
from dns_compute.component import DnsComponent
from labs.knot import knotd_path
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


@pytest.mark.skipif(knotd_path() is None, reason="needs knotd")
def test_knot_publishing_failing_is_an_alarm_until_a_publish_succeeds(tmp_path: Path) -> None:
    """GBA-6.7: the Knot primary unreachable ⇒ a major knot-publish-failed alarm; Knot
    started on that port and the next zone change published ⇒ the alarm clears."""
    import time

    from controller.ops.engine import AlarmEngine
    from controller.ops.models import Alarm, Severity
    from labs.knot import KnotServer, free_port, new_secret
    from tests.dns_compute.topo import overloaded

    port, secret = free_port(), new_secret()
    rt = _rt(tmp_path / "ctl")
    comp = DnsComponent(dns_section(knot={"server": f"127.0.0.1:{port}",
                                          "tsig_secret": secret, "timeout_s": 0.3,
                                          "retries": 1}))
    eng = AlarmEngine()
    eng.rt = rt

    async def until(pred: object, what: str) -> None:
        end = time.monotonic() + 20
        while not pred():  # type: ignore[operator]
            assert time.monotonic() < end, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    def knot_alarm() -> Alarm | None:
        return next((a for a in rt.alarms.list() if a.type == "knot-publish-failed"), None)

    async def go() -> None:
        await rt.start([comp])
        try:
            assert comp.publisher is not None
            await until(lambda: comp.publisher.last_error, "the first publish to fail")
            eng.run_pass()
            a = knot_alarm()
            assert a is not None and a.active and a.severity is Severity.MAJOR
            assert f"127.0.0.1:{port}" in a.text
            with KnotServer(tmp_path / "knot", port, secret=secret):
                put(rt, [overloaded()])  # a zone change: published again
                await until(lambda: comp.publisher.last_error == "" and
                            comp.publisher.last is not None, "a publish to succeed")
                eng.run_pass()
                a = knot_alarm()
                assert a is not None and not a.active
        finally:
            await rt.stop()
            rt.store.close()

    asyncio.run(go())
