"""A running controller slice for DNS tests and the bench: store + bus + DnsComponent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from controller.models import ComputeMetrics, Entity
from controller.runtime import Runtime, Settings
from dns_compute.component import DnsComponent
from labs.knot import free_port
from tests.dns_compute.topo import dns_section, entities


def put(rt: Runtime, objs: list[Entity] | list[ComputeMetrics], reason: str = "test") -> None:
    with rt.store.transaction("test", reason) as txn:
        for obj in objs:
            txn.put(obj)


@asynccontextmanager
async def running(tmp: Path, **dns_over: Any) -> AsyncIterator[tuple[Runtime, DnsComponent]]:
    """Runtime on ``tmp`` with the security-video state and the DNS component started."""
    port = free_port()
    rt = Runtime(None, Settings(dns=("127.0.0.1", port), state=tmp))
    put(rt, entities(), "topology")
    comp = DnsComponent(dns_section(**dns_over))
    await rt.start([comp])
    try:
        yield rt, comp
    finally:
        await rt.stop()
        rt.store.close()
