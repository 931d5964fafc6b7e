"""SRv6 domain model: SR policies (RFC 9256), locators and SIDs (RFC 8986), intents,
constraints, slices (GBA-6.4.3f) and steering rules (GBA-6.4.3e, CATS C-TC).

Rules:
- ``SrPolicy`` is keyed by ``(headend, color, endpoint)`` (RFC 9256 §2.1). Its
  ``CandidatePath``s are unique by ``(protocol_origin, originator, discriminator)``
  (§2.6); the active one is the *valid* path ranked best by §2.9: highest preference,
  then highest protocol-origin, then lowest originator, then highest discriminator.
- A candidate path is valid when it is not marked invalid and holds at least one valid
  segment list with weight > 0 (§5.1).
- A ``Locator`` prefix length equals ``block_len + node_len`` and
  ``block + node + function + argument <= 128`` (RFC 8986 §3.1). SIDs are
  ``prefix | function << argument_len | argument``.
- Endpoint behaviours (End, End.X, End.DX4, End.DX6) are ``LocalSid``s bound on a node;
  headend behaviours (H.Encaps, H.Encaps.Red) are the ``encap`` of a policy (§5.1–5.2).
- Checks that need several objects (overlapping locators, SID outside its locator,
  policy to an unknown endpoint) live in ``check_*`` functions raising
  ``controller.errors.ValidationError`` naming the failed rule.
- Units are in field names: ``_ms``, ``_mbps``.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Self

from pydantic import Field, model_validator

from controller.errors import Issue, ValidationError
from controller.models.base import Entity, Model, Name, register

MAX_U32 = 2**32 - 1


class SidBehavior(StrEnum):
    """RFC 8986 §4 (endpoint) and §5 (headend) behaviours CPN programs."""

    END = "End"
    END_X = "End.X"
    END_DX4 = "End.DX4"
    END_DX6 = "End.DX6"
    H_ENCAPS = "H.Encaps"
    H_ENCAPS_RED = "H.Encaps.Red"

    @property
    def is_headend(self) -> bool:
        return self in (SidBehavior.H_ENCAPS, SidBehavior.H_ENCAPS_RED)


class ProtocolOrigin(IntEnum):
    """RFC 9256 §2.3 protocol-origin values (higher wins a preference tie)."""

    PCEP = 10
    BGP_SR_POLICY = 20
    CONFIG = 30


# --------------------------------------------------------------------------- locators


@register
class Locator(Entity):
    """An SRv6 locator (RFC 8986 §3.1).

    Fields: ``name``; ``node`` (router owning it); ``prefix`` (B:N, e.g.
    ``fc00:0:1::/48``); ``block_len``, ``node_len``, ``function_len``, ``argument_len``
    (bits).
    """

    KIND = "srv6-locator"
    name: Name
    node: Name
    prefix: IPv6Network
    block_len: int = Field(default=32, ge=1, le=128)
    node_len: int = Field(default=16, ge=0, le=128)
    function_len: int = Field(default=16, ge=1, le=128)
    argument_len: int = Field(default=0, ge=0, le=128)

    @property
    def key(self) -> str:
        return self.name

    @model_validator(mode="after")
    def _lengths(self) -> Self:
        if self.prefix.prefixlen != self.block_len + self.node_len:
            raise ValueError(
                f"locator {self.name}: prefix length /{self.prefix.prefixlen} must equal "
                f"block_len + node_len ({self.block_len} + {self.node_len}) (RFC 8986 §3.1)"
            )
        total = self.block_len + self.node_len + self.function_len + self.argument_len
        if total > 128:
            raise ValueError(
                f"locator {self.name}: block+node+function+argument = {total} bits > 128"
            )
        return self

    @property
    def max_function(self) -> int:
        return (1 << self.function_len) - 1

    def contains(self, sid: IPv6Address) -> bool:
        return sid in self.prefix

    def sid(self, function: int, argument: int = 0) -> IPv6Address:
        """The SID ``prefix | function | argument``; ranges are checked."""
        if not 0 <= function <= self.max_function:
            raise ValueError(
                f"function {function} outside 0..{self.max_function} of locator {self.name}"
            )
        if not 0 <= argument < (1 << self.argument_len):
            raise ValueError(f"argument {argument} does not fit {self.argument_len} bits")
        shift = 128 - self.prefix.prefixlen - self.function_len
        value = int(self.prefix.network_address) | (function << shift)
        value |= argument << (shift - self.argument_len)
        return IPv6Address(value)

    def function_of(self, sid: IPv6Address) -> int:
        if not self.contains(sid):
            raise ValueError(f"SID {sid} is outside locator {self.name} ({self.prefix})")
        shift = 128 - self.prefix.prefixlen - self.function_len
        return (int(sid) >> shift) & self.max_function


@register
class LocalSid(Entity):
    """An endpoint SID bound on ``node`` (RFC 8986 §4).

    Fields: ``sid``; ``behavior`` (End, End.X, End.DX4, End.DX6); ``node``; ``locator``
    (name); ``nexthop`` (End.X: IPv6 neighbour; End.DX4: IPv4; End.DX6: IPv6);
    ``interface`` (outgoing interface for End.X / End.DX*); ``link`` (End.X: the
    ``controller.models.Link`` key of the adjacency); ``owner`` (what asked for it).
    """

    KIND = "srv6-local-sid"
    sid: IPv6Address
    behavior: SidBehavior
    node: Name
    locator: Name
    nexthop: IPv4Address | IPv6Address | None = None
    interface: str | None = Field(default=None, max_length=15)
    link: str | None = None
    owner: str = ""

    @property
    def key(self) -> str:
        return str(self.sid)

    @model_validator(mode="after")
    def _args(self) -> Self:
        b = self.behavior
        if b.is_headend:
            raise ValueError(f"{b} is a headend behaviour, not a local SID; use SrPolicy.encap")
        if b is SidBehavior.END_X and self.nexthop is None:
            raise ValueError("End.X needs nexthop (the adjacency's IPv6 neighbour)")
        if b is SidBehavior.END_X and not isinstance(self.nexthop, IPv6Address):
            raise ValueError("End.X nexthop must be an IPv6 address")
        if b is SidBehavior.END_DX4 and not isinstance(self.nexthop, IPv4Address):
            raise ValueError("End.DX4 needs an IPv4 nexthop (RFC 8986 §4.6)")
        if b is SidBehavior.END_DX6 and not isinstance(self.nexthop, IPv6Address):
            raise ValueError("End.DX6 needs an IPv6 nexthop (RFC 8986 §4.5)")
        if b is SidBehavior.END and self.nexthop is not None:
            raise ValueError("End takes no nexthop")
        return self


@register
class SidAllocation(Entity):
    """Persisted allocator state for one locator: ``locator`` name and
    ``functions`` (function value -> owner). Written by ``srv6.sid``."""

    KIND = "srv6-sid-allocation"
    locator: Name
    functions: dict[int, str] = Field(default_factory=dict)
    #: functions released but not reusable until ``reuse_after`` allocations pass.
    released: list[int] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return self.locator


# ---------------------------------------------------------------------------- policies


class BindingSid(Model):
    """RFC 9256 §6: the SID that steers into the policy (``sid``) on the headend."""

    sid: IPv6Address


class SegmentList(Model):
    """RFC 9256 §5: ``sids`` (in order, first = first segment), ``weight`` (WECMP
    share, 0 = not used), ``hops`` (node names the path crosses, display only),
    ``links`` (link keys the path crosses, for disjointness and reservations),
    ``delay_ms`` (computed end-to-end delay), ``valid``."""

    sids: list[IPv6Address] = Field(min_length=1)
    weight: int = Field(default=1, ge=0, le=MAX_U32)
    hops: list[str] = Field(default_factory=list)
    links: list[str] = Field(default_factory=list)
    delay_ms: float | None = Field(default=None, ge=0)
    valid: bool = True


class Originator(Model):
    """RFC 9256 §2.4: ``asn`` and ``node`` address of whoever created the path."""

    asn: int = Field(default=0, ge=0, le=MAX_U32)
    node: IPv4Address | IPv6Address = IPv6Address("::")

    def rank(self) -> tuple[int, int, int]:
        return (self.asn, self.node.version, int(self.node))


class CandidatePath(Model):
    """RFC 9256 §2: ``preference``, ``protocol_origin``, ``originator``,
    ``discriminator``, ``name``, ``segment_lists``, ``invalid_reason`` (empty if valid
    as far as the controller knows)."""

    preference: int = Field(default=100, ge=0, le=MAX_U32)
    protocol_origin: ProtocolOrigin = ProtocolOrigin.PCEP
    originator: Originator = Field(default_factory=Originator)
    discriminator: int = Field(default=0, ge=0, le=MAX_U32)
    name: str = ""
    segment_lists: list[SegmentList] = Field(default_factory=list)
    invalid_reason: str = ""

    @property
    def ident(self) -> tuple[int, tuple[int, int, int], int]:
        return (int(self.protocol_origin), self.originator.rank(), self.discriminator)

    def is_valid(self) -> bool:
        """§5.1: usable iff not marked invalid and one valid list has weight > 0."""
        if self.invalid_reason:
            return False
        return any(sl.valid and sl.weight > 0 for sl in self.segment_lists)

    def rank(self) -> tuple[int, int, tuple[int, int, int], int]:
        """Sort key, larger = better (§2.9; a lower originator wins, hence negated)."""
        asn, ver, node = self.originator.rank()
        return (self.preference, int(self.protocol_origin), (-asn, -ver, -node),
                self.discriminator)


@register
class SrPolicy(Entity):
    """An SR policy (RFC 9256).

    Fields: ``headend`` and ``endpoint`` (router names), ``color`` (1..2^32-1),
    ``name``, ``encap`` (H.Encaps or H.Encaps.Red), ``binding_sid``,
    ``candidate_paths``, ``slice`` (name of the slice it serves, if any).
    """

    KIND = "sr-policy"
    headend: Name
    color: int = Field(ge=1, le=MAX_U32)
    endpoint: Name
    name: str = ""
    encap: SidBehavior = SidBehavior.H_ENCAPS
    binding_sid: BindingSid | None = None
    candidate_paths: list[CandidatePath] = Field(default_factory=list)
    slice: Name | None = None

    @property
    def key(self) -> str:
        return policy_key(self.headend, self.color, self.endpoint)

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.headend == self.endpoint:
            raise ValueError(f"policy headend and endpoint are both {self.headend!r}")
        if not self.encap.is_headend:
            raise ValueError(f"encap must be H.Encaps or H.Encaps.Red, not {self.encap}")
        seen: set[tuple[int, tuple[int, int, int], int]] = set()
        for i, cp in enumerate(self.candidate_paths):
            if cp.ident in seen:
                raise ValueError(
                    f"candidate_paths[{i}]: (protocol_origin, originator, discriminator) "
                    "repeats another candidate path (RFC 9256 §2.6)"
                )
            seen.add(cp.ident)
        return self

    def active_path(self) -> CandidatePath | None:
        """The valid candidate path ranked best (RFC 9256 §2.9), or None."""
        valid = [cp for cp in self.candidate_paths if cp.is_valid()]
        return max(valid, key=CandidatePath.rank) if valid else None

    def active_segment_lists(self) -> list[SegmentList]:
        cp = self.active_path()
        return [sl for sl in cp.segment_lists if sl.valid and sl.weight > 0] if cp else []


def policy_key(headend: str, color: int, endpoint: str) -> str:
    return f"{headend}~{color}~{endpoint}"


# ----------------------------------------------------------------- intents, constraints


class Constraints(Model):
    """What a computed path must satisfy.

    Fields: ``max_delay_ms``; ``min_bandwidth_mbps`` (available on every link);
    ``exclude_nodes``, ``exclude_links`` (link keys), ``exclude_srlgs``;
    ``include_any`` / ``include_all`` / ``exclude_any`` (affinity colours, RFC 9256
    §2.2 style); ``max_sid_depth`` (segments the headend can push); ``disjoint_from``
    (a policy key whose path links and SRLGs must not be shared); ``metric``
    (``igp`` or ``delay``: what the path minimises).
    """

    max_delay_ms: float | None = Field(default=None, gt=0)
    min_bandwidth_mbps: float = Field(default=0, ge=0)
    exclude_nodes: list[Name] = Field(default_factory=list)
    exclude_links: list[str] = Field(default_factory=list)
    exclude_srlgs: list[str] = Field(default_factory=list)
    include_any: list[str] = Field(default_factory=list)
    include_all: list[str] = Field(default_factory=list)
    exclude_any: list[str] = Field(default_factory=list)
    max_sid_depth: int = Field(default=10, ge=1, le=64)
    disjoint_from: str | None = None
    metric: str = Field(default="igp", pattern="^(igp|delay)$")


@register
class SrPolicyIntent(Entity):
    """What an operator (or the SD-WAN / slice renderer) asks for: ``headend``,
    ``endpoint``, ``color``, ``constraints``, ``name``, ``slice``, ``preference``."""

    KIND = "sr-policy-intent"
    headend: Name
    endpoint: Name
    color: int = Field(ge=1, le=MAX_U32)
    constraints: Constraints = Field(default_factory=Constraints)
    name: str = ""
    slice: Name | None = None
    preference: int = Field(default=100, ge=0, le=MAX_U32)

    @property
    def key(self) -> str:
        return policy_key(self.headend, self.color, self.endpoint)

    @model_validator(mode="after")
    def _ends(self) -> Self:
        if self.headend == self.endpoint:
            raise ValueError(f"intent headend and endpoint are both {self.headend!r}")
        return self


@register
class LinkAffinity(Entity):
    """Overlay TE attributes for a ``controller.models.Link`` (its ``link`` key):
    ``colors`` (affinity/admin-group names). Kept here so the controller's Link stays
    generic."""

    KIND = "srv6-link-affinity"
    link: str = Field(min_length=1)
    colors: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return self.link


# ------------------------------------------------------------------- slices, steering


class SliceFlow(Model):
    """One (``headend``, ``endpoint``) pair a slice connects."""

    headend: Name
    endpoint: Name


@register
class Slice(Entity):
    """A network slice (GBA-6.4.3f): ``name``, ``color`` (its policies' colour),
    ``guaranteed_mbps`` (per flow pair, on every link crossed), ``max_delay_ms``,
    ``ceil_mbps`` (may borrow up to; default = link capacity), ``flows``, ``dscp``."""

    KIND = "slice"
    name: Name
    color: int = Field(ge=1, le=MAX_U32)
    guaranteed_mbps: float = Field(gt=0)
    max_delay_ms: float | None = Field(default=None, gt=0)
    ceil_mbps: float | None = Field(default=None, gt=0)
    flows: list[SliceFlow] = Field(default_factory=list)
    dscp: int | None = Field(default=None, ge=0, le=63)

    @property
    def key(self) -> str:
        return self.name

    @model_validator(mode="after")
    def _ceil(self) -> Self:
        if self.ceil_mbps is not None and self.ceil_mbps < self.guaranteed_mbps:
            raise ValueError(
                f"slice {self.name}: ceil_mbps {self.ceil_mbps} < guaranteed_mbps "
                f"{self.guaranteed_mbps}"
            )
        return self


class HtbClass(Model):
    """A tc HTB class the dataplane applies on ``node``'s egress toward ``peer``
    (the link ``link``): ``classid`` (``1:NN``), ``rate_mbps`` (guaranteed),
    ``ceil_mbps``, ``slice``, ``color``, ``dscp`` (classifier hint), ``prio`` (HTB
    priority, 0 first: 0 for a slice with a delay bound, 1 for the other slices)."""

    node: Name
    peer: Name
    link: str
    classid: str = Field(pattern=r"^[0-9a-f]{1,4}:[0-9a-f]{1,4}$")
    rate_mbps: float = Field(gt=0)
    ceil_mbps: float = Field(gt=0)
    slice: Name
    color: int
    dscp: int | None = None
    prio: int = Field(default=1, ge=0, le=7)


class SteeringMatch(Model):
    """Classifier fields (all optional, all must match): ``src``/``dst`` (prefixes),
    ``protocol`` (udp/tcp/icmp…), ``src_ports``/``dst_ports`` (``"80"`` or
    ``"1000-2000"``), ``dscp``, ``app`` (application name, informative)."""

    src: str | None = None
    dst: str | None = None
    protocol: str | None = None
    src_ports: str | None = Field(default=None, pattern=r"^\d{1,5}(-\d{1,5})?$")
    dst_ports: str | None = Field(default=None, pattern=r"^\d{1,5}(-\d{1,5})?$")
    dscp: int | None = Field(default=None, ge=0, le=63)
    app: str | None = None


@register
class SteeringRule(Entity):
    """Steer traffic at ``headend`` matching ``match`` into the policy (``color``,
    ``endpoint``). ``name``; ``priority`` (lower first); ``fwmark`` (Linux ip rule
    mark, assigned by the renderer); ``source`` (what rendered it, e.g. ``sdwan:video``)."""

    KIND = "srv6-steering-rule"
    name: Name
    headend: Name
    match: SteeringMatch
    color: int = Field(ge=1, le=MAX_U32)
    endpoint: Name
    priority: int = Field(default=1000, ge=0, le=32767)
    fwmark: int | None = Field(default=None, ge=1, le=MAX_U32)
    source: str = ""

    @property
    def key(self) -> str:
        return f"{self.headend}~{self.name}"

    @property
    def policy(self) -> str:
        return policy_key(self.headend, self.color, self.endpoint)


# ------------------------------------------------------------------------ path result


class PathResult(Model):
    """What path computation returns. ``ok``; ``hops`` (node names);
    ``links`` (link keys); ``delay_ms``; ``igp_metric``; ``min_available_mbps``;
    ``segment_list`` (minimal, for the headend); ``failed_constraint`` (the constraint
    name, e.g. ``max_delay_ms``, when not ok); ``reason`` (why, in words)."""

    ok: bool
    headend: str
    endpoint: str
    hops: list[str] = Field(default_factory=list)
    links: list[str] = Field(default_factory=list)
    delay_ms: float = 0.0
    igp_metric: int = 0
    min_available_mbps: float | None = None
    segment_list: SegmentList | None = None
    segment_hops: list[str] = Field(default_factory=list)
    failed_constraint: str | None = None
    reason: str = ""


# ---------------------------------------------------------------- cross-object checks


def check_locators(locators: list[Locator]) -> None:
    """Refuse overlapping locator prefixes (RFC 8986 §3.1: a locator is routable to
    exactly one node)."""
    issues: list[Issue] = []
    ordered = sorted(locators, key=lambda loc: (int(loc.prefix.network_address),
                                                loc.prefix.prefixlen))
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if int(b.prefix.network_address) > int(a.prefix.broadcast_address):
                break
            if a.prefix.overlaps(b.prefix):
                issues.append(Issue(
                    f"locators.{b.name}",
                    f"prefix {b.prefix} overlaps locator {a.name} ({a.prefix})",
                    "give every locator a disjoint prefix",
                ))
    if issues:
        raise ValidationError(issues, source="locator overlap")


def check_local_sid(sid: LocalSid, locators: dict[str, Locator]) -> None:
    """The SID must lie inside its locator, which must belong to the same node."""
    loc = locators.get(sid.locator)
    if loc is None:
        raise ValidationError.single(
            f"local_sids.{sid.sid}.locator", f"unknown locator {sid.locator!r}",
            "define the locator first")
    if not loc.contains(sid.sid):
        raise ValidationError.single(
            f"local_sids.{sid.sid}.sid",
            f"SID {sid.sid} is outside its locator {loc.name} ({loc.prefix})",
            f"allocate the SID from {loc.prefix}")
    if loc.node != sid.node:
        raise ValidationError.single(
            f"local_sids.{sid.sid}.node",
            f"locator {loc.name} belongs to {loc.node}, not {sid.node}")


def check_policy_nodes(headend: str, endpoint: str, nodes: set[str], what: str) -> None:
    """A policy or intent must start and end on known topology nodes."""
    issues = [
        Issue(f"{what}.{field}", f"unknown {field} {name!r} (not a router or site)",
              "use a node from the topology")
        for field, name in (("headend", headend), ("endpoint", endpoint))
        if name not in nodes
    ]
    if issues:
        raise ValidationError(issues, source="policy endpoints")
