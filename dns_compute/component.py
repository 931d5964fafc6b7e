"""The DNS component: wires store events → ``ZoneKeeper`` → responder, server, publisher.

Rules:
- Config: ``dns:`` section (``DnsSection``); listen address = ``dns.listen`` or the
  controller's ``controller.dns`` setting; zone = ``zone:``.
- Every ``StateChanged`` touching a relevant kind marks the zone dirty; one rebuild is
  scheduled per loop turn (bursts of metric updates coalesce into one new version).
- When ``dns.knot`` is set, a ``KnotPublisher`` follows every zone version (RFC 2136);
  in a cluster only the leader publishes (``rt.when_leading``), every replica answers.
- ``ChangeFeed`` fans zone versions out to REST subscribers (SSE / long-poll).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from controller.errors import ConnectionError, Issue, ValidationError
from controller.events import StateChanged
from controller.logs import key_event
from dns_compute.feed import ChangeFeed
from dns_compute.keeper import RELEVANT, ZoneKeeper
from dns_compute.models import DnsSection
from dns_compute.server import DnsServer

if TYPE_CHECKING:
    from controller.runtime import Runtime
    from dns_compute.publisher import KnotPublisher

log = logging.getLogger("cpn.dns")


def dns_section(rt: Runtime) -> DnsSection:
    sec = rt.cfg.sections.get("dns") if rt.cfg is not None else None
    return sec if isinstance(sec, DnsSection) else DnsSection()


def split_hostport(value: str, default_port: int = 53) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host.strip("[]"), int(port)


def _ns_address(host: str) -> str:
    """The address for ``ns.<zone>``: the listen address unless it is a wildcard/name."""
    try:
        addr = ip_address(host)
    except ValueError:
        return "127.0.0.1"
    return "127.0.0.1" if addr.is_unspecified else str(addr)


def check_subnets(sec: DnsSection, keeper: ZoneKeeper) -> None:
    """Every ``dns.client_subnets[i].node`` must name a router or site, and every
    region a region some site or router has (else clients would silently get the
    default answer)."""
    nodes = set(keeper.state["router"]) | set(keeper.state["site"])
    regions = {getattr(o, "region", "") for kind in ("router", "site")
               for o in keeper.state[kind].values()}
    issues = []
    for i, sub in enumerate(sec.client_subnets):
        if sub.node and sub.node not in nodes:
            issues.append(Issue(f"dns.client_subnets[{i}].node",
                                f"{sub.node!r} is not a router or site",
                                f"one of {', '.join(sorted(nodes)) or '(none defined)'}"))
        if sub.region and sub.region not in regions:
            issues.append(Issue(f"dns.client_subnets[{i}].region",
                                f"no site or router is in region {sub.region!r}",
                                f"one of {', '.join(sorted(r for r in regions if r))}"))
    if issues:
        raise ValidationError(issues, "dns")


class DnsComponent:
    """Runs the compute zone, the embedded responder and (optionally) the publisher."""

    name = "dns"

    def __init__(self, section: DnsSection | None = None) -> None:
        self.section = section
        self.keeper: ZoneKeeper | None = None
        self.server: DnsServer | None = None
        self.publisher: KnotPublisher | None = None
        self.feed = ChangeFeed()
        self._unsub: Any = None
        self._scheduled = False
        self._collector: Any = None
        self._registry: Any = None
        self._knot: Any = None

    async def start(self, rt: Runtime) -> None:
        sec = self.section or dns_section(rt)
        host, port = split_hostport(sec.listen) if sec.listen else rt.settings.dns
        rt.settings.extra["dns_compute"] = self
        if self._collector is None:
            from dns_compute.metrics import DnsCollector

            self._collector = DnsCollector(lambda: self)
            rt.metrics.register(self._collector)
            self._registry = rt.metrics
        self.keeper = ZoneKeeper(rt.zone, sec, ns_address=_ns_address(host))
        for cls in RELEVANT:
            self.keeper.load(rt.store.list(cls))
        check_subnets(sec, self.keeper)
        self.keeper.listeners.append(self.feed.publish)
        if sec.knot is not None:
            from dns_compute.publisher import KnotPublisher
            self.publisher = KnotPublisher.from_config(rt.zone, sec.knot)
            if rt.leadership.elected:  # a cluster: only the leader writes to Knot (#16)
                self._knot = sec.knot
                rt.when_leading("dns-knot", self._start_publishing, self._stop_publishing)
            else:
                self.keeper.listeners.append(self.publisher.follow)
                await self.publisher.start()
            rt.alarm_sources["knot"] = self._publish_alarms
        self.keeper.rebuild()
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        if sec.enabled:
            self.server = DnsServer(self.keeper.responder, host, port, sec.udp_threads,
                                    sec.udp_workers)
            try:
                await self.server.start()
            except OSError as exc:
                await self.server.stop()
                raise ConnectionError(f"DNS responder cannot listen on {host}:{port}: "
                                      f"{exc.strerror or exc}; set dns.listen or "
                                      "controller.dns to a free HOST:PORT") from exc
            key_event(log, "dns responder listening", zone=rt.zone, host=host,
                      port=self.server.port, udp_threads=sec.udp_threads,
                      udp_workers=sec.udp_workers)

    def health(self) -> list[str]:
        """Problems for ``/healthz`` (degraded while any): Knot refusing our updates."""
        pub = self.publisher
        if pub is not None and pub.last_error:
            return [f"publishing the compute zone to {pub.where} fails: {pub.last_error}"]
        return []

    def _publish_alarms(self) -> list[Any]:
        """GBA-6.7: Knot publishing failing is an alarm until a publish succeeds."""
        from controller.ops.engine import Condition
        from controller.ops.models import Severity

        pub = self.publisher
        if pub is None or not pub.last_error:
            return []
        return [Condition("knot-publish-failed", pub.where, Severity.MAJOR,
                          f"publishing the compute zone to {pub.where} fails: "
                          f"{pub.last_error}")]

    async def _start_publishing(self) -> None:
        """Leader elected: follow the zone into Knot again, starting with the current
        version (a no-op diff when Knot already has it: nothing torn down)."""
        from dns_compute.publisher import KnotPublisher

        assert self.keeper is not None and self._knot is not None
        self.publisher = KnotPublisher.from_config(self.keeper.origin, self._knot)
        self.keeper.listeners.append(self.publisher.follow)
        await self.publisher.start()
        if self.keeper.current is not None:
            self.publisher.follow(self.keeper.current)

    async def _stop_publishing(self) -> None:
        if self.keeper is not None and self.publisher is not None:
            with contextlib.suppress(ValueError):
                self.keeper.listeners.remove(self.publisher.follow)
            await self.publisher.stop()

    def _on_change(self, event: StateChanged) -> None:
        assert self.keeper is not None
        if self.keeper.apply(event.changes) and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._rebuild)

    def _rebuild(self) -> None:
        self._scheduled = False
        assert self.keeper is not None
        try:
            self.keeper.rebuild()
        except Exception:
            log.exception("zone rebuild failed; previous zone kept")

    async def stop(self) -> None:
        if self._unsub is not None:
            self._unsub()
        if self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None
        if self.server is not None:
            await self.server.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        self.feed.close()
