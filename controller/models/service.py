"""Services reachable by compute-aware routing (GBA-App.B, RFC 10053 instance affinity).

Rules:
- A service has a DNS-label name, one or more anycast addresses (the service
  identifier the network routes on) and compute/network requirements.
- ``instances`` are the service contact instances: where the service runs
  (site + unicast address).
- ``affinity``: ``sticky`` keeps an existing flow on its instance; ``migrate-on-overload``
  lets CPN move it when the instance overloads (the security-video case).
"""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Self

from pydantic import Field, model_validator

from controller.models.base import Entity, Model, Name, register


class AffinityMode(StrEnum):
    STICKY = "sticky"
    MIGRATE_ON_OVERLOAD = "migrate-on-overload"


class Requirements(Model):
    """What one instance of the service needs: ``cpu_cores``, ``gpu``, ``npu`` (devices),
    ``memory_gib``, ``max_latency_ms`` (end-to-end bound), ``bandwidth_mbps``."""

    cpu_cores: float = Field(default=0, ge=0)
    gpu: float = Field(default=0, ge=0)
    npu: float = Field(default=0, ge=0)
    memory_gib: float = Field(default=0, ge=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    bandwidth_mbps: float = Field(default=0, ge=0)


class ServiceContactInstance(Model):
    """Where the service runs: ``site``, ``address`` (unicast), ``port``, ``weight``."""

    site: Name
    address: IPv4Address | IPv6Address
    port: int | None = Field(default=None, ge=1, le=65535)
    weight: int = Field(default=1, ge=0, le=65535)


class Protocol(StrEnum):
    UDP = "udp"
    TCP = "tcp"
    QUIC = "quic"


@register
class Service(Entity):
    """A compute service. Fields: ``name``, ``anycast`` (addresses), ``port``,
    ``protocol``, ``requirements``, ``affinity``, ``instances``, ``description``."""

    KIND = "service"
    name: Name
    anycast: list[IPv4Address | IPv6Address] = Field(min_length=1)
    port: int = Field(default=443, ge=1, le=65535)
    protocol: Protocol = Protocol.UDP
    requirements: Requirements = Field(default_factory=Requirements)
    affinity: AffinityMode = AffinityMode.MIGRATE_ON_OVERLOAD
    instances: list[ServiceContactInstance] = Field(default_factory=list)
    description: str = ""

    @property
    def key(self) -> str:
        return self.name

    @model_validator(mode="after")
    def _unique_instances(self) -> Self:
        seen: set[str] = set()
        for inst in self.instances:
            ident = f"{inst.site}/{inst.address}"
            if ident in seen:
                raise ValueError(f"instance {ident} listed twice")
            seen.add(ident)
        return self
