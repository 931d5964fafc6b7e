"""Which ``PolicyProgrammer`` owns each node: the ``dataplane`` config section and the
factory that builds the programmers from it.

Rules:
- One entry per node under ``dataplane.nodes``, chosen by ``programmer:``
  (``netlink`` — a Linux node CPN reaches by netlink, optionally in a namespace;
  ``node-agent`` — a Linux node running ``cpn node-agent``; ``bgp-sr-policy`` — a router
  that takes SR policies over BGP, RFC 9830). Validated on load: bad input names the
  node and the field (``dataplane.nodes.R9.peer_as``) and the file is refused.
- ``build`` imports a backend only when a node uses it (cheap config loading).

Example::

    dataplane:
      nodes:
        R1: {programmer: netlink, netns: r1}
        R9:
          programmer: bgp-sr-policy
          peer: 192.0.2.9          # the router's BGP address
          peer_as: 65000
          local_as: 65000          # iBGP when equal
          router_id: 192.0.2.1     # CPN's BGP identifier
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from controller.models.base import Model

from .programmer import PolicyProgrammer

MAX_U32 = 2**32 - 1
Family = Literal["ipv4", "ipv6"]
ALL_FAMILIES: tuple[Family, ...] = ("ipv4", "ipv6")


class NetlinkNode(Model):
    """A Linux node programmed over netlink (``netns``: its namespace, ``None`` = this one)."""

    programmer: Literal["netlink"]
    netns: str | None = None


class NodeAgentNode(Model):
    """A Linux node running ``cpn node-agent`` at ``address`` (HOST:PORT), mutual TLS with
    ``cert``/``key`` (CPN's client pair) and ``ca`` (signs the agent)."""

    programmer: Literal["node-agent"]
    address: str = Field(pattern=r"^[^:\s]+:\d{1,5}$")
    cert: Path
    key: Path
    ca: Path
    netns: str | None = None


class BgpSrPolicyNode(Model):
    """A router taking SR policies over BGP SR Policy (SAFI 73).

    ``peer``: the router's BGP address; ``port`` (179); ``peer_as`` / ``local_as`` (equal =
    iBGP); ``router_id``: CPN's BGP Identifier; ``hold_time`` s (0 or ≥ 3);
    ``connect_retry`` s; ``families``: ``ipv4`` and/or ``ipv6`` (SR policy families
    announced); ``next_hop``: MP_REACH next hop (default: CPN's address on the session);
    ``netns``: connect from inside this namespace (labs).
    """

    programmer: Literal["bgp-sr-policy"]
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

    @field_validator("hold_time")
    @classmethod
    def _hold(cls, v: int) -> int:
        if v in (1, 2):
            raise ValueError("hold time must be 0 (no keepalives) or at least 3 s (RFC 4271)")
        return v


NodeProgrammer = Annotated[NetlinkNode | NodeAgentNode | BgpSrPolicyNode,
                           Field(discriminator="programmer")]


class DataplaneSection(Model):
    """``dataplane:`` — ``nodes``: node name → its programmer."""

    nodes: dict[str, NodeProgrammer] = Field(default_factory=dict)


def build(node: str, spec: NetlinkNode | NodeAgentNode | BgpSrPolicyNode,
          connect_timeout: float = 10.0) -> PolicyProgrammer:
    """The programmer for ``node`` as ``spec`` says."""
    if isinstance(spec, NetlinkNode):
        from .netlink import NetlinkProgrammer

        return NetlinkProgrammer(node, netns=spec.netns)
    if isinstance(spec, NodeAgentNode):
        from .agent import AgentProgrammer

        return AgentProgrammer(node, spec.address, spec.cert, spec.key, spec.ca,
                               netns=spec.netns)
    from .bgp_srpolicy import BgpPeer, BgpSrPolicyProgrammer

    peer = BgpPeer(address=str(spec.peer), peer_as=spec.peer_as, local_as=spec.local_as,
                   router_id=str(spec.router_id), port=spec.port, hold_time=spec.hold_time,
                   connect_retry=spec.connect_retry, families=tuple(spec.families),
                   netns=spec.netns, next_hop=str(spec.next_hop) if spec.next_hop else None)
    return BgpSrPolicyProgrammer(node, peer, connect_timeout=connect_timeout)


def build_all(section: DataplaneSection, connect_timeout: float = 10.0
              ) -> dict[str, PolicyProgrammer]:
    """Programmers for every node of ``section`` (closed again if one cannot be built)."""
    out: dict[str, PolicyProgrammer] = {}
    try:
        for node, spec in section.nodes.items():
            out[node] = build(node, spec, connect_timeout)
    except BaseException:
        for prog in out.values():
            prog.close()
        raise
    return out
