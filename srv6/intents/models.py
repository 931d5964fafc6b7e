"""SR policy intent status and the ``intents:`` config section (GBA-6.4.3c).

Rules:
- ``SrPolicyIntentStatus`` is written only by the reconciler (``srv6.intents.reconciler``),
  one per intent, keyed like the intent (``headend~color~endpoint``). Operators write the
  intent (spec); the status is what the network does with it (Kubernetes spec/status).
- ``state`` is one of:
  ``pending`` (accepted, not programmed yet), ``programmed`` (every route is in the
  devices and was read back), ``verified`` (a probe through the policy was captured at
  the egress carrying the computed segment list), ``degraded`` (the network still
  carries the previous path, or the backup, but not the wanted one: ``device`` and
  ``fix`` say why), ``failed`` (the network cannot satisfy the intent; ``constraint``
  names what failed and nothing of it is programmed).
- ``generation`` counts the distinct specs the reconciler has seen for the key (it grows
  when ``spec_digest``, a digest of the intent, changes); ``observed_generation`` is the
  generation the current state was computed for.
- The config section binds the topology (``controller.models`` routers, sites, links) to
  devices: which ``PolicyProgrammer`` owns each node, the interface of each link on each
  node, and what each endpoint decapsulates to (End.DX4 / End.DX6) and which prefixes
  (coloured, RFC 9256 §8.4 per-destination steering) it serves.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_network
from typing import Self

from pydantic import Field, field_validator, model_validator

from controller.models.base import Entity, Model, Name, register
from srv6.dataplane.bgp_config import BgpPeerSpec
from srv6.intents.ifpoll import IfStateDevice


class IntentState(StrEnum):
    PENDING = "pending"
    PROGRAMMED = "programmed"
    VERIFIED = "verified"
    DEGRADED = "degraded"
    FAILED = "failed"


class PathView(Model):
    """A computed path as the status shows it: ``hops`` (nodes), ``links`` (link keys),
    ``segments`` (SIDs in travel order), ``delay_ms``."""

    hops: list[str] = Field(default_factory=list)
    links: list[str] = Field(default_factory=list)
    segments: list[str] = Field(default_factory=list)
    delay_ms: float = 0.0


@register
class SrPolicyIntentStatus(Entity):
    """What the network does with an ``SrPolicyIntent`` (see the module rules).

    Fields: ``intent`` (key), ``state``, ``reason`` (for a person), ``constraint`` (the
    failed constraint, e.g. ``max_delay_ms``), ``device`` (the node that refused or is
    unreachable), ``fix``; ``active`` (the programmed candidate path) and ``backup`` (the
    pre-installed disjoint path, if any); ``prefixes`` steered into the policy;
    ``generation`` / ``observed_generation``; ``programmed_at``, ``verified_at``,
    ``changed_at`` (last state transition)."""

    KIND = "sr-policy-intent-status"
    intent: str
    state: IntentState = IntentState.PENDING
    reason: str = ""
    constraint: str | None = None
    device: str | None = None
    fix: str = ""
    active: PathView | None = None
    backup: PathView | None = None
    prefixes: list[str] = Field(default_factory=list)
    generation: int = 0
    observed_generation: int = 0
    spec_digest: str = ""
    programmed_at: datetime | None = None
    verified_at: datetime | None = None
    changed_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.intent


# ----------------------------------------------------------------------------- config


class NodeBinding(Model):
    """Who programs a node: ``programmer`` (``netlink`` in namespace ``netns`` or the
    controller's own; ``agent`` at ``url`` with the mTLS files; ``bgp-sr-policy``: a
    router taking SR policies over BGP from CPN, session in ``bgp``; ``memory`` for dry
    runs), ``devs`` (link key → this node's interface on that link)."""

    programmer: str = Field(default="netlink",
                            pattern="^(netlink|agent|bgp-sr-policy|memory)$")
    bgp: BgpPeerSpec | None = None
    netns: str | None = None
    url: str | None = None
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    devs: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _agent(self) -> Self:
        if self.programmer == "agent" and not (self.url and self.cert and self.key and
                                               self.ca):
            raise ValueError("programmer agent needs url, cert, key and ca")
        if (self.programmer == "bgp-sr-policy") != (self.bgp is not None):
            raise ValueError("programmer bgp-sr-policy goes with a bgp: block (peer, "
                             "peer_as, local_as, router_id) and the bgp: block with it")
        return self


class EndpointBinding(Model):
    """What an endpoint node decapsulates to: ``dev`` (toward the served network),
    ``nh4`` (End.DX4 next hop) and/or ``nh6`` (End.DX6), ``prefixes`` (prefix → colour:
    an intent ``(headend, colour, endpoint)`` steers at its headend every prefix of its
    endpoint with its colour)."""

    dev: str = Field(min_length=1, max_length=15)
    nh4: IPv4Address | None = None
    nh6: IPv6Address | None = None
    prefixes: dict[str, int] = Field(default_factory=dict)

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, v: dict[str, int]) -> dict[str, int]:
        out = {}
        for p, color in v.items():
            try:
                net = ip_network(p, strict=False)
            except ValueError as exc:
                raise ValueError(f"prefixes: {p!r} is not an IP prefix ({exc})") from None
            if not 1 <= color <= 2**32 - 1:
                raise ValueError(f"prefixes.{p}: colour {color} outside 1..4294967295")
            out[str(net)] = color
        return out

    @model_validator(mode="after")
    def _nh(self) -> Self:
        for p in self.prefixes:
            v4 = ip_network(p).version == 4
            if v4 and self.nh4 is None:
                raise ValueError(f"prefix {p} is IPv4: give nh4 (the End.DX4 next hop)")
            if not v4 and self.nh6 is None:
                raise ValueError(f"prefix {p} is IPv6: give nh6 (the End.DX6 next hop)")
        return self


class IntentsSection(Model):
    """``intents:`` config section (the SR policy reconciler).

    ``enabled``; ``nodes`` (node name → ``NodeBinding``); ``endpoints`` (node name →
    ``EndpointBinding``); ``segments`` (``strict``: one SID per hop, needs only
    neighbour reachability; ``minimal``: compressed over the IGP underlay);
    ``protect`` (pre-install a disjoint backup per intent when one exists);
    ``readback_s`` (period of the drift check); ``hysteresis_pct`` (delay or bandwidth
    changes smaller than this do not trigger a re-plan); ``verify`` (probe each new
    path with scapy when the headend and egress are namespaces); ``watch_links``
    (follow interface carrier on netlink nodes and write ``Link.state``); ``ifstate``
    (routers whose interface state is read over NETCONF, RFC 8343, every
    ``ifstate_s``: ``srv6.intents.ifpoll``); ``placement_color`` (colour of the intents
    that carry placements' network parts: ``scheduler.placement_intents``)."""

    enabled: bool = True
    nodes: dict[Name, NodeBinding] = Field(default_factory=dict)
    endpoints: dict[Name, EndpointBinding] = Field(default_factory=dict)
    segments: str = Field(default="strict", pattern="^(strict|minimal)$")
    protect: bool = True
    readback_s: float = Field(default=2.0, gt=0, le=3600)
    hysteresis_pct: float = Field(default=10.0, ge=0, le=100)
    verify: bool = True
    watch_links: bool = True
    ifstate: list[IfStateDevice] = Field(default_factory=list)
    ifstate_s: float = Field(default=1.0, gt=0, le=3600)
    placement_color: int = Field(default=300, ge=1, le=2**32 - 1)
