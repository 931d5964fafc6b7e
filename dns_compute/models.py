"""The ``dns:`` config section and the values the zone builder works with.

Rules:
- Config models are strict pydantic (unknown keys are errors, see ``controller.models``).
- ``client_subnets`` maps client prefixes (as seen in ECS, RFC 7871, or as the query
  source address) to a topology node and/or region; the most specific prefix wins.
- ``anycast`` (global) or ``services.<name>.anycast`` answers the service's anycast
  address instead of a chosen instance: the network then does the choosing.
- A ``Placement`` (a scheduling decision that put a flow or job of a service at a site,
  from an origin) overrides the ranking for the client subnets whose ``node`` is the
  origin, and gets a name of its own (``dns_compute.ranking``, ``dns_compute.zone``).
- Record values are plain data (``RRset``) so the zone model stays pure and can be
  diffed, rendered to wire format and published.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from pydantic import Field, model_validator

from controller.models import Model


class ClientSubnet(Model):
    """One client prefix: ``prefix`` (CIDR), ``node`` (router/site name the clients sit
    behind), ``region`` (used when no node is given)."""

    prefix: IPv4Network | IPv6Network
    node: str | None = None
    region: str | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> ClientSubnet:
        if not self.node and not self.region:
            raise ValueError(f"client subnet {self.prefix} needs a node or a region")
        return self


class KnotTarget(Model):
    """``dns.knot``: the external primary fed by RFC 2136. ``server`` HOST:PORT,
    ``tsig_name``, ``tsig_secret`` (base64), ``tsig_algorithm``, ``timeout_s``,
    ``retries`` (attempts per change, with exponential backoff from ``backoff_s``)."""

    server: str = "127.0.0.1:53"
    tsig_name: str = "cpn-update"
    tsig_secret: str = Field(min_length=16)
    tsig_algorithm: str = "hmac-sha256"
    timeout_s: float = Field(default=2.0, gt=0)
    retries: int = Field(default=5, ge=1, le=20)
    backoff_s: float = Field(default=0.05, gt=0)


class ServiceDnsOptions(Model):
    """Per-service DNS options: ``anycast`` (answer the anycast address), ``ttl_s``."""

    anycast: bool | None = None
    ttl_s: int | None = Field(default=None, ge=0, le=86_400)


class DnsSection(Model):
    """``dns:`` — ``ttl_s`` for steered answers (default 5 s), ``static_ttl_s`` for the
    rest, ``listen`` (HOST:PORT; default: ``controller.dns``), ``udp_threads`` (UDP
    fast-path threads sharing the port with SO_REUSEPORT), ``udp_workers`` (extra UDP worker
    processes on the same port, one GIL each: answering scales over cores), ``client_subnets``,
    ``anycast`` (global default), ``services`` (per-service options), ``knot``
    (optional external primary), ``enabled``."""

    enabled: bool = True
    ttl_s: int = Field(default=5, ge=0, le=86_400)
    static_ttl_s: int = Field(default=60, ge=0, le=86_400)
    listen: str | None = None
    udp_threads: int = Field(default=1, ge=1, le=16)
    udp_workers: int = Field(default=0, ge=0, le=64)
    client_subnets: list[ClientSubnet] = Field(default_factory=list)
    anycast: bool = False
    services: dict[str, ServiceDnsOptions] = Field(default_factory=dict)
    knot: KnotTarget | None = None


@dataclass(frozen=True, slots=True)
class RRset:
    """Records of one (owner, type): ``name`` absolute, lower case, with trailing dot;
    ``rdtype`` mnemonic (``A``, ``SVCB`` …); ``ttl`` s; ``rdatas`` presentation texts."""

    name: str
    rdtype: str
    ttl: int
    rdatas: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Placement:
    """A placement DNS follows: ``subject_kind`` (``flow``/``job``) and ``subject``,
    ``service`` (name), ``origin`` (router/site the clients sit behind), ``site`` (where
    it was placed), ``decided_at`` (Unix time; the latest wins when two placements of a
    service share an origin)."""

    subject_kind: str
    subject: str
    service: str
    origin: str
    site: str
    decided_at: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.subject_kind}:{self.subject}"
