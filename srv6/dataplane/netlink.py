"""Netlink backend: SRv6 routes straight into a Linux kernel (pyroute2 ``IPRoute``).

Rules:
- Every route CPN installs carries ``proto RTPROT_CPN`` (a backup steering route
  ``RTPROT_CPN_BACKUP``); ``_dump`` reads only those, so other routes (kernel, static,
  BGP) are never touched. A programmer made with another ``protocol`` owns only routes
  of that one (labs program their fixed, hand-made SRv6 routes as ``RTPROT_STATIC``,
  which CPN's own programmer then leaves alone).
- A changed route is one ``RTM_NEWROUTE`` with ``NLM_F_REPLACE`` (pyroute2 ``replace``):
  the kernel swaps it atomically, the make-before-break switch relies on it.
- pyroute2 0.9.7 encodes ``segs`` in SRH wire order (RFC 8754: Segment List[0] is the
  *last* segment) and decodes them the same way; this module reverses to and from
  travel order. In ``inline`` mode pyroute2 prepends ``::`` (the slot the kernel fills
  with the original destination); it is stripped on read.
- Reading back uses ``rtnl`` (a raw, kernel-filtered dump; pyroute2 0.9.7 decodes seg6
  and seg6local correctly too, but costs ~0.6 ms per request); so do deletes and every
  write of the eBPF dataplane (routes, next-hop tables, fwmark rules: ~1 ms of
  pyroute2 each became tens of µs — they are the make-before-break switch); seg6
  lwtunnel writes use pyroute2. No ``ip`` fallback is needed.
- Library errors become ``CommitError``/``ConnectionError`` at this boundary.
- Two kernel dataplanes, one state model: seg6 lwtunnels where the kernel has them,
  else eBPF H.Encaps + the IPv6 core's SRH processing (``seg6bpf``; chosen once per
  programmer by probing the kernel, or forced with ``dataplane=``). Both read back to
  the same ``Seg6Route``/``Seg6LocalRoute`` values, so diffs, drift repair and
  make-before-break do not know which one runs.
"""

from __future__ import annotations

import os
from socket import AF_INET, AF_INET6
from typing import Any

from controller.errors import CommitError, ConnectionError

from . import rtnl, seg6bpf
from .programmer import TransactionalProgrammer
from .state import (
    RTPROT_CPN,
    RTPROT_CPN_BACKUP,
    NodeState,
    Route,
    RouteOp,
    Seg6LocalRoute,
    Seg6Route,
    SrPolicyRoute,
)

_ACTIONS = {1: "End", 2: "End.X", 5: "End.DX6", 6: "End.DX4"}


class NetlinkProgrammer(TransactionalProgrammer):
    """``PolicyProgrammer`` over netlink in namespace ``netns`` (``None`` = this one)."""

    def __init__(self, node: str, netns: str | None = None, *,
                 dataplane: seg6bpf.Seg6Dataplane | None = None,
                 tunsrc: str | None = None, protocol: int = RTPROT_CPN) -> None:
        """``dataplane``: ``lwtunnel`` or ``bpf`` (``None``: probe the kernel);
        ``tunsrc``: outer source address of eBPF-encapsulated packets (``None``: the
        node's first global IPv6 address, on ``lo`` first); ``protocol``: the route
        protocol this programmer owns (backups keep ``RTPROT_CPN_BACKUP`` under CPN's)."""
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
        self._proto = protocol
        self._backup_proto = RTPROT_CPN_BACKUP if protocol == RTPROT_CPN else protocol
        self._dataplane = dataplane
        self._tunsrc = tunsrc
        self._srh_enabled = False
        self._mark_tables: set[tuple[int, str | None]] = set()
        self._ifindex: dict[str, int] = {}
        self._ifname: dict[int, str] = {}
        self._sources: dict[str, str] = {}  # dev → outer source (read with the links)

    def close(self) -> None:
        self._nl.close()
        self._ipr.close()

    def prepare(self) -> None:
        """Everything a first write would otherwise do on the critical path, done once
        when the node is opened: probe the dataplane, read the interfaces and (eBPF)
        the encapsulation source per device, enable SRH processing, load-and-drop one
        program. A make-before-break switch then costs its writes only (the first SID
        on a node took ~2.5 ms more than the next ones). Failures: ``ConnectionError``."""
        try:
            if self.dataplane != "bpf":
                return
            self._refresh_links()
            for dev in list(self._ifindex):
                try:
                    self._source(dev)
                except CommitError:  # no global IPv6 address yet: resolved at first use
                    break
            if not self._srh_enabled:
                seg6bpf.enable_srh(self.netns)
                self._srh_enabled = True
            os.close(seg6bpf.load_program(seg6bpf.pass_program(), seg6bpf.PROG_LWT_IN))
        except (CommitError, OSError) as exc:
            raise ConnectionError(f"{self.node}: cannot prepare the SRv6 dataplane: "
                                  f"{exc}") from exc

    # -- interfaces ------------------------------------------------------------------
    def _refresh_links(self) -> None:
        self._ifindex.clear()
        self._ifname.clear()
        self._sources.clear()
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

    @property
    def dataplane(self) -> seg6bpf.Seg6Dataplane:
        """Which kernel dataplane this node is programmed with (probed on first use)."""
        if self._dataplane is None:
            try:
                lwt = seg6bpf.kernel_has_seg6_lwtunnel(self._ipr, self.netns)
            except Exception as exc:  # NetlinkError other than "unsupported"
                raise ConnectionError(f"{self.node}: cannot probe seg6 support: {exc}") \
                    from exc
            self._dataplane = "lwtunnel" if lwt else "bpf"
        return self._dataplane

    def _source(self, dev: str) -> str:
        """Outer IPv6 source for eBPF H.Encaps: ``tunsrc``, else a global address of
        ``lo``, of ``dev``, of any device (the kernel's seg6 picks the egress device's).
        Read once per device and kept until the node's interfaces are read again."""
        if self._tunsrc:
            return self._tunsrc
        if dev in self._sources and dev in self._ifindex:
            return self._sources[dev]
        found: dict[int, str] = {}
        for addr in self._ipr.get_addr(family=AF_INET6):
            if addr["scope"] == 0:  # RT_SCOPE_UNIVERSE
                found.setdefault(addr["index"], addr.get_attr("IFA_ADDRESS"))
        dev_index = self._index(dev)  # also fills the interface cache ("lo" below)
        for index in (self._ifindex.get("lo"), dev_index, *found):
            if index in found:
                self._sources[dev] = found[index]
                return found[index]
        raise CommitError(f"{self.node}: no global IPv6 address to source SRv6 "
                          "encapsulation from (fix: add one to lo, or set tunsrc)")

    # -- read ----------------------------------------------------------------------
    def _dump(self) -> NodeState:
        # raw, kernel-filtered dump (rtnl.py): pyroute2's per-request cost dominated the
        # make-before-break critical path
        msgs: list[dict[str, Any]] = []
        for family in (AF_INET, AF_INET6):
            for proto in sorted({self._proto, self._backup_proto}):
                self._seq += 1
                try:
                    msgs += rtnl.dump(self._nl, family, proto, self._seq)
                except OSError as exc:
                    raise ConnectionError(f"{self.node}: route dump failed: {exc}") from exc
        # eBPF SIDs with a next hop need their mark table's default route (seg6bpf)
        self._mark_tables = {(m["table"], m.get("gateway")) for m in msgs
                             if "encap" not in m and m.get("dst_len") == 0}
        routes = [r for r in map(self._decode, msgs) if r is not None]
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
                             backup=self._is_backup(msg))
        if encap["type"] == "bpf":
            return self._decode_bpf(msg, encap, dst, dev)
        if encap["type"] == "seg6local":
            action = _ACTIONS.get(encap["action"])
            if action is None:
                return None  # not a behaviour CPN programs; leave it alone
            return Seg6LocalRoute(sid=msg["dst"], action=action,  # type: ignore[arg-type]
                                  dev=dev, nh4=encap.get("nh4"), nh6=encap.get("nh6"),
                                  table=table, metric=metric)
        return None

    def _is_backup(self, msg: dict[str, Any]) -> bool:
        return self._backup_proto != self._proto and msg.get("protocol") == self._backup_proto

    def _decode_bpf(self, msg: dict[str, Any], encap: dict[str, Any], dst: str,
                    dev: str) -> Route | None:
        table, metric = msg["table"], msg["priority"]
        got = seg6bpf.decode_name(encap.get("xmit") or encap.get("in") or "")
        if got is None:
            return None  # an eBPF route CPN did not write: leave it alone
        if got.kind == "encap":
            return Seg6Route(dst=dst, segments=got.segments, dev=dev, mode="encap",
                             table=table, metric=metric,
                             backup=self._is_backup(msg))
        if got.action not in _ACTIONS.values():
            return None
        nh = got.nh4 or got.nh6
        if nh and (seg6bpf.mark_of(msg["dst"]), nh) not in self._mark_tables:
            return None  # its next-hop table is gone: re-programmed as a whole
        return Seg6LocalRoute(sid=msg["dst"], action=got.action,  # type: ignore[arg-type]
                              dev=dev, nh4=got.nh4, nh6=got.nh6, table=table, metric=metric)

    # -- write ---------------------------------------------------------------------
    def _bpf_encap(self, route: Seg6Route | Seg6LocalRoute, fds: list[int]
                   ) -> dict[str, tuple[int, str]]:
        """eBPF form of ``route`` (``seg6bpf``): hook → (program fd, route name); the
        program fds go to ``fds`` (closed once the kernel holds the route)."""
        if isinstance(route, Seg6Route):
            if route.mode != "encap":
                raise CommitError(f"{self.node}: {route.dst}: H.Insert (inline) needs the "
                                  "kernel's seg6 lwtunnels, which this kernel lacks "
                                  "(fix: use mode encap)")
            header = seg6bpf.encap_header(self._source(route.dev), route.segments,
                                          route.family)
            fds.append(seg6bpf.load_program(
                seg6bpf.encap_program(header, route.family), seg6bpf.PROG_LWT_XMIT))
            return {"xmit": (fds[-1], seg6bpf.encap_name(route.segments))}
        if not self._srh_enabled:
            seg6bpf.enable_srh(self.netns)
            self._srh_enabled = True
        nh = route.nh4 or route.nh6
        code = seg6bpf.mark_program(seg6bpf.mark_of(route.sid)) if nh else \
            seg6bpf.pass_program()
        fds.append(seg6bpf.load_program(code, seg6bpf.PROG_LWT_IN))
        return {"in": (fds[-1], seg6bpf.sid_name(route.action, route.nh4, route.nh6))}

    def _raw(self, msg_of: Any) -> None:
        """One raw rtnetlink request (``msg_of(seq)`` builds it) and its ACK."""
        self._seq += 1
        rtnl.request(self._nl, msg_of(self._seq))

    def _next_hop_table(self, route: Seg6LocalRoute, install: bool) -> None:
        """The fwmark rule and table that make an eBPF SID honour its next hop
        (``seg6bpf.mark_program``): installed before the SID, removed after it."""
        nh = route.nh4 or route.nh6
        if not nh:
            return
        mark = seg6bpf.mark_of(route.sid)
        family = AF_INET if route.nh4 else AF_INET6
        default = "0.0.0.0/0" if route.nh4 else "::/0"
        def rule(cmd: str) -> None:
            self._raw(lambda seq: rtnl.rule_request(cmd, seq, family=family, fwmark=mark,
                                                    table=mark, priority=100))

        if install:
            # no device: the kernel resolves the next hop as seg6local's lookup does
            self._raw(lambda seq: rtnl.route_request(
                "replace", seq, dst=default, table=mark, protocol=self._proto, gateway=nh))
            try:
                rule("add")
            except FileExistsError:  # the rule is there already
                pass
            return
        try:
            rule("del")
        except OSError:  # already gone: nothing to remove
            pass
        try:
            self._raw(lambda seq: rtnl.route_request("del", seq, dst=default, table=mark,
                                                     protocol=self._proto))
        except OSError:  # already gone
            pass

    def _request(self, route: Seg6Route | Seg6LocalRoute, fds: list[int]
                 ) -> dict[str, Any]:
        bpf = self.dataplane == "bpf"
        if isinstance(route, Seg6Route):
            encap: dict[str, Any] = {"type": "seg6", "mode": route.mode,
                                     "segs": list(reversed(route.segments))}
            family = AF_INET if route.family == 4 else AF_INET6
            dst = route.dst
            proto = self._backup_proto if route.backup else self._proto
        else:
            encap = {"type": "seg6local", "action": route.action}
            if route.nh4:
                encap["nh4"] = route.nh4
            if route.nh6:
                encap["nh6"] = route.nh6
            family, dst = AF_INET6, f"{route.sid}/128"
            proto = self._proto
        if bpf:  # raw rtnetlink (module rules); read by _write
            hooks = self._bpf_encap(route, fds)
            oif = self._index(route.dev)
            return {"raw": lambda cmd, seq: rtnl.route_request(
                cmd, seq, dst=dst, table=route.table, protocol=proto, oif=oif,
                priority=route.metric or None, bpf=hooks,
                # a local route: the IPv6 core runs the SID's SRH (seg6bpf)
                local=isinstance(route, Seg6LocalRoute))}
        req: dict[str, Any] = {"dst": dst, "family": family, "table": route.table,
                               "proto": proto, "oif": self._index(route.dev),
                               "encap": encap}
        if route.metric:
            req["priority"] = route.metric
        return req

    def _write(self, cmd: str, req: dict[str, Any]) -> None:
        raw = req.get("raw")
        if raw is None:
            self._ipr.route(cmd, **req)
        else:
            self._raw(lambda seq: raw(cmd, seq))

    def _apply(self, op: RouteOp) -> None:
        cmd = {"add": "add", "replace": "replace", "delete": "del"}[op.kind]
        if isinstance(op.route, SrPolicyRoute):
            raise CommitError(f"{self.node}: {op}: a Linux node takes seg6 routes, not SR "
                              "policies (fix: render the policy as a seg6 route, or bind the "
                              "node to programmer bgp-sr-policy if it is a router)")
        fds: list[int] = []
        try:
            if op.kind == "delete":
                r = op.route
                dst = r.dst if isinstance(r, Seg6Route) else f"{r.sid}/128"
                family = AF_INET if isinstance(r, Seg6Route) and r.family == 4 else AF_INET6
                backup = isinstance(r, Seg6Route) and r.backup
                if "/" not in dst:
                    dst += "/32" if family == AF_INET else "/128"
                self._raw(lambda seq: rtnl.route_request(
                    "del", seq, dst=dst, table=r.table, priority=r.metric or None,
                    protocol=self._backup_proto if backup else self._proto))
                if isinstance(r, Seg6LocalRoute) and self.dataplane == "bpf":
                    self._next_hop_table(r, install=False)
            elif isinstance(op.route, Seg6LocalRoute) and self.dataplane == "bpf":
                # next hop first (make-before-break); replace: a SID whose next-hop
                # table vanished reads back as absent and is re-programmed whole
                self._next_hop_table(op.route, install=True)
                self._write("replace", self._request(op.route, fds))
            else:
                self._write(cmd, self._request(op.route, fds))
        except CommitError:
            raise
        except Exception as exc:  # NetlinkError is not an OSError in pyroute2 0.9
            raise CommitError(f"{self.node}: {op}: {exc}") from exc
        finally:
            for fd in fds:  # the route holds its program now (or it was refused)
                os.close(fd)
