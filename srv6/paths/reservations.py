"""Bandwidth reservation bookkeeping per link (pure, in memory; callers persist).

Rules:
- A reservation is ``owner`` → (link keys, Mbit/s). ``reserve`` is all-or-nothing:
  every link is checked first; if one lacks room the call raises ``ConflictError``
  naming that link and nothing is booked.
- The sum reserved on a link never exceeds what the topology says is available on it
  (``Link.available_mbps`` / capacity).
- ``reserve`` for an owner that already holds a reservation replaces it atomically
  (its old booking does not count against the new one); ``release`` is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controller.errors import ConflictError, ValidationError
from srv6.paths.topology import Topology

EPS = 1e-9


class Reservations:
    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.reserved: dict[str, float] = {}
        self.by_owner: dict[str, tuple[tuple[str, ...], float]] = {}

    def limit(self, link: str) -> float:
        eid = self.topo.edge_by_key.get(link)
        if eid is None:
            raise ValidationError.single("links", f"unknown (or down) link {link!r}")
        return self.topo.edges[eid].available_mbps

    def free(self, link: str) -> float:
        return self.limit(link) - self.reserved.get(link, 0.0)

    def reserve(self, owner: str, links: Iterable[str], mbps: float) -> None:
        if mbps < 0:
            raise ValidationError.single("mbps", f"cannot reserve {mbps} Mbit/s")
        wanted = tuple(dict.fromkeys(links))
        old_links, old_mbps = self.by_owner.get(owner, ((), 0.0))
        for link in wanted:
            room = self.free(link) + (old_mbps if link in old_links else 0.0)
            if mbps > room + EPS:
                raise ConflictError(
                    f"link {link}: {owner} needs {mbps:g} Mbit/s but only {room:g} of "
                    f"{self.limit(link):g} Mbit/s is unreserved (min_bandwidth_mbps)")
        self.release(owner)
        for link in wanted:
            self.reserved[link] = self.reserved.get(link, 0.0) + mbps
        self.by_owner[owner] = (wanted, mbps)

    def release(self, owner: str) -> None:
        links, mbps = self.by_owner.pop(owner, ((), 0.0))
        for link in links:
            left = self.reserved.get(link, 0.0) - mbps
            if left <= EPS:
                self.reserved.pop(link, None)
            else:
                self.reserved[link] = left

    def snapshot(self) -> Mapping[str, float]:
        return dict(self.reserved)
