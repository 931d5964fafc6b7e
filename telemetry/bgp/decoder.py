"""Sans-I/O decoder of the ExaBGP JSON API (exabgp 5.0.x, ``encoder json``,
``receive { parsed; update; }`` plus ``neighbor-changes``).

Rules:
- Bytes (or str) in through ``feed``, typed events out; no I/O, no clock reads
  except the event's default timestamp. Partial lines are buffered until their
  newline; a line longer than ``MAX_LINE`` is dropped with a ``Rejected``.
- Each JSON line becomes zero or more events: ``PeerUp``/``PeerDown`` (state
  messages), ``RouteAnnounced`` (one per NLRI, with the decoded compute metadata),
  ``RouteWithdrawn``, ``EndOfRib``, ``SpeakerShutdown``. ``connected`` states,
  keepalives and other message types produce nothing.
- Bad input never raises: malformed JSON, a missing field, an invalid prefix or
  address, an unknown metric id or an out-of-range value give a ``Rejected``
  event whose ``reason`` names what and where (issue #3 "bad input"). A bad
  attribute set rejects the announcements of that UPDATE only; its withdrawals
  are still decoded (they carry no attributes).

Line shape (captured from exabgp 5.0.0 ⇐ gobgpd 3.10, see
``tests/telemetry/fixtures/exabgp-5.0.0-gobgp-session.jsonl``)::

  {"exabgp": "5.0.0", "type": "update", "neighbor": {"address": {"local": L,
   "peer": P}, "asn": {"local": A, "peer": B}, "direction": "receive",
   "message": {"update": {"attribute": {... "large-community": [[a, id, v]]},
   "announce": {"ipv4 unicast": {NEXT_HOP: [{"nlri": PREFIX}]}},
   "withdraw": {"ipv4 unicast": [{"nlri": PREFIX}]}}}}}
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import ip_address, ip_network
from typing import Any

from controller.events import Event
from telemetry.bgp.codec import CodecError, ComputeMetadata, LargeCommunityCodec, MetadataCodec

#: Longest JSON line accepted (a full UPDATE with thousands of NLRIs fits easily).
MAX_LINE = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class BgpEvent(Event):
    """Base of BGP events; ``peer`` is the neighbour's address (text)."""

    peer: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerUp(BgpEvent):
    peer_as: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDown(BgpEvent):
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteAnnounced(BgpEvent):
    """``prefix`` (normalised network text), ``next_hop``, ``metrics`` (decoded)."""

    prefix: str
    next_hop: str
    metrics: ComputeMetadata = field(default_factory=ComputeMetadata)
    peer_as: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteWithdrawn(BgpEvent):
    prefix: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfRib(BgpEvent):
    family: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeakerShutdown(BgpEvent):
    """ExaBGP announced it is shutting down (all its sessions are gone)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected(BgpEvent):
    """Input refused; ``reason`` says what and where; ``line`` is a bounded excerpt."""

    reason: str
    line: str = ""


def _excerpt(line: str | bytes) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text[:200]


class _Bad(Exception):
    """Internal: a field is missing or wrong; becomes ``Rejected``."""


def _obj(d: Any, key: str, where: str) -> dict[str, Any]:
    v = d.get(key) if isinstance(d, dict) else None
    if not isinstance(v, dict):
        raise _Bad(f"{where}.{key}: expected an object")
    return v


def _addr(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise _Bad(f"{where}: expected an address string, got {v!r:.60}")
    out = _cached_addr(v) if len(v) <= 64 else None  # peers and next hops repeat
    if out is None:
        raise _Bad(f"{where}: invalid address {v!r:.60}")
    return out


def _fast_v4(v: str) -> str | None:
    """Canonical IPv4 ``a.b.c.d/len`` without ``ipaddress`` (≈10× faster: a flood of
    host routes is the common case); None ⇒ use the slow, general path."""
    addr, sep, plen = v.partition("/")
    if not sep or not plen.isdigit() or len(plen) > 2:
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET, addr)
    except OSError:
        return None
    n = int(plen)
    if n > 32 or str(n) != plen or socket.inet_ntop(socket.AF_INET, packed) != addr:
        return None
    if n < 32 and int.from_bytes(packed, "big") & ((1 << (32 - n)) - 1):
        return None  # host bits set: the slow path says so precisely
    return v


def _prefix(n: Any, where: str) -> str:
    # exabgp.api.compact=true prints bare strings instead of {"nlri": PREFIX}
    v = n if isinstance(n, str) else n.get("nlri") if isinstance(n, dict) else None
    if not isinstance(v, str):
        raise _Bad(f"{where}: expected {{'nlri': PREFIX}}, got {n!r:.80}")
    fast = _fast_v4(v)
    if fast is not None:
        return fast
    try:
        return str(ip_network(v, strict=True))
    except ValueError:
        raise _Bad(f"{where}: invalid prefix {v!r:.60}") from None


@lru_cache(maxsize=4096)
def _cached_addr(v: str) -> str | None:
    try:
        return str(ip_address(v))
    except ValueError:
        return None


class ExaBgpDecoder:
    """Feed ExaBGP API output; get events. One instance per ExaBGP process."""

    def __init__(self, codec: MetadataCodec | None = None) -> None:
        self.codec: MetadataCodec = codec or LargeCommunityCodec()
        self._buf = bytearray()
        self._discarding = False
        self.lines = 0
        self.rejected = 0

    def feed(self, data: bytes | str) -> list[BgpEvent]:
        """Add output bytes; return the events of every complete line."""
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        self._buf += data
        out: list[BgpEvent] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    self._buf.clear()
                    self._discarding = True
                    out.append(self._reject(f"line longer than {MAX_LINE} bytes dropped", b""))
                return out
            line = bytes(self._buf[:nl])
            del self._buf[:nl + 1]
            if self._discarding:  # tail of an over-long line
                self._discarding = False
                continue
            out.extend(self.decode_line(line))

    def _reject(self, reason: str, line: str | bytes, peer: str = "") -> Rejected:
        self.rejected += 1
        return Rejected(peer=peer, reason=reason, line=_excerpt(line))

    def decode_line(self, line: str | bytes) -> list[BgpEvent]:
        """One JSON line → events (never raises)."""
        self.lines += 1
        if not line.strip():
            return []
        try:
            msg = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            return [self._reject(f"malformed JSON: {exc}", line)]
        try:
            return self._decode(msg, line)
        except _Bad as exc:
            return [self._reject(str(exc), line)]
        except Exception as exc:  # last resort: the decoder must never crash the ingest
            return [self._reject(f"undecodable message ({type(exc).__name__}: {exc})", line)]

    def _decode(self, msg: Any, line: str | bytes) -> list[BgpEvent]:
        if not isinstance(msg, dict):
            raise _Bad("message: expected a JSON object")
        mtype = msg.get("type")
        if mtype == "notification" and msg.get("notification") == "shutdown":
            return [SpeakerShutdown()]
        if mtype not in ("state", "update"):
            return []
        nb = _obj(msg, "neighbor", "message")
        peer = _addr(_obj(nb, "address", "neighbor").get("peer"), "neighbor.address.peer")
        peer_as = _obj(nb, "asn", "neighbor").get("peer", 0)
        if isinstance(peer_as, bool) or not isinstance(peer_as, int):
            raise _Bad(f"neighbor.asn.peer: expected an integer, got {peer_as!r:.40}")
        if mtype == "state":
            state = nb.get("state")
            if state == "up":
                return [PeerUp(peer=peer, peer_as=peer_as)]
            if state == "down":
                return [PeerDown(peer=peer, reason=str(nb.get("reason", ""))[:200])]
            return []
        if nb.get("direction", "receive") != "receive":
            return []
        message = _obj(nb, "message", "neighbor")
        if "eor" in message:
            eor = message["eor"]
            fam = f"{eor.get('afi', '')} {eor.get('safi', '')}" if isinstance(eor, dict) else ""
            return [EndOfRib(peer=peer, family=fam)]
        return self._update(_obj(message, "update", "neighbor.message"), peer, peer_as, line)

    def _update(self, upd: dict[str, Any], peer: str, peer_as: int,
                line: str | bytes) -> list[BgpEvent]:
        out: list[BgpEvent] = []
        withdraw = upd.get("withdraw", {})
        if not isinstance(withdraw, dict):
            raise _Bad("update.withdraw: expected an object")
        for fam, nlris in withdraw.items():
            if not isinstance(nlris, list):
                out.append(self._reject(f"update.withdraw[{fam}]: expected a list", line, peer))
                continue
            for i, n in enumerate(nlris):
                try:
                    out.append(RouteWithdrawn(peer=peer,
                                              prefix=_prefix(n, f"withdraw[{fam}][{i}]")))
                except _Bad as exc:
                    out.append(self._reject(str(exc), line, peer))
        announce = upd.get("announce", {})
        if not isinstance(announce, dict):
            raise _Bad("update.announce: expected an object")
        if not announce:
            return out
        attrs = upd.get("attribute", {})
        if not isinstance(attrs, dict):
            return [*out, self._reject("update.attribute: expected an object", line, peer)]
        try:
            md = self.codec.decode(attrs, asn=peer_as or None)
        except CodecError as exc:
            return [*out, self._reject(f"peer {peer}: {exc}", line, peer)]
        for fam, by_nh in announce.items():
            if not isinstance(by_nh, dict):
                out.append(self._reject(f"update.announce[{fam}]: expected an object", line,
                                        peer))
                continue
            for nh, nlris in by_nh.items():
                try:
                    next_hop = _addr(nh, f"announce[{fam}] next-hop")
                    if not isinstance(nlris, list):
                        raise _Bad(f"announce[{fam}][{nh}]: expected a list")
                except _Bad as exc:
                    out.append(self._reject(str(exc), line, peer))
                    continue
                for i, n in enumerate(nlris):
                    try:
                        prefix = _prefix(n, f"announce[{fam}][{nh}][{i}]")
                    except _Bad as exc:
                        out.append(self._reject(str(exc), line, peer))
                        continue
                    out.append(RouteAnnounced(peer=peer, prefix=prefix, next_hop=next_hop,
                                              metrics=md, peer_as=peer_as))
        return out
