"""Routing and wavelength assignment (pure): data in, plan out (GBA-6.4.2, GBA-5.2).

Rules:
- Routes: Yen's k-shortest by fiber length over *routable* fibers (up, not an OMSP
  protect fiber — those only back up their working fiber).
- Wavelengths: first-fit with continuity — the lowest channel free on every fiber of
  the route (channel sets are int bitmasks; bit c-1 = channel c in use).
- OSNR: each fiber is cut into amplified spans of ≤ ``span_km``; span OSNR (dB, 0.1 nm)
  = 58 + launch_dbm − NF − span_loss; the path's 1/OSNR is the sum of the spans' linear
  1/OSNR plus a per-ROADM term. Feasible iff OSNR ≥ threshold(rate) + margin.
- 1+1: the protect route shares no fiber and no SRLG with the working route.
- OTN grooming: an ODU is placed on an existing lightpath between the same end points
  with enough free tributary slots before a new wavelength is lit.
- GBA-5.2: requests touching a hub are planned first (hubs prefer OTN).
- Outcomes are values (``Plan.status``), not exceptions.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from optical.models import CHANNELS, ODU_SLOTS, Fiber, Lightpath, OduCircuit, Rate

#: Required OSNR (dB, 0.1 nm) per line rate — typical coherent DP-QPSK/16QAM/PCS figures.
OSNR_THRESHOLD_DB = {Rate.G100: 12.0, Rate.G400: 20.0, Rate.G800: 24.0}
ALL = (1 << CHANNELS) - 1


class RwaStatus(StrEnum):
    """A plan's outcome (named apart from ``scheduler.framework.Status``): ``ok``,
    ``groomed`` (fits an existing OCh's ODU slots), ``no-route``, ``no-wavelength``
    (no channel free end to end), ``osnr-infeasible``, ``no-disjoint-protect``."""

    OK = "ok"
    GROOMED = "groomed"
    NO_ROUTE = "no-route"
    NO_WAVELENGTH = "no-wavelength"
    OSNR = "osnr-infeasible"
    NO_DISJOINT = "no-disjoint-protect"


@dataclass(frozen=True, slots=True)
class OsnrModel:
    launch_dbm: float = 1.0
    noise_figure_db: float = 5.5
    span_km: float = 80.0
    roadm_osnr_db: float = 35.0  # per-node ASE/crosstalk contribution
    margin_db: float = 2.0


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    src: str
    dst: str
    rate: Rate = Rate.G100
    protect: bool = False
    odu_type: str | None = None  # ODU2/ODU4/ODUflex ⇒ try grooming first
    bandwidth_gbps: float = 0.0
    hub: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    request: Request
    status: RwaStatus
    working: Lightpath | None = None
    protect: Lightpath | None = None
    odu: OduCircuit | None = None
    reason: str = ""


@dataclass
class Network:
    """Fibers plus channel occupancy; ``down`` fibers are excluded from routing."""

    fibers: dict[str, Fiber]
    used: dict[str, int] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    lightpaths: dict[str, Lightpath] = field(default_factory=dict)
    _adj: dict[str, list[tuple[str, Fiber]]] | None = None

    @classmethod
    def build(cls, fibers: Iterable[Fiber], lightpaths: Iterable[Lightpath] = (),
              down: Iterable[str] = ()) -> Network:
        net = cls({f.id: f for f in fibers}, down=set(down))
        for lp in lightpaths:
            net.add(lp)
        return net

    def adj(self) -> dict[str, list[tuple[str, Fiber]]]:
        if self._adj is None:
            adj: dict[str, list[tuple[str, Fiber]]] = {}
            for f in self.fibers.values():
                if f.protect_of is None:
                    adj.setdefault(f.a, []).append((f.b, f))
                    adj.setdefault(f.b, []).append((f.a, f))
            self._adj = adj
        return self._adj

    def add(self, lp: Lightpath) -> None:
        for fid in lp.fibers:
            self.used[fid] = self.used.get(fid, 0) | (1 << (lp.channel - 1))
        self.lightpaths[lp.id] = lp

    def remove(self, lp_id: str) -> None:
        lp = self.lightpaths.pop(lp_id, None)
        if lp:
            for fid in lp.fibers:
                self.used[fid] = self.used.get(fid, 0) & ~(1 << (lp.channel - 1))


def _dijkstra(adj: dict[str, list[tuple[str, Fiber]]], src: str, dst: str,
              banned_f: set[str], banned_n: set[str]) -> tuple[float, list[str], list[str]] | None:
    dist = {src: 0.0}
    prev: dict[str, tuple[str, str]] = {}
    heap = [(0.0, src)]
    while heap:
        d, u = heapq.heappop(heap)
        if u == dst:
            nodes, fibers = [dst], []
            while nodes[-1] != src:
                p, f = prev[nodes[-1]]
                nodes.append(p)
                fibers.append(f)
            return d, nodes[::-1], fibers[::-1]
        if d > dist.get(u, math.inf):
            continue
        for v, fb in adj.get(u, ()):
            if fb.id in banned_f or v in banned_n:
                continue
            nd = d + fb.length_km
            if nd < dist.get(v, math.inf):
                dist[v] = nd
                prev[v] = (u, fb.id)
                heapq.heappush(heap, (nd, v))
    return None


def k_shortest(net: Network, src: str, dst: str, k: int = 3,
               exclude: set[str] | None = None) -> list[tuple[list[str], list[str]]]:
    """Yen's algorithm: up to ``k`` loop-free routes as (nodes, fiber ids)."""
    adj, base = net.adj(), set(net.down) | (exclude or set())
    first = _dijkstra(adj, src, dst, base, set())
    if first is None:
        return []
    found = [first]
    cands: list[tuple[float, list[str], list[str]]] = []
    while len(found) < k:
        _, pn, pf = found[-1]
        for i in range(len(pn) - 1):
            root_n, root_f = pn[: i + 1], pf[:i]
            banned = set(base)
            for _, n2, f2 in found:
                if n2[: i + 1] == root_n and len(f2) > i:
                    banned.add(f2[i])
            spur = _dijkstra(adj, pn[i], dst, banned, set(root_n[:-1]))
            if spur is None:
                continue
            cost = sum(net.fibers[f].length_km for f in root_f) + spur[0]
            cand = (cost, root_n[:-1] + spur[1], root_f + spur[2])
            if all(c[1] != cand[1] or c[2] != cand[2] for c in cands + found):
                heapq.heappush(cands, cand)
        if not cands:
            break
        found.append(heapq.heappop(cands))
    return [(n, f) for _, n, f in found]


def osnr_db(fibers: Sequence[Fiber], nodes: int, m: OsnrModel) -> float:
    inv = nodes * 10 ** (-m.roadm_osnr_db / 10)
    for f in fibers:
        n = max(1, math.ceil(f.length_km / m.span_km))
        loss = f.attenuation_db_per_km * f.length_km / n
        inv += n * 10 ** (-(58 + m.launch_dbm - m.noise_figure_db - loss) / 10)
    return -10 * math.log10(inv)


def first_fit(net: Network, fibers: Sequence[str]) -> int | None:
    used = 0
    for f in fibers:
        used |= net.used.get(f, 0)
    free = ALL & ~used
    return (free & -free).bit_length() if free else None


def _srlg_fence(net: Network, fibers: Sequence[str]) -> set[str]:
    srlgs = {s for f in fibers for s in net.fibers[f].srlgs}
    return {f.id for f in net.fibers.values() if f.id in fibers or srlgs & set(f.srlgs)}


def _light(net: Network, req: Request, routes: list[tuple[list[str], list[str]]],
           m: OsnrModel, suffix: str) -> tuple[Lightpath | None, RwaStatus, str]:
    status, reason = RwaStatus.NO_ROUTE, f"no route {req.src}→{req.dst}"
    need = OSNR_THRESHOLD_DB[req.rate] + m.margin_db
    for nodes, fibers in routes:
        osnr = osnr_db([net.fibers[f] for f in fibers], len(nodes), m)
        if osnr < need:
            status, reason = RwaStatus.OSNR, f"best OSNR {osnr:.1f} dB < {need:.1f} dB needed"
            continue
        ch = first_fit(net, fibers)
        if ch is None:
            status, reason = RwaStatus.NO_WAVELENGTH, "no channel free end to end"
            continue
        return Lightpath(req.id + suffix, tuple(nodes), tuple(fibers), ch, req.rate,
                         round(osnr, 2)), RwaStatus.OK, ""
    return None, status, reason


def groom(net: Network, req: Request) -> Plan | None:
    """Place an ODU on an existing lightpath src↔dst with free tributary slots."""
    need = ODU_SLOTS.get(req.odu_type or "", math.ceil(req.bandwidth_gbps / 1.25))
    for lp in net.lightpaths.values():
        if {lp.nodes[0], lp.nodes[-1]} == {req.src, req.dst} and len(lp.free_ts()) >= need:
            slots = tuple(lp.free_ts()[:need])
            return Plan(req, RwaStatus.GROOMED, working=lp,
                        odu=OduCircuit(req.id, lp.id, req.odu_type or "ODUflex", slots,
                                       req.bandwidth_gbps))
    return None


def plan(net: Network, req: Request, k: int = 3, model: OsnrModel | None = None) -> Plan:
    """Plan one request (does not change ``net``; call ``commit`` to reserve)."""
    m = model or OsnrModel()
    if req.odu_type and (g := groom(net, req)):
        return g
    routes = k_shortest(net, req.src, req.dst, k)
    work, status, reason = _light(net, req, routes, m, "")
    if work is None:
        return Plan(req, status, reason=reason)
    prot = None
    if req.protect:
        for nodes, fibers in [(list(work.nodes), list(work.fibers)), *routes]:
            cand, _, _ = _light(net, req, [(nodes, fibers)], m, "")
            if cand is None:
                continue
            alt = k_shortest(net, req.src, req.dst, k, exclude=_srlg_fence(net, fibers))
            p, _, _ = _light(net, req, alt, m, "-p")
            if p is not None:
                work, prot = cand, p
                break
        if prot is None:
            return Plan(req, RwaStatus.NO_DISJOINT, reason="no SRLG-disjoint protect route")
    odu = None
    if req.odu_type:
        need = ODU_SLOTS.get(req.odu_type, math.ceil(req.bandwidth_gbps / 1.25))
        odu = OduCircuit(req.id, work.id, req.odu_type, tuple(range(1, need + 1)),
                         req.bandwidth_gbps)
        work = Lightpath(work.id, work.nodes, work.fibers, work.channel, work.rate,
                         work.osnr_db, frozenset(odu.slots))
    return Plan(req, RwaStatus.OK, work, prot, odu)


def commit(net: Network, p: Plan) -> None:
    """Reserve a plan's channels / tributary slots in ``net``."""
    if p.status is RwaStatus.GROOMED and p.working and p.odu:
        lp = p.working
        net.lightpaths[lp.id] = Lightpath(lp.id, lp.nodes, lp.fibers, lp.channel, lp.rate,
                                          lp.osnr_db, lp.used_ts | frozenset(p.odu.slots))
        return
    for light in (p.working, p.protect):
        if light is not None:
            net.add(light)


def plan_batch(net: Network, reqs: Iterable[Request], k: int = 3,
               model: OsnrModel | None = None) -> list[Plan]:
    """GBA-5.2: hub requests first (stable otherwise); each plan is reserved in turn."""
    out = []
    for r in sorted(reqs, key=lambda r: not r.hub):
        p = plan(net, r, k, model)
        if p.status in (RwaStatus.OK, RwaStatus.GROOMED):
            commit(net, p)
        out.append(p)
    return out
