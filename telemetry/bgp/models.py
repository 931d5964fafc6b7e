"""The ``bgp:`` config section (issue #3: the controller's ExaBGP speaker).

Rules:
- The peer list is the single source of truth: the ExaBGP config is generated
  from it and each peer maps to exactly one site (a site's routes update that
  site's ``ComputeMetrics``). A peer address or site listed twice is refused.
- ``codec`` selects the metadata encoding (``large-community`` default).
- ``period_s`` is the declared update period recorded for BGP-sourced metrics
  when the route does not carry one (metric id 17); BGP sends changes only, so
  BGP-sourced metrics go stale when the *session* goes down, not by timer.

Example::

  bgp:
    local_as: 65000
    router_id: 10.0.0.1
    listen: {address: 10.0.0.1, port: 179}
    peers:
      - {address: 10.0.0.2, peer_as: 65001, site: MEC-1}
      - {address: 10.0.0.3, peer_as: 65002, site: MEC-2}
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from controller.models.base import Model, Name
from telemetry.cats import CatsConfig


class BgpListen(Model):
    """Where ExaBGP accepts sessions: ``address`` (None = do not listen, only
    connect out), ``port`` (179)."""

    address: IPv4Address | IPv6Address | None = None
    port: int = Field(default=179, ge=1, le=65535)


class BgpPeer(Model):
    """One neighbour: ``address``, ``peer_as``, ``site`` (whose compute it advertises),
    ``passive`` (wait for the peer to connect), ``local_address`` (source address)."""

    address: IPv4Address | IPv6Address
    peer_as: int = Field(ge=1, le=4_294_967_295)
    site: Name
    passive: bool = False
    local_address: IPv4Address | IPv6Address | None = None


class BgpConfig(Model):
    """``bgp:`` section. Fields: ``local_as``, ``router_id``, ``listen``, ``peers``,
    ``codec``, ``period_s`` (s), ``hold_time`` (s), ``families``, ``exabgp`` (path to the
    binary; default: next to the running Python), ``flush_ms`` (store write
    coalescing window), ``batch`` (max records per store transaction), ``cats``
    (normalisation used for L0 carried in routes), ``restart_max_s`` (backoff cap)."""

    local_as: int = Field(ge=1, le=4_294_967_295)
    router_id: IPv4Address
    listen: BgpListen = Field(default_factory=BgpListen)
    peers: list[BgpPeer] = Field(default_factory=list)
    codec: str = "large-community"
    period_s: float = Field(default=30.0, gt=0)
    hold_time: int = Field(default=9, ge=3, le=65535)
    families: list[str] = Field(default_factory=lambda: ["ipv4 unicast", "ipv6 unicast"])
    exabgp: Path | None = None
    flush_ms: float = Field(default=50.0, ge=0)
    batch: int = Field(default=1000, ge=1)
    cats: CatsConfig = Field(default_factory=CatsConfig)
    restart_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        addrs = [str(p.address) for p in self.peers]
        dup = {a for a in addrs if addrs.count(a) > 1}
        if dup:
            raise ValueError(f"peer address listed twice: {', '.join(sorted(dup))}")
        sites = [p.site for p in self.peers]
        dup = {s for s in sites if sites.count(s) > 1}
        if dup:
            raise ValueError(f"site has two BGP peers: {', '.join(sorted(dup))}")
        allowed = {"ipv4 unicast", "ipv6 unicast"}
        bad = [f for f in self.families if f not in allowed]
        if bad:
            raise ValueError(f"unsupported families {bad} (allowed: {sorted(allowed)})")
        from telemetry.bgp.codec import CODECS

        if self.codec not in CODECS:
            raise ValueError(f"unknown codec {self.codec!r} (known: {', '.join(CODECS)})")
        return self

    def site_of(self, peer: str) -> str | None:
        for p in self.peers:
            if str(p.address) == peer:
                return p.site
        return None
