"""Network slices: admission control and per-link HTB classes (GBA-6.4.3f), pure.

Rules:
- A slice is a colour + a guaranteed bandwidth + a delay bound, over a set of
  (headend, endpoint) flows. Admission computes, for every flow, a CSPF path with
  ``min_bandwidth_mbps = guaranteed_mbps`` on the bandwidth *not yet guaranteed to
  other slices* and ``max_delay_ms`` = the slice's bound, then books the guarantee on
  each link of the path. A slice is admitted whole or not at all: if any flow fails,
  its bookings are released and the refusal names the flow, the constraint and — for
  bandwidth — the links that lack room.
- Bookings are per link (both directions count against one budget: conservative for
  full-duplex links). The sum guaranteed on a link never exceeds its available
  bandwidth (``Reservations``).
- HTB (for the dataplane): on each node's egress toward the next hop, one class per
  slice with ``rate`` = the sum of that slice's guarantees on the link and ``ceil`` =
  the slice's ``ceil_mbps`` (default: link capacity), plus one ``best-effort`` class
  (``1:ffff``) with the capacity left. Class ids are ``1:<colour hex>`` so they stay
  stable when other slices come and go; slice colours must be 2..0xfffe (``1:1`` is the
  root class).
- Each admitted flow also yields the ``SrPolicy`` (colour = slice colour) carrying its
  computed segment list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field

from controller.errors import ConflictError, ValidationError
from controller.models import Model
from srv6.models import (
    CandidatePath,
    Constraints,
    HtbClass,
    PathResult,
    ProtocolOrigin,
    Slice,
    SrPolicy,
)
from srv6.paths import Reservations, Topology, compute_path

BEST_EFFORT_CLASSID = "1:ffff"
MAX_SLICE_COLOR = 0xFFFE


class SliceAdmission(Model):
    """Outcome for one slice: ``slice``, ``admitted``, ``paths`` (one per flow, when
    admitted), ``failed_constraint``, ``reason``, ``links`` (links that lacked room)."""

    slice: str
    admitted: bool
    paths: list[PathResult] = Field(default_factory=list)
    failed_constraint: str | None = None
    reason: str = ""
    links: list[str] = Field(default_factory=list)


class SlicePlan(Model):
    """``admissions`` (in input order), ``htb`` classes and ``policies`` for the
    admitted slices, ``reserved`` (link key -> Mbit/s guaranteed in total)."""

    admissions: list[SliceAdmission]
    htb: list[HtbClass] = Field(default_factory=list)
    policies: list[SrPolicy] = Field(default_factory=list)
    reserved: dict[str, float] = Field(default_factory=dict)

    def admission(self, name: str) -> SliceAdmission:
        for adm in self.admissions:
            if adm.slice == name:
                return adm
        raise KeyError(name)


def plan_slices(topo: Topology, slices: Sequence[Slice],
                reserved: Mapping[str, float] | None = None) -> SlicePlan:
    """Admit ``slices`` in order (earlier slices keep their guarantees)."""
    names = [s.name for s in slices]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValidationError.single("slices", f"slice {sorted(dupes)[0]!r} listed twice")
    colors: dict[int, str] = {}
    for sl in slices:
        if sl.color in colors:
            raise ValidationError.single(
                f"slices.{sl.name}.color",
                f"colour {sl.color} is already slice {colors[sl.color]!r}'s",
                "give every slice its own colour")
        colors[sl.color] = sl.name
        pairs = [(f.headend, f.endpoint) for f in sl.flows]
        if len(set(pairs)) != len(pairs):
            raise ValidationError.single(f"slices.{sl.name}.flows", "a flow is listed twice")
    book = Reservations(topo)
    for key, mbps in (reserved or {}).items():
        book.reserve(f"pre:{key}", [key], mbps)
    admissions = [_admit(topo, book, s) for s in slices]
    admitted = [(s, a) for s, a in zip(slices, admissions, strict=True) if a.admitted]
    ours = {k: v - (reserved or {}).get(k, 0.0) for k, v in book.snapshot().items()}
    return SlicePlan(admissions=admissions, htb=_htb(topo, admitted),
                     policies=[p for s, a in admitted for p in _policies(s, a)],
                     reserved={k: v for k, v in ours.items() if v > 1e-9})


def admit(topo: Topology, admitted: Sequence[Slice], new: Slice,
          reserved: Mapping[str, float] | None = None) -> SlicePlan:
    """Plan ``admitted`` + ``new``; raise ``ConflictError`` naming the constraint (and
    links) if ``new`` cannot be guaranteed. Previously admitted slices are never
    displaced."""
    plan = plan_slices(topo, [*admitted, new], reserved)
    adm = plan.admissions[-1]
    if not adm.admitted:
        where = f" (links: {', '.join(adm.links)})" if adm.links else ""
        raise ConflictError(f"slice {new.name} refused: {adm.failed_constraint}: "
                            f"{adm.reason}{where}")
    return plan


def _admit(topo: Topology, book: Reservations, s: Slice) -> SliceAdmission:
    if not 2 <= s.color <= MAX_SLICE_COLOR:
        return SliceAdmission(slice=s.name, admitted=False, failed_constraint="color",
                              reason=f"slice colour {s.color} outside 2..{MAX_SLICE_COLOR} "
                                     "(it is the HTB class minor id)")
    if not s.flows:
        return SliceAdmission(slice=s.name, admitted=False, failed_constraint="flows",
                              reason="a slice needs at least one (headend, endpoint) flow")
    c = Constraints(min_bandwidth_mbps=s.guaranteed_mbps, max_delay_ms=s.max_delay_ms)
    paths: list[PathResult] = []
    owners: list[str] = []
    for i, flow in enumerate(s.flows):
        res = compute_path(topo, flow.headend, flow.endpoint, c,
                           reserved=book.snapshot())
        if not res.ok:
            for owner in owners:
                book.release(owner)
            return SliceAdmission(
                slice=s.name, admitted=False, failed_constraint=res.failed_constraint,
                reason=f"flow {flow.headend}->{flow.endpoint}: {res.reason}",
                links=_short_links(topo, book, flow.headend, flow.endpoint, s))
        owner = f"slice:{s.name}:{i}"
        book.reserve(owner, res.links, s.guaranteed_mbps)
        owners.append(owner)
        paths.append(res)
    return SliceAdmission(slice=s.name, admitted=True, paths=paths,
                          reason=f"{len(paths)} flow(s) guaranteed {s.guaranteed_mbps:g} "
                                 "Mbit/s" + (f" within {s.max_delay_ms:g} ms"
                                             if s.max_delay_ms else ""))


def _short_links(topo: Topology, book: Reservations, a: str, b: str, s: Slice) -> list[str]:
    """Links on the best path ignoring bandwidth whose unguaranteed room is too small."""
    free = compute_path(topo, a, b, Constraints(max_delay_ms=s.max_delay_ms),
                        with_segments=False)
    return [k for k in free.links if book.free(k) < s.guaranteed_mbps]


def _htb(topo: Topology, admitted: list[tuple[Slice, SliceAdmission]]) -> list[HtbClass]:
    # (node, peer, link) -> slice name -> rate
    per_dir: dict[tuple[str, str, str], dict[str, float]] = {}
    meta = {s.name: s for s, _ in admitted}
    for s, adm in admitted:
        for res in adm.paths:
            for u, v, key in zip(res.hops, res.hops[1:], res.links, strict=False):
                slot = per_dir.setdefault((u, v, key), {})
                slot[s.name] = slot.get(s.name, 0.0) + s.guaranteed_mbps
    out: list[HtbClass] = []
    for (u, v, key), rates in sorted(per_dir.items()):
        cap = topo.edges[topo.edge_by_key[key]].capacity_mbps
        for name, rate in sorted(rates.items()):
            s = meta[name]
            out.append(HtbClass(node=u, peer=v, link=key, classid=f"1:{s.color:x}",
                                rate_mbps=rate, ceil_mbps=min(cap, s.ceil_mbps or cap),
                                slice=name, color=s.color, dscp=s.dscp,
                                prio=0 if s.max_delay_ms is not None else 1))
        left = cap - sum(rates.values())
        if left > 0:
            out.append(HtbClass(node=u, peer=v, link=key, classid=BEST_EFFORT_CLASSID,
                                rate_mbps=left, ceil_mbps=cap, slice="best-effort",
                                color=0))
    return out


def _policies(s: Slice, adm: SliceAdmission) -> list[SrPolicy]:
    out = []
    for res in adm.paths:
        if res.segment_list is None:
            continue
        out.append(SrPolicy(
            headend=res.headend, endpoint=res.endpoint, color=s.color,
            name=f"slice-{s.name}", slice=s.name,
            candidate_paths=[CandidatePath(preference=100,
                                           protocol_origin=ProtocolOrigin.PCEP,
                                           name=f"slice {s.name} cspf",
                                           segment_lists=[res.segment_list])]))
    return out
