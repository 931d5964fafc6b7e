"""The IP/SRv6 topology graph that path computation runs on (pure).

Rules:
- Built from ``controller.models`` ``Router``/``Site``/``Link`` lists plus srv6 overlays
  (``LinkAffinity`` colours, ``Locator``s, ``LocalSid``s). Nothing is read from I/O.
- Links are bidirectional; a link in state ``down`` is left out entirely (neither IGP
  nor CSPF may use it). A link naming an unknown node is a ``ValidationError``.
- Parallel links are separate edges (each has its own key).
- Node SIDs: an explicit ``End`` ``LocalSid`` wins, else the node's ``Locator`` (or the
  router's, else the site's, ``locator`` field) with function ``END_FUNCTION``.
  Adjacency (End.X) SIDs: an explicit ``End.X`` ``LocalSid`` with ``link`` set wins,
  else a derived default (function ``ADJ_BASE`` + position of the link in the node's
  sorted link keys) — the default is for labs without an allocator; use ``srv6.sid``
  for stable ones.
- ``attach_sites=True`` joins each router to its ``Router.site`` by an *attachment*
  edge (kind ``attachment``, 0 ms, IGP 1, unlimited bandwidth, no SRLG, no SID): the
  one treatment of sites reached through a router (``srv6.paths.graph``). Attachment
  edges are in ``Topology.attachments``; callers drop them from reported links.
  ``implicit_nodes=True`` makes every link end a node even when not declared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from controller.errors import Issue, ValidationError
from controller.models import Link, LinkState, Router, Site
from srv6.models import LinkAffinity, LocalSid, Locator, SidBehavior

END_FUNCTION = 1
ADJ_BASE = 0xE000
INF = float("inf")
#: ``Edge.kind`` of a router↔site attachment edge
ATTACHMENT = "attachment"


@dataclass(slots=True)
class Edge:
    """One link as the graph sees it; ``a``/``b`` are node indexes. Read-only by
    convention (not ``frozen``: a frozen dataclass's ``__init__`` costs several times
    more, and a graph of 80,000 links builds one per link)."""

    id: int
    key: str
    a: int
    b: int
    igp: int
    delay_ms: float
    capacity_mbps: float
    available_mbps: float
    srlgs: frozenset[str]
    colors: frozenset[str]
    kind: str
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    def other(self, node: int) -> int:
        return self.b if node == self.a else self.a


@dataclass(slots=True)
class Topology:
    """Nodes by index, edges by id, adjacency ``adj[u] = [(v, edge_id), ...]``."""

    names: list[str]
    index: dict[str, int]
    edges: list[Edge]
    adj: list[list[tuple[int, int]]]
    edge_by_key: dict[str, int]
    node_sids: dict[int, IPv6Address] = field(default_factory=dict)
    #: (node index, edge id) -> End.X SID of that node over that link
    adj_sids: dict[tuple[int, int], IPv6Address] = field(default_factory=dict)
    #: keys of links left out because they are down (still valid names in constraints)
    down_links: set[str] = field(default_factory=set)
    #: SRLG -> edge ids carrying it (for fast exclusion)
    srlg_edges: dict[str, list[int]] = field(default_factory=dict)
    _weights: dict[str, list[float]] = field(default_factory=dict)
    #: derived structures of this topology version (CSR, numpy weights, masks)
    cache: dict[str, object] = field(default_factory=dict)
    #: edge ids of router↔site attachments (not links; see ``attach_sites``)
    attachments: frozenset[int] = frozenset()

    @property
    def n(self) -> int:
        return len(self.names)

    def node(self, name: str, what: str = "node") -> int:
        try:
            return self.index[name]
        except KeyError:
            raise ValidationError.single(
                what, f"unknown {what} {name!r} (not a router or site of the topology)",
                "use a node from the topology") from None

    def weights(self, metric: str) -> list[float]:
        """Per-edge weights for ``igp``/``delay`` (cached; callers must not mutate)."""
        got = self._weights.get(metric)
        if got is None:
            if metric == "delay":
                got = [e.delay_ms for e in self.edges]
            else:
                got = [float(e.igp) for e in self.edges]
            self._weights[metric] = got
        return got

    def available(self, reserved: Mapping[str, float] | None = None) -> list[float]:
        """Per-edge Mbit/s left after ``reserved`` (link key -> Mbit/s)."""
        out = [e.available_mbps for e in self.edges]
        for key, mbps in (reserved or {}).items():
            eid = self.edge_by_key.get(key)
            if eid is not None:
                out[eid] -= mbps
        return out

    @classmethod
    def build(
        cls,
        links: Iterable[Link],
        routers: Iterable[Router] = (),
        sites: Iterable[Site] = (),
        *,
        affinities: Iterable[LinkAffinity] = (),
        locators: Iterable[Locator] = (),
        local_sids: Iterable[LocalSid] = (),
        attach_sites: bool = False,
        implicit_nodes: bool = False,
        sids: bool = True,
    ) -> Topology:
        routers, sites, links = list(routers), list(sites), list(links)
        index: dict[str, int] = {}
        for name in [r.name for r in routers] + [s.name for s in sites]:
            index.setdefault(name, len(index))
        if implicit_nodes:
            for link in links:
                if link.state is not LinkState.DOWN:
                    index.setdefault(link.a, len(index))
                    index.setdefault(link.b, len(index))
            if attach_sites:
                for r in routers:
                    if r.site:
                        index.setdefault(r.site, len(index))
        names = list(index)
        colors = {a.link: frozenset(a.colors) for a in affinities}
        edges: list[Edge] = []
        adj: list[list[tuple[int, int]]] = [[] for _ in names]
        by_key: dict[str, int] = {}
        down: set[str] = set()
        srlg_edges: dict[str, list[int]] = {}
        issues: list[Issue] = []
        for link in links:
            if link.state is LinkState.DOWN:
                down.add(link.key)
                continue
            missing = [end for end in (link.a, link.b) if end not in index]
            if missing:
                issues.append(Issue(f"links.{link.key}", f"unknown node {missing[0]!r}",
                                    "declare it as a router or site"))
                continue
            if link.key in by_key:
                issues.append(Issue(f"links.{link.key}", "duplicate link key",
                                    "give parallel links an explicit id"))
                continue
            eid = len(edges)
            a, b = index[link.a], index[link.b]
            edges.append(Edge(eid, link.key, a, b, link.igp_metric, link.delay_ms,
                              link.capacity_mbps, link.available, frozenset(link.srlgs),
                              colors.get(link.key, frozenset()), str(link.kind),
                              link.jitter_ms, link.loss_pct))
            by_key[link.key] = eid
            adj[a].append((b, eid))
            adj[b].append((a, eid))
            for g in link.srlgs:
                srlg_edges.setdefault(g, []).append(eid)
        if issues:
            raise ValidationError(issues, source="topology")
        attached: set[int] = set()
        if attach_sites:
            for r in routers:
                if not r.site or r.site == r.name or r.site not in index:
                    continue
                key = f"{r.name}@{r.site}"
                while key in by_key:
                    key += "'"
                eid = len(edges)
                a, b = index[r.name], index[r.site]
                edges.append(Edge(eid, key, a, b, 1, 0.0, INF, INF, frozenset(),
                                  frozenset(), ATTACHMENT))
                by_key[key] = eid
                adj[a].append((b, eid))
                adj[b].append((a, eid))
                attached.add(eid)
        topo = cls(names, index, edges, adj, by_key, down_links=down, srlg_edges=srlg_edges,
                   attachments=frozenset(attached))
        if sids:
            topo._assign_sids(routers, sites, list(locators), list(local_sids))
        return topo

    def _assign_sids(self, routers: list[Router], sites: Iterable[Site],
                     locators: list[Locator], local_sids: list[LocalSid]) -> None:
        prefixes: dict[str, tuple[IPv6Network, int]] = {}
        for st in sites:  # a router's, then a Locator record's, take precedence
            if st.locator is not None:
                prefixes[st.name] = (st.locator, 16)
        for r in routers:
            if r.locator is not None:
                prefixes[r.name] = (r.locator, 16)
        for loc in locators:
            prefixes[loc.node] = (loc.prefix, loc.function_len)
        for name, (prefix, flen) in prefixes.items():
            u = self.index.get(name)
            if u is None:
                continue
            shift = 128 - prefix.prefixlen - flen
            base = int(prefix.network_address)
            self.node_sids[u] = IPv6Address(base | (END_FUNCTION << shift))
            own = [e for _, e in self.adj[u] if e not in self.attachments]
            keys = sorted(self.edges[e].key for e in own)
            for e in own:
                pos = keys.index(self.edges[e].key)
                self.adj_sids[(u, e)] = IPv6Address(base | ((ADJ_BASE + pos) << shift))
        for ls in local_sids:
            u = self.index.get(ls.node)
            if u is None:
                continue
            if ls.behavior is SidBehavior.END:
                self.node_sids[u] = ls.sid
            elif ls.behavior is SidBehavior.END_X and ls.link in self.edge_by_key:
                self.adj_sids[(u, self.edge_by_key[ls.link])] = ls.sid
