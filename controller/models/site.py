"""Sites, routers and interconnects (GBA-5.2).

Rules:
- A site is a hub, compute-centre, MEC or cloud; each has a region (used for
  client-to-site distance in DNS answers and placement).
- ``interconnects`` lists the kinds of network the site is attached to; the
  interconnect preference order comes from GBA-5.2: hubs prefer OTN > IP-private >
  Internet, every other site IP-private > OTN > Internet.
- Routers are the IP/SRv6 topology nodes (R1, R2 … of GBA-App.B). A router may
  belong to a site (its gateway) or stand alone in the transport network.
"""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from pydantic import Field

from controller.models.base import Entity, Name, register


class SiteKind(StrEnum):
    HUB = "hub"
    COMPUTE_CENTRE = "compute-centre"
    MEC = "mec"
    CLOUD = "cloud"


class InterconnectKind(StrEnum):
    IP_PRIVATE = "ip-private"
    OTN = "otn"
    INTERNET = "internet"


#: GBA-5.2 interconnect preference, best first.
HUB_PREFERENCE: tuple[InterconnectKind, ...] = (
    InterconnectKind.OTN,
    InterconnectKind.IP_PRIVATE,
    InterconnectKind.INTERNET,
)
SITE_PREFERENCE: tuple[InterconnectKind, ...] = (
    InterconnectKind.IP_PRIVATE,
    InterconnectKind.OTN,
    InterconnectKind.INTERNET,
)


def interconnect_preference(kind: SiteKind) -> tuple[InterconnectKind, ...]:
    """GBA-5.2: the order in which a site of ``kind`` prefers interconnects."""
    return HUB_PREFERENCE if kind is SiteKind.HUB else SITE_PREFERENCE


@register
class Site(Entity):
    """A compute site.

    Fields: ``name``; ``kind``; ``region`` (free text, e.g. ``gz-south``);
    ``interconnects`` (kinds of network attached); ``description``;
    ``energy_w`` / ``price_per_hour`` (site-level defaults, W and currency units per
    resource-hour, refined by the site agent); ``locator`` (the SRv6 locator of the
    site's gateway, RFC 8986, e.g. ``fc00:0:1::/48``, for topologies that model sites
    without routers); ``labels``.
    """

    KIND = "site"
    name: Name
    kind: SiteKind
    region: str = Field(min_length=1, max_length=64)
    interconnects: list[InterconnectKind] = Field(default_factory=list)
    description: str = ""
    energy_w: float | None = Field(default=None, ge=0)
    price_per_hour: float | None = Field(default=None, ge=0)
    locator: IPv6Network | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.name

    def preference(self) -> tuple[InterconnectKind, ...]:
        return interconnect_preference(self.kind)


@register
class Router(Entity):
    """An IP/SRv6 node.

    Fields: ``name``; ``site`` (the site it serves, if any); ``loopback`` (IPv6 or
    IPv4 router id); ``locator`` (SRv6 locator prefix, RFC 8986, e.g.
    ``fc00:0:1::/48``); ``region``.
    """

    KIND = "router"
    name: Name
    site: Name | None = None
    region: str = ""
    loopback: IPv4Address | IPv6Address | None = None
    locator: IPv6Network | None = None

    @property
    def key(self) -> str:
        return self.name
