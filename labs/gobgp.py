"""GoBGP as a lab router that receives SR policies, and its RIB read over gRPC.

Rules:
- ``GoBgp`` runs Debian's ``gobgpd`` (3.10) inside a lab namespace, BGP on port 179 of
  that namespace (no port can collide with another run), its gRPC API on a unix socket
  in the lab's directory (reachable from the root namespace, unlike TCP into a
  namespace — LAB-NOTES). ``listen-addresses`` is never written: it makes gobgpd exit.
- Its CLI does not know the SR policy families, so the RIB is read with the gRPC API:
  ``ListPath`` on the ``ADJ_IN`` table of one neighbour, decoded into ``RibPolicy``
  values. The API messages come from ``gobgp_api/gobgp_srpolicy.proto`` (only what is
  read), compiled on first use with grpcio-tools (in a child process) into a temporary
  directory that is removed once the module is loaded.
- GoBGP 3.10 decoder quirks, measured here (see ``docs/srv6-policies.md``): the SRv6
  Binding SID sub-TLV (20) and the Policy Name sub-TLV (130) are not decoded — the API
  reports them as ``TunnelEncapSubTLVUnknown`` with their raw value, which is read
  here; the Candidate Path Name sub-TLV (129) is decoded 3 bytes too long (it takes
  the next sub-TLV's header), so the API cannot marshal it (an empty ``Any``): it is
  read from the attribute bytes GoBGP re-encodes (``enable_attribute_binary``) and
  compared on the bytes sent. ``RibPolicy`` keeps what GoBGP reports; ``mismatches``
  compares what GoBGP can decode.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from srv6.dataplane.state import SRV6_BEHAVIORS, SrPolicyRoute

from .netns import LabError, Ns

PROTO = Path(__file__).parent / "gobgp_api" / "gobgp_srpolicy.proto"
_BEHAVIOR = {v: k for k, v in SRV6_BEHAVIORS.items()}


@cache
def api() -> ModuleType:
    """The compiled ``gobgp_srpolicy_pb2`` module (protoc from grpcio-tools, once).

    protoc runs in a child process: its extension module carries its own protobuf C++
    runtime, and loading it into a process that already holds OR-Tools' aborts the
    interpreter (seen in the full test run)."""
    with tempfile.TemporaryDirectory(prefix="cpn-gobgp-api-") as tmp:
        out = Path(tmp)  # removed once loaded: the module lives on in memory
        code = ("import sys, pathlib, grpc_tools; from grpc_tools import protoc; "
                "inc = pathlib.Path(grpc_tools.__file__).parent / '_proto'; "
                "sys.exit(protoc.main(['protoc', f'-I{sys.argv[1]}', f'-I{inc}', "
                "f'--python_out={sys.argv[2]}', sys.argv[3]]))")
        res = subprocess.run([sys.executable, "-c", code, str(PROTO.parent), str(out),
                              str(PROTO)], capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise LabError(f"protoc failed ({res.returncode}) on {PROTO}: "
                           f"{res.stderr.strip()} (fix: pip install grpcio-tools, the dev "
                           "extra)")
        spec = importlib.util.spec_from_file_location("gobgp_srpolicy_pb2",
                                                      out / "gobgp_srpolicy_pb2.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["gobgp_srpolicy_pb2"] = mod
        spec.loader.exec_module(mod)
    return mod


@dataclass
class RibSegment:
    sid: bytes
    behavior: int | None = None
    structure: tuple[int, int, int, int] | None = None


@dataclass
class RibPolicy:
    """One SR policy path as GoBGP holds it (raw, quirks included)."""

    distinguisher: int
    color: int
    endpoint: str
    neighbor: str
    stale: bool = False
    preference: int | None = None
    priority: int | None = None
    binding_sid: bytes | None = None
    path_name: bytes | None = None
    policy_name: bytes | None = None
    unknown_sub_tlvs: list[int] = field(default_factory=list)
    segment_lists: list[tuple[int, list[RibSegment]]] = field(default_factory=list)
    route_targets: list[str] = field(default_factory=list)
    communities: list[int] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int, str]:
        return ("srpolicy", self.color, f"{self.endpoint}#{self.distinguisher}")

    def mismatches(self, want: SrPolicyRoute) -> list[str]:
        """What differs from ``want``, on everything GoBGP 3.10 decodes (empty = equal)."""
        out: list[str] = []

        def check(what: str, got: object, exp: object) -> None:
            if got != exp:
                out.append(f"{what}: router has {got!r}, intent {exp!r}")

        check("key", self.key, want.key)
        check("preference", self.preference, want.preference)
        check("priority", self.priority, want.priority)
        check("binding SID", self.binding_sid,
              ipaddress.IPv6Address(want.binding_sid).packed if want.binding_sid else None)
        if want.path_name:
            # quirk: GoBGP 3.10 holds the name plus the next sub-TLV's 3 header bytes
            sent = want.path_name.encode()
            check("candidate path name", (self.path_name or b"")[:len(sent)], sent)
            check("candidate path name over-read", len(self.path_name or b""), len(sent) + 3)
        else:
            check("candidate path name", self.path_name, None)
        check("policy name", self.policy_name, want.name.encode() if want.name else None)
        got_lists = [(wt, [(str(ipaddress.IPv6Address(s.sid)), _BEHAVIOR.get(s.behavior or -1),
                            s.structure) for s in segs]) for wt, segs in self.segment_lists]
        exp_lists = [(sl.weight, [(s.sid, s.behavior, s.structure) for s in sl.segments])
                     for sl in want.segment_lists]
        check("segment lists", got_lists, exp_lists)
        check("NO_ADVERTISE community", 0xFFFFFF02 in self.communities, True)
        return out


class GoBgp:
    """``gobgpd`` in namespace ``ns``, peering passively with ``neighbors``:
    ``{address: (peer_as, families)}``, families GoBGP names (``ipv6-srpolicy``)."""

    def __init__(self, ns: Ns, workdir: Path, asn: int, router_id: str,
                 neighbors: dict[str, tuple[int, tuple[str, ...]]],
                 graceful_restart: bool = False) -> None:
        self.ns, self.asn, self.router_id = ns, asn, router_id
        self.graceful_restart = graceful_restart
        self.workdir = workdir
        self.socket = workdir / "gobgp-api.sock"
        self.neighbors = neighbors
        self.proc: Any = None

    def config(self) -> str:
        lines = ["[global.config]", f"  as = {self.asn}", f'  router-id = "{self.router_id}"',
                 "  port = 179", ""]
        for addr, (peer_as, fams) in self.neighbors.items():
            lines += ["[[neighbors]]", "  [neighbors.config]",
                      f'    neighbor-address = "{addr}"', f"    peer-as = {peer_as}",
                      "  [neighbors.transport.config]", "    passive-mode = true",
                      "  [neighbors.timers.config]", "    connect-retry = 1",
                      "    hold-time = 9", "    keepalive-interval = 3"]
            if self.graceful_restart:  # helper side of RFC 4724
                lines += ["  [neighbors.graceful-restart.config]", "    enabled = true",
                          "    restart-time = 120"]
            for fam in fams:
                lines += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                          f'      afi-safi-name = "{fam}"']
                if self.graceful_restart:
                    lines += ["    [neighbors.afi-safis.mp-graceful-restart.config]",
                              "      enabled = true"]
            lines.append("")
        return "\n".join(lines)

    def start(self, timeout: float = 10.0) -> GoBgp:
        conf = self.workdir / "gobgpd.toml"
        conf.write_text(self.config())
        self.socket.unlink(missing_ok=True)
        self.proc = self.ns.popen(["gobgpd", "-f", str(conf), "-p", "--pprof-disable",
                                   f"--api-hosts=unix://{self.socket}"],
                                  name="gobgpd", log=self.workdir / "gobgpd.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"gobgpd exited ({self.proc.returncode}); see "
                               f"{self.workdir / 'gobgpd.log'}")
            if self.socket.exists():
                try:
                    self.policies("127.0.0.1", family=6)
                    return self
                except Exception:  # not serving yet
                    pass
            time.sleep(0.05)
        raise LabError(f"gobgpd API did not come up on {self.socket} in {timeout} s")

    def stop(self) -> None:
        if self.proc is not None:
            self.ns.lab.stop(self.proc)
            self.proc = None

    def _list(self, neighbor: str, family: int) -> list[Any]:
        import grpc

        pb = api()
        req = pb.ListPathRequest(table_type=pb.ADJ_IN, name=neighbor,
                                 family=pb.Family(afi=1 if family == 4 else 2, safi=73),
                                 enable_attribute_binary=True)
        with grpc.insecure_channel(f"unix://{self.socket}") as ch:
            call = ch.unary_stream("/apipb.GobgpApi/ListPath",
                                   request_serializer=pb.ListPathRequest.SerializeToString,
                                   response_deserializer=pb.ListPathResponse.FromString)
            return [p for resp in call(req, timeout=5.0) for p in resp.destination.paths]

    def count(self, neighbor: str, family: int = 6) -> int:
        """How many SR policy paths GoBGP holds from ``neighbor`` (``GetTable``: cheap,
        nothing decoded)."""
        import grpc

        pb = api()
        req = pb.GetTableRequest(table_type=pb.ADJ_IN, name=neighbor,
                                 family=pb.Family(afi=1 if family == 4 else 2, safi=73))
        with grpc.insecure_channel(f"unix://{self.socket}") as ch:
            call = ch.unary_unary("/apipb.GobgpApi/GetTable",
                                  request_serializer=pb.GetTableRequest.SerializeToString,
                                  response_deserializer=pb.GetTableResponse.FromString)
            return int(call(req, timeout=5.0).num_path)

    def policies(self, neighbor: str, family: int | None = None) -> list[RibPolicy]:
        """The SR policies GoBGP holds from ``neighbor`` (both families by default)."""
        fams = (4, 6) if family is None else (family,)
        return [_decode_path(p, neighbor) for f in fams for p in self._list(neighbor, f)
                if not p.is_withdraw]


def _unpack(anyv: Any) -> Any:
    pb = api()
    name = anyv.type_url.rsplit("/", 1)[-1].removeprefix("apipb.")
    cls = getattr(pb, name, None)
    if cls is None:
        return None
    msg = cls()
    anyv.Unpack(msg)
    return msg


def _structure(b: Any) -> tuple[int, int, int, int] | None:
    st = (b.block_len, b.node_len, b.func_len, b.arg_len)
    return None if st == (0, 0, 0, 0) else st


def _decode_path(path: Any, neighbor: str) -> RibPolicy:
    nlri = _unpack(path.nlri)
    pol = RibPolicy(nlri.distinguisher, nlri.color,
                    str(ipaddress.ip_address(nlri.endpoint)), neighbor, stale=path.stale)
    for a in path.pattrs:
        attr = _unpack(a)
        if attr is None:
            continue
        kind = type(attr).__name__
        if kind == "CommunitiesAttribute":
            pol.communities = list(attr.communities)
        elif kind == "ExtendedCommunitiesAttribute":
            for c in attr.communities:
                ext = _unpack(c)
                if ext is not None and type(ext).__name__ == "IPv4AddressSpecificExtended" \
                        and ext.sub_type == 2:
                    pol.route_targets.append(f"{ext.address}:{ext.local_admin}")
        elif kind == "TunnelEncapAttribute":
            for tlv in attr.tlvs:
                if tlv.type != 15:
                    continue
                for sub_any in tlv.tlvs:
                    _sub_tlv(pol, _unpack(sub_any), sub_any.type_url)
    for raw in path.pattrs_binary:
        pol.path_name = _path_name(raw) if pol.path_name is None else pol.path_name
    return pol


def _path_name(attr: bytes) -> bytes | None:
    """The Candidate Path Name (sub-TLV 129) in GoBGP's re-encoded Tunnel Encapsulation
    attribute bytes (RFC 9012 layout), as GoBGP holds it."""
    if len(attr) < 4 or attr[1] != 23:
        return None
    hdr = 4 if attr[0] & 0x10 else 3
    body, pos = attr[hdr:], 0
    while pos + 4 <= len(body):
        ttype, tlen = int.from_bytes(body[pos:pos + 2], "big"), \
            int.from_bytes(body[pos + 2:pos + 4], "big")
        tval, pos = body[pos + 4:pos + 4 + tlen], pos + 4 + tlen
        i = 0
        while ttype == 15 and i + 2 <= len(tval):
            code = tval[i]
            wide = code >= 128
            ln = int.from_bytes(tval[i + 1:i + 3], "big") if wide else tval[i + 1]
            start = i + (3 if wide else 2)
            if code == 129:
                return bytes(tval[start + 1:start + ln])
            i = start + ln
    return None


def _sub_tlv(pol: RibPolicy, sub: Any, url: str) -> None:
    kind = url.rsplit(".", 1)[-1]
    if sub is None:
        return
    if kind == "TunnelEncapSubTLVSRPreference":
        pol.preference = sub.preference
    elif kind == "TunnelEncapSubTLVSRPriority":
        pol.priority = sub.priority
    elif kind == "TunnelEncapSubTLVSRBindingSID":
        bsid = _unpack(sub.bsid)
        pol.binding_sid = bytes(bsid.sid) if bsid is not None else None
    elif kind == "TunnelEncapSubTLVUnknown":
        pol.unknown_sub_tlvs.append(sub.type)
        if sub.type == 20 and len(sub.value) >= 18:  # SRv6 Binding SID: flags, reserved, SID
            pol.binding_sid = bytes(sub.value[2:18])
        elif sub.type == 130 and sub.value:  # Policy Name: reserved, name
            pol.policy_name = bytes(sub.value[1:])
    elif kind == "TunnelEncapSubTLVSRSegmentList":
        segs = []
        for s_any in sub.segments:
            seg = _unpack(s_any)
            if seg is None or type(seg).__name__ != "SegmentTypeB":
                continue
            b = seg.endpoint_behavior_structure
            has = seg.flags.b_flag and seg.HasField("endpoint_behavior_structure")
            segs.append(RibSegment(bytes(seg.sid), b.behavior if has else None,
                                   _structure(b) if has else None))
        pol.segment_lists.append((sub.weight.weight, segs))
