"""Persisted SRv6 SID allocation per locator (RFC 8986 §3.1).

Rules:
- State lives in the store as one ``SidAllocation`` per locator (function value ->
  owner), read and written inside one store transaction per call, so a restart (or a
  second allocator on the same store) sees every allocation: a SID is never handed out
  twice.
- An *owner* is a stable string naming what the SID is for (``node:R1``,
  ``adj:R1:R1~R2``, ``dx4:R3:eth1``). Allocating again for the same owner returns the
  same SID (idempotent), so reconciliation after restart is stable.
- Function 0 is never allocated (the SID would equal the locator address);
  functions below ``dynamic_base`` are only given on explicit request.
- Dynamic allocation takes the lowest never-used function at or above
  ``dynamic_base``; a released function is reused only when no never-used one is left,
  oldest release first — so a stale route still pointing at a freed SID is unlikely to
  hit a new owner.
- An explicit request for a function held by another owner, outside the function
  range, or below 1 is refused with a clear error (``ConflictError`` /
  ``ValidationError``); the stored state is unchanged.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from controller.errors import ConflictError, NotFoundError, ValidationError
from controller.store.base import Store
from srv6.models import Locator, SidAllocation
from srv6.paths.topology import Topology

#: Function of a node's End SID (its "node SID").
END_FUNCTION = 1
#: First function handed out dynamically.
DYNAMIC_BASE = 0x100


class SidAllocator:
    """Allocates SIDs from one ``Locator``; state in ``store``."""

    def __init__(self, store: Store, locator: Locator, *, actor: str = "srv6.sid",
                 dynamic_base: int = DYNAMIC_BASE) -> None:
        if not 1 <= dynamic_base <= locator.max_function:
            raise ValidationError.single(
                "dynamic_base", f"{dynamic_base} outside 1..{locator.max_function}")
        self.store = store
        self.locator = locator
        self.actor = actor
        self.dynamic_base = dynamic_base

    # ------------------------------------------------------------------ queries

    def state(self) -> SidAllocation:
        got = self.store.get(SidAllocation, self.locator.name)
        return got if got is not None else SidAllocation(locator=self.locator.name)

    def owner_of(self, sid: IPv6Address) -> str | None:
        if not self.locator.contains(sid):
            return None
        return self.state().functions.get(self.locator.function_of(sid))

    def sid_of(self, owner: str) -> IPv6Address | None:
        for fn, who in self.state().functions.items():
            if who == owner:
                return self.locator.sid(fn)
        return None

    # ------------------------------------------------------------------ changes

    def allocate(self, owner: str, function: int | None = None) -> IPv6Address:
        """The SID for ``owner``: its existing one, ``function`` if given and free, else
        the next dynamic one."""
        if not owner:
            raise ValidationError.single("owner", "an allocation needs a non-empty owner")
        loc = self.locator
        with self.store.transaction(self.actor, f"allocate SID for {owner}") as txn:
            st = txn.get(SidAllocation, loc.name) or SidAllocation(locator=loc.name)
            for fn, who in st.functions.items():
                if who == owner:
                    if function is not None and function != fn:
                        raise ConflictError(
                            f"{owner} already holds {loc.sid(fn)} (function {fn:#x}) in "
                            f"locator {loc.name}; release it before asking for {function:#x}")
                    return loc.sid(fn)
            if function is not None:
                fn = self._check_explicit(st, function, owner)
            else:
                fn = self._next_dynamic(st)
            functions = dict(st.functions)
            functions[fn] = owner
            released = [f for f in st.released if f != fn]
            txn.put(SidAllocation(locator=loc.name, functions=functions, released=released))
        return loc.sid(fn)

    def release(self, owner: str) -> IPv6Address:
        """Free ``owner``'s SID; it goes to the back of the reuse queue."""
        loc = self.locator
        with self.store.transaction(self.actor, f"release SID of {owner}") as txn:
            st = txn.get(SidAllocation, loc.name) or SidAllocation(locator=loc.name)
            held = [fn for fn, who in st.functions.items() if who == owner]
            if not held:
                raise NotFoundError("srv6 SID owner", f"{owner} in locator {loc.name}")
            fn = held[0]
            functions = {f: w for f, w in st.functions.items() if f != fn}
            txn.put(SidAllocation(locator=loc.name, functions=functions,
                                  released=[*st.released, fn]))
        return loc.sid(fn)

    # ------------------------------------------------------------------ helpers

    def _check_explicit(self, st: SidAllocation, function: int, owner: str) -> int:
        loc = self.locator
        if not 1 <= function <= loc.max_function:
            raise ValidationError.single(
                "function", f"function {function:#x} outside 1..{loc.max_function:#x} "
                f"of locator {loc.name} (function 0 is the locator itself)")
        holder = st.functions.get(function)
        if holder is not None:
            raise ConflictError(
                f"SID collision: {loc.sid(function)} (function {function:#x}) in locator "
                f"{loc.name} is held by {holder!r}; {owner!r} cannot take it")
        return function

    def _next_dynamic(self, st: SidAllocation) -> int:
        used = set(st.functions) | set(st.released)
        fn = self.dynamic_base
        top = self.locator.max_function
        while fn <= top and fn in used:
            fn += 1
        if fn <= top:
            return fn
        for old in st.released:
            if old >= self.dynamic_base and old not in st.functions:
                return old
        raise ConflictError(
            f"locator {self.locator.name} is full: every function "
            f"{self.dynamic_base:#x}..{top:#x} is allocated")


def node_sid(locator: Locator) -> IPv6Address:
    """The node's End SID by convention (function ``END_FUNCTION``)."""
    return locator.sid(END_FUNCTION)


def allocate_topology_sids(store: Store, topo: Topology, locators: list[Locator]) -> int:
    """Allocate (persistently, idempotently) every node's End SID (``node:<name>``, at
    ``END_FUNCTION``) and every adjacency's End.X SID (``adj:<node>:<link key>``) from
    the node's locator, and write them into ``topo`` so computed segment lists use the
    SIDs the nodes are programmed with. Returns how many SIDs the topology now holds."""
    by_node = {loc.node: loc for loc in locators}
    for u, name in enumerate(topo.names):
        loc = by_node.get(name)
        if loc is None:
            continue
        alloc = SidAllocator(store, loc)
        topo.node_sids[u] = alloc.allocate(f"node:{name}", function=END_FUNCTION)
        for _, e in topo.adj[u]:
            topo.adj_sids[(u, e)] = alloc.allocate(f"adj:{name}:{topo.edges[e].key}")
    return len(topo.node_sids) + len(topo.adj_sids)
