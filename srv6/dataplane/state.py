"""Kernel-level SRv6 state: the routes one Linux node must hold, and how to get there.

Rules:
- Pure data and pure planning: no I/O. Backends (netlink, node agent, memory) turn
  ``RouteOp``s into kernel calls.
- Segment lists are always in *travel order* (first segment visited first), as in RFC
  9256 and ``ip route … segs``; the SRH wire order (RFC 8754: Segment List[0] = last
  segment) is the backends' business.
- A route is identified by ``key`` = (kind, table, prefix): the kernel holds at most one
  route per key that CPN owns, so a changed route is a single atomic *replace*
  (``RTM_NEWROUTE`` + ``NLM_F_REPLACE``), never delete + add (GBA-6.4.3c, MBB).
- Plans apply in make-before-break order: SIDs (seg6local) before steering (seg6) on
  add, steering before SIDs on delete, so no packet is steered into a missing SID.
- Only CPN-owned routes (marked with ``RTPROT_CPN`` by the backends) are ever read,
  changed or deleted; routes of other origins are left alone.
- Routers that take SR policies rather than kernel routes (BGP SR Policy, RFC 9830)
  hold ``SrPolicyRoute``s: one per (distinguisher, colour, endpoint), the NLRI's key.
  Kernel backends refuse them; the BGP backend refuses kernel routes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from controller.errors import Issue, ValidationError

#: rtm_protocol value marking routes CPN installed (free range, see /etc/iproute2/rt_protos)
RTPROT_CPN = 200
#: rtm_protocol of a CPN *backup* steering route: the same prefix one metric above the
#: primary, used by the kernel when every nexthop of the primary is link-down
#: (``ignore_routes_with_linkdown``) — protection without waiting for the controller.
RTPROT_CPN_BACKUP = 201

Seg6Mode = Literal["encap", "inline"]
Seg6LocalAction = Literal["End", "End.X", "End.DX4", "End.DX6"]
OpKind = Literal["add", "replace", "delete"]

_ACTION_NH: dict[str, str | None] = {"End": None, "End.X": "nh6", "End.DX4": "nh4",
                                     "End.DX6": "nh6"}


def _prefix(value: str, where: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise ValidationError.single(where, f"{value!r} is not an IP prefix: {exc}") from None


def _addr6(value: str, where: str) -> str:
    try:
        return str(ipaddress.IPv6Address(value))
    except ValueError:
        raise ValidationError.single(where, f"{value!r} is not an IPv6 address",
                                     "SIDs and nh6 are IPv6 addresses") from None


@dataclass(frozen=True, slots=True)
class Seg6Route:
    """Headend steering route (H.Encaps / H.Insert, RFC 8986 §5).

    ``dst``: IPv4/IPv6 prefix steered; ``segments``: SIDs in travel order; ``mode``:
    ``encap`` (outer IPv6 + SRH) or ``inline`` (SRH inserted, IPv6 only); ``dev``:
    output interface; ``table``: routing table id; ``metric``: route priority (kernel
    default 0 for IPv4, 1024 for IPv6 when ``None``); ``backup``: a pre-installed
    protection route for the same prefix (kept apart by its own key and, in the
    kernel, by ``RTPROT_CPN_BACKUP``; give it a metric above the primary's).
    """

    dst: str
    segments: tuple[str, ...]
    dev: str
    mode: Seg6Mode = "encap"
    table: int = 254
    metric: int | None = None
    backup: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dst", _prefix(self.dst, "seg6.dst"))
        segs = tuple(_addr6(s, f"seg6[{self.dst}].segments[{i}]")
                     for i, s in enumerate(self.segments))
        if not segs:
            raise ValidationError.single(f"seg6[{self.dst}].segments", "empty segment list")
        object.__setattr__(self, "segments", segs)
        if self.mode not in ("encap", "inline"):
            raise ValidationError.single(f"seg6[{self.dst}].mode", f"unknown mode {self.mode!r}")
        v4 = ipaddress.ip_network(self.dst).version == 4
        if self.mode == "inline" and v4:
            raise ValidationError.single(f"seg6[{self.dst}].mode",
                                         "inline (SRH insertion) needs an IPv6 prefix",
                                         "use mode encap for IPv4")
        if self.metric is None:
            object.__setattr__(self, "metric", 0 if v4 else 1024)

    @property
    def family(self) -> int:
        return 4 if ipaddress.ip_network(self.dst).version == 4 else 6

    @property
    def key(self) -> tuple[str, int, str]:
        return ("seg6-backup" if self.backup else "seg6", self.table, self.dst)

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": "seg6", "dst": self.dst, "segments": list(self.segments),
               "dev": self.dev, "mode": self.mode, "table": self.table, "metric": self.metric}
        if self.backup:
            out["backup"] = True
        return out


@dataclass(frozen=True, slots=True)
class Seg6LocalRoute:
    """A local SID on a transit or egress node (RFC 8986 §4).

    ``sid``: the IPv6 SID (installed as /128); ``action``: End, End.X (``nh6``),
    End.DX4 (``nh4``) or End.DX6 (``nh6``) — End.DT* need a VRF device, which the lab
    kernel lacks (LAB-NOTES); ``dev``: interface; ``table``/``metric`` as for routes.
    """

    sid: str
    action: Seg6LocalAction
    dev: str
    nh4: str | None = None
    nh6: str | None = None
    table: int = 254
    metric: int = 1024

    def __post_init__(self) -> None:
        object.__setattr__(self, "sid", _addr6(self.sid.split("/")[0], "seg6local.sid"))
        where = f"seg6local[{self.sid}]"
        if self.action not in _ACTION_NH:
            raise ValidationError.single(f"{where}.action", f"unsupported action {self.action!r}",
                                         "one of End, End.X, End.DX4, End.DX6")
        need = _ACTION_NH[self.action]
        issues = []
        if need == "nh4":
            try:
                object.__setattr__(self, "nh4", str(ipaddress.IPv4Address(self.nh4 or "")))
            except ValueError:
                issues.append(Issue(f"{where}.nh4", f"{self.action} needs an IPv4 nh4"))
        elif self.nh4 is not None:
            issues.append(Issue(f"{where}.nh4", f"{self.action} takes no nh4"))
        if need == "nh6":
            object.__setattr__(self, "nh6", _addr6(self.nh6 or "", f"{where}.nh6"))
        elif self.nh6 is not None:
            issues.append(Issue(f"{where}.nh6", f"{self.action} takes no nh6"))
        if issues:
            raise ValidationError(issues)

    @property
    def key(self) -> tuple[str, int, str]:
        return ("seg6local", self.table, f"{self.sid}/128")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "seg6local", "sid": self.sid, "action": self.action, "dev": self.dev,
                "nh4": self.nh4, "nh6": self.nh6, "table": self.table, "metric": self.metric}


#: IANA "SRv6 Endpoint Behaviors" code points (RFC 8986 §10.2) for the behaviours an SR
#: policy's segments may name (RFC 9830 §2.4.4.2.4).
SRV6_BEHAVIORS: dict[str, int] = {
    "End": 1, "End.PSP": 2, "End.X": 5, "End.T": 9, "End.B6.Encaps": 14, "End.BM": 15,
    "End.DX6": 16, "End.DX4": 17, "End.DT6": 18, "End.DT4": 19, "End.DT46": 20,
    "End.DX2": 21, "End.B6.Encaps.Red": 27,
}


@dataclass(frozen=True, slots=True)
class SrSegment:
    """One SRv6 segment of an SR policy (RFC 9830 segment type B).

    ``sid``: the SRv6 SID; ``behavior``: its endpoint behaviour on the node that owns it
    (a key of ``SRV6_BEHAVIORS``, ``None`` = not signalled); ``structure``: the SID's
    (locator block, locator node, function, argument) lengths in bits (RFC 8986 §3.1),
    ``None`` = not signalled. A structure needs a behaviour (they travel together).
    """

    sid: str
    behavior: str | None = None
    structure: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sid", _addr6(self.sid, "segment.sid"))
        where = f"segment[{self.sid}]"
        if self.behavior is not None and self.behavior not in SRV6_BEHAVIORS:
            raise ValidationError.single(f"{where}.behavior",
                                         f"unknown SRv6 behaviour {self.behavior!r}",
                                         "one of " + ", ".join(SRV6_BEHAVIORS))
        if self.structure is not None:
            st = tuple(int(x) for x in self.structure)
            if self.behavior is None:
                raise ValidationError.single(f"{where}.structure",
                                             "a SID structure is signalled with a behaviour",
                                             "give the behaviour too, or drop the structure")
            if len(st) != 4 or any(not 0 <= x <= 128 for x in st) or sum(st) > 128:
                raise ValidationError.single(f"{where}.structure",
                                             f"{self.structure!r} is not four bit lengths "
                                             "summing to at most 128",
                                             "(block, node, function, argument), e.g. "
                                             "(32, 16, 16, 0)")
            object.__setattr__(self, "structure", None if st == (0, 0, 0, 0) else st)

    def to_dict(self) -> dict[str, Any]:
        return {"sid": self.sid, "behavior": self.behavior,
                "structure": list(self.structure) if self.structure else None}


@dataclass(frozen=True, slots=True)
class SrSegmentList:
    """A segment list of a candidate path: ``segments`` in travel order, ``weight`` for
    weighted ECMP between the lists of one path (RFC 9256 §2.11)."""

    segments: tuple[SrSegment, ...]
    weight: int = 1

    def __post_init__(self) -> None:
        segs = tuple(s if isinstance(s, SrSegment) else SrSegment(str(s))
                     for s in self.segments)
        if not segs:
            raise ValidationError.single("segment_list.segments", "empty segment list")
        if not 0 <= self.weight <= 0xFFFFFFFF:
            raise ValidationError.single("segment_list.weight",
                                         f"weight {self.weight} outside 0..4294967295")
        object.__setattr__(self, "segments", segs)

    @property
    def sids(self) -> tuple[str, ...]:
        return tuple(s.sid for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {"weight": self.weight, "segments": [s.to_dict() for s in self.segments]}


@dataclass(frozen=True, slots=True)
class SrPolicyRoute:
    """An SR policy candidate path as a router takes it over BGP (RFC 9830, RFC 9256).

    ``color`` and ``endpoint`` (IPv4/IPv6 address of the tail end; ``0.0.0.0``/``::``
    is the null endpoint for colour-only steering, RFC 9256 §8.8) name the policy;
    ``distinguisher`` keeps several candidate paths of one originator apart (it is part
    of the NLRI, so part of ``key``); ``segment_lists`` (at least one); ``preference``
    of the candidate path; ``priority`` of re-computation (0 = first, ``None`` = not
    signalled); ``binding_sid`` (SRv6 BSID or ``None``); ``name`` (policy name) and
    ``path_name`` (candidate path name).
    """

    color: int
    endpoint: str
    segment_lists: tuple[SrSegmentList, ...]
    distinguisher: int = 0
    preference: int = 100
    priority: int | None = None
    binding_sid: str | None = None
    name: str = ""
    path_name: str = ""

    def __post_init__(self) -> None:
        where = f"sr_policy[{self.color}/{self.endpoint}]"
        issues = []
        try:
            object.__setattr__(self, "endpoint", str(ipaddress.ip_address(self.endpoint)))
        except ValueError:
            issues.append(Issue(f"{where}.endpoint", f"{self.endpoint!r} is not an IP address",
                                "the tail end's IPv4/IPv6 address (:: for colour-only)"))
        for fld, hi in (("color", 0xFFFFFFFF), ("distinguisher", 0xFFFFFFFF),
                        ("preference", 0xFFFFFFFF)):
            v = getattr(self, fld)
            if not isinstance(v, int) or not 0 <= v <= hi:
                issues.append(Issue(f"{where}.{fld}", f"{v!r} is not an integer 0..{hi}"))
        if self.priority is not None and not 0 <= self.priority <= 255:
            issues.append(Issue(f"{where}.priority", f"{self.priority} outside 0..255"))
        if not self.segment_lists:
            issues.append(Issue(f"{where}.segment_lists", "no segment list",
                                "give at least one segment list"))
        for fld in ("name", "path_name"):
            if len(getattr(self, fld).encode()) > 255:
                issues.append(Issue(f"{where}.{fld}", "longer than 255 bytes"))
        if issues:
            raise ValidationError(issues)
        if self.binding_sid is not None:
            object.__setattr__(self, "binding_sid", _addr6(self.binding_sid,
                                                           f"{where}.binding_sid"))
        object.__setattr__(self, "segment_lists", tuple(self.segment_lists))

    @classmethod
    def of(cls, color: int, endpoint: str, sids: Iterable[str], **kw: Any) -> SrPolicyRoute:
        """A policy with one segment list of plain SIDs (weight 1)."""
        return cls(color, endpoint, (SrSegmentList(tuple(SrSegment(s) for s in sids)),), **kw)

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.endpoint).version

    @property
    def key(self) -> tuple[str, int, str]:
        return ("srpolicy", self.color, f"{self.endpoint}#{self.distinguisher}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "srpolicy", "color": self.color, "endpoint": self.endpoint,
                "distinguisher": self.distinguisher, "preference": self.preference,
                "priority": self.priority, "binding_sid": self.binding_sid,
                "name": self.name, "path_name": self.path_name,
                "segment_lists": [sl.to_dict() for sl in self.segment_lists]}


Route = Seg6Route | Seg6LocalRoute | SrPolicyRoute
RouteKey = tuple[str, int, str]


def _policy_from_dict(d: Mapping[str, Any]) -> SrPolicyRoute:
    lists = tuple(
        SrSegmentList(tuple(SrSegment(s["sid"], s.get("behavior"),
                                      tuple(s["structure"]) if s.get("structure") else None)
                            for s in sl["segments"]), int(sl.get("weight", 1)))
        for sl in d["segment_lists"])
    return SrPolicyRoute(color=int(d["color"]), endpoint=d["endpoint"], segment_lists=lists,
                         distinguisher=int(d.get("distinguisher", 0)),
                         preference=int(d.get("preference", 100)), priority=d.get("priority"),
                         binding_sid=d.get("binding_sid"), name=d.get("name", ""),
                         path_name=d.get("path_name", ""))


def route_from_dict(d: Mapping[str, Any]) -> Route:
    """Inverse of ``to_dict`` (the node-agent wire format); bad input → ValidationError."""
    kind = d.get("kind")
    try:
        if kind == "seg6":
            return Seg6Route(dst=d["dst"], segments=tuple(d["segments"]), dev=d["dev"],
                             mode=d.get("mode", "encap"), table=int(d.get("table", 254)),
                             metric=d.get("metric"), backup=bool(d.get("backup", False)))
        if kind == "seg6local":
            return Seg6LocalRoute(sid=d["sid"], action=d["action"], dev=d["dev"],
                                  nh4=d.get("nh4"), nh6=d.get("nh6"),
                                  table=int(d.get("table", 254)),
                                  metric=int(d.get("metric", 1024)))
        if kind == "srpolicy":
            return _policy_from_dict(d)
    except (KeyError, TypeError) as exc:
        raise ValidationError.single(f"route.{exc}", "missing or malformed field") from None
    raise ValidationError.single("route.kind", f"unknown route kind {kind!r}",
                                 "seg6, seg6local or srpolicy")


@dataclass(frozen=True, slots=True)
class NodeState:
    """The complete set of CPN-owned SRv6 routes one node holds (desired or actual)."""

    routes: Mapping[RouteKey, Route] = field(default_factory=dict)

    @classmethod
    def of(cls, routes: Iterable[Route]) -> NodeState:
        out: dict[RouteKey, Route] = {}
        for r in routes:
            if r.key in out and out[r.key] != r:
                raise ValidationError.single(f"{r.key[0]}[{r.key[2]}]",
                                             "two different routes for the same prefix/table",
                                             "one steering route per prefix")
            out[r.key] = r
        return cls(out)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes.values())

    def __len__(self) -> int:
        return len(self.routes)

    def __contains__(self, route: object) -> bool:
        key = getattr(route, "key", None)
        return key is not None and self.routes.get(key) == route

    def merged(self, other: Iterable[Route]) -> NodeState:
        """This state plus ``other`` (other wins on the same key)."""
        out = dict(self.routes)
        for r in other:
            out[r.key] = r
        return NodeState(out)

    def only(self, kind: type[Seg6Route] | type[Seg6LocalRoute] | type[SrPolicyRoute]
             ) -> NodeState:
        return NodeState({k: r for k, r in self.routes.items() if isinstance(r, kind)})

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in sorted(self.routes.values(), key=lambda r: r.key)]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]]) -> NodeState:
        return cls.of(route_from_dict(d) for d in items)


@dataclass(frozen=True, slots=True)
class RouteOp:
    """One kernel change; ``previous`` is what the key held before (for undo)."""

    kind: OpKind
    route: Route
    previous: Route | None = None

    def inverse(self) -> RouteOp:
        if self.kind == "add":
            return RouteOp("delete", self.route, None)
        if self.kind == "delete":
            return RouteOp("add", self.route, None)
        assert self.previous is not None
        return RouteOp("replace", self.previous, self.route)

    def __str__(self) -> str:
        sign = {"add": "+", "delete": "-", "replace": "~"}[self.kind]
        r = self.route
        if isinstance(r, Seg6Route):
            body = f"{r.dst} encap seg6 mode {r.mode} segs {','.join(r.segments)} dev {r.dev}"
            if r.backup:
                body += f" metric {r.metric} (backup)"
        elif isinstance(r, SrPolicyRoute):
            lists = " | ".join(f"w{sl.weight} {','.join(sl.sids)}" for sl in r.segment_lists)
            return (f"{sign} sr-policy color {r.color} endpoint {r.endpoint} "
                    f"distinguisher {r.distinguisher} preference {r.preference} segs {lists}")
        else:
            nh = f" nh4 {r.nh4}" if r.nh4 else f" nh6 {r.nh6}" if r.nh6 else ""
            body = f"{r.sid} seg6local action {r.action}{nh} dev {r.dev}"
        return f"{sign} {body}" + (f" table {r.table}" if r.table != 254 else "")


def _order(op: RouteOp) -> tuple[int, RouteKey]:
    # MBB order: SIDs appear before steering uses them, steering leaves before SIDs go.
    local = isinstance(op.route, Seg6LocalRoute)
    rank = {("add", True): 0, ("replace", True): 0, ("add", False): 1, ("replace", False): 1,
            ("delete", False): 2, ("delete", True): 3}[(op.kind, local)]
    return rank, op.route.key


def plan(desired: NodeState, actual: NodeState) -> list[RouteOp]:
    """Ops turning ``actual`` into ``desired`` (empty when they are equal): idempotent."""
    ops: list[RouteOp] = []
    for key, want in desired.routes.items():
        have = actual.routes.get(key)
        if have is None:
            ops.append(RouteOp("add", want))
        elif have != want:
            ops.append(RouteOp("replace", want, have))
    for key, have in actual.routes.items():
        if key not in desired.routes:
            ops.append(RouteOp("delete", have))
    return sorted(ops, key=_order)


def render_diff(ops: Iterable[RouteOp]) -> str:
    """A unified-diff-like text of ``ops`` (what NAPALM's ``compare_config`` returns)."""
    return "\n".join(str(op) for op in ops)
