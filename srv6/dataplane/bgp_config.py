"""The BGP SR Policy peer a router node is bound to: its config model and the factory.

Rules:
- A node of the SR policy reconciler (``intents.nodes``) whose ``programmer`` is
  ``bgp-sr-policy`` carries a ``bgp:`` block validated by ``BgpPeerSpec``: bad input names
  the node and field (``intents.nodes.R9.bgp.peer_as``) and the file is refused.
- ``build_bgp`` makes the ``BgpSrPolicyProgrammer`` (imported only when a node uses it).

Example::

    intents:
      nodes:
        R9:
          programmer: bgp-sr-policy
          bgp:
            peer: 192.0.2.9          # the router's BGP address
            peer_as: 65000
            local_as: 65000          # iBGP when equal
            router_id: 192.0.2.1     # CPN's BGP identifier
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from pydantic import Field, field_validator

from controller.models.base import Model

from .programmer import PolicyProgrammer

MAX_U32 = 2**32 - 1
Family = Literal["ipv4", "ipv6"]
ALL_FAMILIES: tuple[Family, ...] = ("ipv4", "ipv6")


class BgpPeerSpec(Model):
    """A router taking SR policies over BGP SR Policy (SAFI 73).

    ``peer``: the router's BGP address; ``port`` (179); ``peer_as`` / ``local_as`` (equal =
    iBGP); ``router_id``: CPN's BGP Identifier; ``hold_time`` s (0 or ≥ 3);
    ``connect_retry`` s; ``families``: ``ipv4`` and/or ``ipv6`` (SR policy families
    announced); ``next_hop``: MP_REACH next hop (default: CPN's address on the session);
    ``netns``: connect from inside this namespace (labs); ``graceful_restart``: restart
    time in s announced with Graceful Restart (RFC 4724), so the router keeps CPN's
    policies across a controller restart (0 = off: they go when the session does).
    """

    peer: IPv4Address | IPv6Address
    port: int = Field(default=179, ge=1, le=65535)
    peer_as: int = Field(ge=1, le=MAX_U32)
    local_as: int = Field(ge=1, le=MAX_U32)
    router_id: IPv4Address
    hold_time: int = Field(default=90, ge=0, le=65535)
    connect_retry: float = Field(default=5.0, gt=0, le=3600)
    families: list[Family] = Field(default_factory=lambda: list(ALL_FAMILIES), min_length=1)
    next_hop: IPv4Address | IPv6Address | None = None
    netns: str | None = None
    graceful_restart: int = Field(default=120, ge=0, le=4095)

    @field_validator("hold_time")
    @classmethod
    def _hold(cls, v: int) -> int:
        if v in (1, 2):
            raise ValueError("hold time must be 0 (no keepalives) or at least 3 s (RFC 4271)")
        return v


def build_bgp(node: str, spec: BgpPeerSpec, connect_timeout: float = 10.0
              ) -> PolicyProgrammer:
    """The ``BgpSrPolicyProgrammer`` for ``node``; waits up to ``connect_timeout`` s for the
    session (the speaker keeps trying in the background after that)."""
    from .bgp_srpolicy import BgpPeer, BgpSrPolicyProgrammer

    peer = BgpPeer(address=str(spec.peer), peer_as=spec.peer_as, local_as=spec.local_as,
                   router_id=str(spec.router_id), port=spec.port, hold_time=spec.hold_time,
                   connect_retry=spec.connect_retry, families=tuple(spec.families),
                   netns=spec.netns, next_hop=str(spec.next_hop) if spec.next_hop else None,
                   graceful_restart=spec.graceful_restart)
    return BgpSrPolicyProgrammer(node, peer, connect_timeout=connect_timeout)
