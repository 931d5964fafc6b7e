"""Netlink backend: SRv6 routes straight into a Linux kernel (pyroute2 ``IPRoute``).

Rules:
- Every route CPN installs carries ``proto RTPROT_CPN`` (a backup steering route
  ``RTPROT_CPN_BACKUP``); ``_dump`` reads only those, so other routes (kernel, static,
  BGP) are never touched.
- A changed route is one ``RTM_NEWROUTE`` with ``NLM_F_REPLACE`` (pyroute2 ``replace``):
  the kernel swaps it atomically, the make-before-break switch relies on it.
- pyroute2 0.9.7 encodes ``segs`` in SRH wire order (RFC 8754: Segment List[0] is the
  *last* segment) and decodes them the same way; this module reverses to and from
  travel order. In ``inline`` mode pyroute2 prepends ``::`` (the slot the kernel fills
  with the original destination); it is stripped on read.
- Reading back uses ``rtnl`` (a raw, kernel-filtered dump; pyroute2 0.9.7 decodes seg6
  and seg6local correctly too, but costs ~0.6 ms per request); writes use pyroute2. No
  ``ip`` fallback is needed.
- Library errors become ``CommitError``/``ConnectionError`` at this boundary.
"""

from __future__ import annotations

from socket import AF_INET, AF_INET6
from typing import Any

from controller.errors import CommitError, ConnectionError

from . import rtnl
from .programmer import TransactionalProgrammer
from .state import (
    RTPROT_CPN,
    RTPROT_CPN_BACKUP,
    NodeState,
    Route,
    RouteOp,
    Seg6LocalRoute,
    Seg6Route,
)

_ACTIONS = {1: "End", 2: "End.X", 5: "End.DX6", 6: "End.DX4"}


class NetlinkProgrammer(TransactionalProgrammer):
    """``PolicyProgrammer`` over netlink in namespace ``netns`` (``None`` = this one)."""

    def __init__(self, node: str, netns: str | None = None) -> None:
        super().__init__(node)
        from pyroute2 import IPRoute

        self.netns = netns
        try:
            self._ipr: Any = IPRoute(netns=netns) if netns else IPRoute()
        except Exception as exc:  # pyroute2 raises plain OSError/FileNotFoundError
            raise ConnectionError(f"{node}: cannot open netlink in netns {netns!r}: {exc}") \
                from exc
        try:
            self._nl = rtnl.open_socket(netns)
        except OSError as exc:
            self._ipr.close()
            raise ConnectionError(f"{node}: cannot open netlink in netns {netns!r}: {exc}") \
                from exc
        self._seq = 0
        self._ifindex: dict[str, int] = {}
        self._ifname: dict[int, str] = {}

    def close(self) -> None:
        self._nl.close()
        self._ipr.close()

    # -- interfaces ------------------------------------------------------------------
    def _refresh_links(self) -> None:
        self._ifindex.clear()
        self._ifname.clear()
        for link in self._ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            self._ifindex[name] = link["index"]
            self._ifname[link["index"]] = name

    def _index(self, dev: str) -> int:
        if dev not in self._ifindex:
            self._refresh_links()
        if dev not in self._ifindex:
            raise CommitError(f"{self.node}: no interface {dev!r}")
        return self._ifindex[dev]

    def _name(self, index: int) -> str:
        if index not in self._ifname:
            self._refresh_links()
        return self._ifname.get(index, f"if{index}")

    # -- read ----------------------------------------------------------------------
    def _dump(self) -> NodeState:
        # raw, kernel-filtered dump (rtnl.py): pyroute2's per-request cost dominated the
        # make-before-break critical path
        routes: list[Route] = []
        for family in (AF_INET, AF_INET6):
            for proto in (RTPROT_CPN, RTPROT_CPN_BACKUP):
                self._seq += 1
                try:
                    msgs = rtnl.dump(self._nl, family, proto, self._seq)
                except OSError as exc:
                    raise ConnectionError(f"{self.node}: route dump failed: {exc}") from exc
                for msg in msgs:
                    route = self._decode(msg)
                    if route is not None:
                        routes.append(route)
        return NodeState.of(routes)

    def _decode(self, msg: dict[str, Any]) -> Route | None:
        encap = msg.get("encap")
        if encap is None or "dst" not in msg:
            return None
        table, metric = msg["table"], msg["priority"]
        dev = self._name(msg["oif"])
        dst = f"{msg['dst']}/{msg['dst_len']}"
        if encap["type"] == "seg6":
            wire = list(encap["segs"])
            mode = encap["mode"]
            if mode == "inline":
                wire = wire[1:]
            return Seg6Route(dst=dst, segments=tuple(reversed(wire)), dev=dev, mode=mode,
                             table=table, metric=metric,
                             backup=msg.get("protocol") == RTPROT_CPN_BACKUP)
        if encap["type"] == "seg6local":
            action = _ACTIONS.get(encap["action"])
            if action is None:
                return None  # not a behaviour CPN programs; leave it alone
            return Seg6LocalRoute(sid=msg["dst"], action=action,  # type: ignore[arg-type]
                                  dev=dev, nh4=encap.get("nh4"), nh6=encap.get("nh6"),
                                  table=table, metric=metric)
        return None

    # -- write ---------------------------------------------------------------------
    def _request(self, route: Route) -> dict[str, Any]:
        if isinstance(route, Seg6Route):
            encap: dict[str, Any] = {"type": "seg6", "mode": route.mode,
                                     "segs": list(reversed(route.segments))}
            family = AF_INET if route.family == 4 else AF_INET6
            dst = route.dst
            proto = RTPROT_CPN_BACKUP if route.backup else RTPROT_CPN
        else:
            encap = {"type": "seg6local", "action": route.action}
            if route.nh4:
                encap["nh4"] = route.nh4
            if route.nh6:
                encap["nh6"] = route.nh6
            family, dst = AF_INET6, f"{route.sid}/128"
            proto = RTPROT_CPN
        req: dict[str, Any] = {"dst": dst, "family": family, "table": route.table,
                               "proto": proto, "oif": self._index(route.dev),
                               "encap": encap}
        if route.metric:
            req["priority"] = route.metric
        return req

    def _apply(self, op: RouteOp) -> None:
        cmd = {"add": "add", "replace": "replace", "delete": "del"}[op.kind]
        try:
            if op.kind == "delete":
                r = op.route
                dst = r.dst if isinstance(r, Seg6Route) else f"{r.sid}/128"
                family = AF_INET if isinstance(r, Seg6Route) and r.family == 4 else AF_INET6
                backup = isinstance(r, Seg6Route) and r.backup
                req: dict[str, Any] = {"dst": dst, "family": family, "table": r.table,
                                       "proto": RTPROT_CPN_BACKUP if backup else RTPROT_CPN}
                if r.metric:
                    req["priority"] = r.metric
                self._ipr.route(cmd, **req)
            else:
                self._ipr.route(cmd, **self._request(op.route))
        except CommitError:
            raise
        except Exception as exc:  # NetlinkError is not an OSError in pyroute2 0.9
            raise CommitError(f"{self.node}: {op}: {exc}") from exc
