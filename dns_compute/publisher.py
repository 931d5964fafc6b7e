"""Publishing the compute zone to an external primary (RFC 2136 UPDATE + RFC 8945 TSIG).

Rules:
- ``DnsPublisher`` is the contract (one shared test suite, ``tests/dns_compute/
  test_publisher.py``): ``sync(zone)`` makes the target hold exactly the zone's managed
  records and returns a ``PublishResult``; ``records()`` reads back what it holds.
- Managed = every RRset except the apex SOA and apex NS (the primary's own zone file
  owns those; the primary bumps its serial on each UPDATE).
- Diff-only: one UPDATE carries only the rdatas to delete and to add (a TTL change
  replaces the RRset). No change ⇒ no UPDATE.
- SOA-serial check: each UPDATE has the prerequisite "SOA is exactly the one we last
  read" (RFC 2136 §2.4.2). If someone else changed the zone (NXRRSET), the publisher
  re-reads the zone by AXFR (TSIG-signed) and retries with a fresh diff.
- Transient failures (timeout, connection refused, SERVFAIL) are retried with
  exponential backoff up to ``retries`` attempts, then ``ConnectionError``. BADKEY,
  BADSIG, BADTIME, REFUSED, NOTAUTH are permanent: ``CommitError`` naming the server,
  the key and the likely fix; the previous published state is kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone

from controller.errors import CommitError, ConnectionError
from dns_compute.models import KnotTarget, RRset
from dns_compute.zone import Zone

log = logging.getLogger("cpn.dns.publish")

Key = tuple[str, str]


@dataclass(frozen=True)
class PublishResult:
    """``added``/``removed`` rdata counts, ``attempts``, target ``serial`` after,
    ``seconds`` spent, ``skipped`` when there was nothing to change."""

    added: int
    removed: int
    attempts: int
    serial: int
    seconds: float
    skipped: bool = False


class DnsPublisher(Protocol):
    async def sync(self, zone: Zone) -> PublishResult: ...

    async def records(self) -> dict[Key, RRset]: ...


def canonical(rrset: RRset) -> RRset:
    """Presentation text normalised through dnspython (so diffs compare like with like)."""
    rdtype = dns.rdatatype.from_text(rrset.rdtype)
    texts = sorted(dns.rdata.from_text(dns.rdataclass.IN, rdtype, t, origin=dns.name.root,
                                       relativize=False).to_text() for t in rrset.rdatas)
    return RRset(rrset.name.lower(), rrset.rdtype, rrset.ttl, tuple(texts))


def managed(zone: Zone) -> dict[Key, RRset]:
    return {k: canonical(rr) for k, rr in zone.rrsets.items()
            if not (k[0] == zone.origin and k[1] in ("SOA", "NS"))}


@dataclass
class Diff:
    """Per RRset: rdatas to ``delete`` and ``add``; ``replace`` for TTL changes."""

    delete: list[tuple[Key, tuple[str, ...]]] = field(default_factory=list)
    add: list[tuple[Key, int, tuple[str, ...]]] = field(default_factory=list)
    replace: list[RRset] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.delete or self.add or self.replace)

    def counts(self) -> tuple[int, int]:
        added = sum(len(r) for _, _, r in self.add) + sum(len(r.rdatas) for r in self.replace)
        removed = sum(len(r) for _, r in self.delete)
        return added, removed


def diff(have: dict[Key, RRset], want: dict[Key, RRset]) -> Diff:
    """Pure: what turns ``have`` into ``want`` (both canonical)."""
    d = Diff()
    for key in sorted(set(have) | set(want)):
        old, new = have.get(key), want.get(key)
        if old == new:
            continue
        if new is None:
            assert old is not None
            d.delete.append((key, old.rdatas))
        elif old is None:
            d.add.append((key, new.ttl, new.rdatas))
        elif old.ttl != new.ttl:
            d.replace.append(new)
        else:
            gone = tuple(r for r in old.rdatas if r not in new.rdatas)
            came = tuple(r for r in new.rdatas if r not in old.rdatas)
            if gone:
                d.delete.append((key, gone))
            if came:
                d.add.append((key, new.ttl, came))
    return d


_PERMANENT: dict[dns.rcode.Rcode, str] = {
    dns.rcode.REFUSED: "REFUSED: the primary's ACL does not allow UPDATE for this key, "
                       "or it does not serve the zone (check 'acl: action: update' and "
                       "'zone: acl:' in knot.conf)",
    dns.rcode.NOTAUTH: "NOTAUTH: the server is not authoritative for the zone or the "
                       "TSIG signature was not accepted",
    dns.rcode.NOTZONE: "NOTZONE: a record is outside the zone",
}


class KnotPublisher:
    """RFC 2136 publisher to a Knot (or any RFC 2136) primary; follows zone versions."""

    def __init__(self, origin: str, host: str, port: int, tsig_name: str, tsig_secret: str,
                 tsig_algorithm: str = "hmac-sha256", timeout_s: float = 2.0,
                 retries: int = 5, backoff_s: float = 0.05) -> None:
        self.origin = dns.name.from_text(origin.rstrip(".") + ".")
        self.host, self.port = host, port
        self.key_name = tsig_name
        self._keyname = dns.name.from_text(tsig_name)
        self.algorithm = dns.name.from_text(tsig_algorithm)
        self.keyring = dns.tsigkeyring.from_text({tsig_name: tsig_secret})
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.have: dict[Key, RRset] | None = None
        self.serial: int | None = None
        self.last: PublishResult | None = None
        self.last_error: str = ""
        #: publishes that succeeded / failed (``/metrics``), since start
        self.published = 0
        self.failures = 0
        self._desired: Zone | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @classmethod
    def from_config(cls, origin: str, cfg: KnotTarget) -> KnotPublisher:
        host, _, port = cfg.server.rpartition(":")
        return cls(origin, host.strip("[]"), int(port), cfg.tsig_name, cfg.tsig_secret,
                   cfg.tsig_algorithm, cfg.timeout_s, cfg.retries, cfg.backoff_s)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port} (zone {self.origin}, key {self.key_name})"

    # ------------------------------------------------------------------ follow mode
    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="dns-publisher")

    def follow(self, version: object) -> None:
        zone = getattr(version, "zone", version)
        assert isinstance(zone, Zone)
        self._desired = zone
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            zone = self._desired
            if zone is None:
                continue
            try:
                self.last = await self.sync(zone)
                self.last_error = ""
                self.published += 1
            except (CommitError, ConnectionError) as exc:
                self.last_error = str(exc)
                self.failures += 1
                log.error("publishing zone serial %d failed: %s", zone.serial, exc)

    async def stop(self) -> None:
        """Stop following. Also ends the task when a cancellation gets lost (CPython 3.11
        ``asyncio.wait_for``, used inside dnspython, can swallow one: gh-86296)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        task = self._task
        if task is None:
            return
        for _ in range(5):
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if done:
                break
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("publisher task ended with %r", task.exception())

    # ------------------------------------------------------------------ protocol
    async def records(self) -> dict[Key, RRset]:
        have, _ = await self._read_zone()
        return have

    async def sync(self, zone: Zone) -> PublishResult:
        t0 = time.perf_counter()
        want = managed(zone)
        attempts = 0
        delay = self.backoff_s
        while True:
            attempts += 1
            try:
                if self.have is None or self.serial is None:
                    self.have, self.serial = await self._read_zone()
                d = diff(self.have, want)
                if d.empty and await self._read_serial() != self.serial:
                    # Nothing to send by our books, but the zone moved: re-read it.
                    self.have, self.serial = await self._read_zone()
                    d = diff(self.have, want)
                if d.empty:
                    return PublishResult(0, 0, attempts, self.serial, time.perf_counter() - t0,
                                         skipped=True)
                rcode = await self._send(d, self.serial)
                if rcode == dns.rcode.NOERROR:
                    self.have = dict(want)
                    self.serial = await self._read_serial()
                    added, removed = d.counts()
                    return PublishResult(added, removed, attempts, self.serial,
                                         time.perf_counter() - t0)
                if rcode in (dns.rcode.NXRRSET, dns.rcode.YXRRSET):
                    log.info("zone %s changed on %s behind our back; re-reading",
                             self.origin, self.where)
                    self.have = self.serial = None
                elif rcode in _PERMANENT:
                    raise CommitError(f"UPDATE to {self.where} failed: {_PERMANENT[rcode]}")
                else:
                    raise _Transient(f"rcode {dns.rcode.to_text(rcode)}")
            except dns.tsig.PeerBadKey as exc:
                raise CommitError(f"UPDATE to {self.where} failed: BADKEY — the primary "
                                  "does not know this TSIG key name/algorithm (check "
                                  "'key:' in knot.conf and dns.knot.tsig_name)") from exc
            except dns.tsig.PeerBadSignature as exc:
                raise CommitError(f"UPDATE to {self.where} failed: BADSIG — the TSIG "
                                  "secret differs from the primary's (check "
                                  "dns.knot.tsig_secret)") from exc
            except dns.tsig.PeerBadTime as exc:
                raise CommitError(f"UPDATE to {self.where} failed: BADTIME — clocks "
                                  "differ by more than the TSIG fudge") from exc
            except (_Transient, dns.exception.Timeout, OSError, EOFError,
                    dns.xfr.TransferError, dns.exception.FormError) as exc:
                if attempts >= self.retries:
                    raise ConnectionError(f"UPDATE to {self.where} failed after {attempts} "
                                          f"attempts: {exc or type(exc).__name__}") from exc
                log.warning("UPDATE to %s: %s; retrying in %.2fs", self.where,
                            exc or type(exc).__name__, delay)
                self.have = self.serial = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if attempts >= self.retries:
                raise ConnectionError(f"UPDATE to {self.where}: zone kept changing under "
                                      f"us for {attempts} attempts")

    async def _send(self, d: Diff, serial: int) -> dns.rcode.Rcode:
        upd = dns.update.UpdateMessage(self.origin, keyring=self.keyring,
                                       keyname=self._keyname, keyalgorithm=self.algorithm)
        soa = await self._soa_rdataset()
        if soa is not None:
            # RFC 2136 §2.4.2: value-dependent prerequisite; its TTL must be zero.
            upd.present(self.origin, dns.rdataset.from_rdata(0, *list(soa)))
        for (name, rdtype), rdatas in d.delete:
            upd.delete(name, rdtype, *rdatas)
        for rr in d.replace:
            upd.replace(rr.name, rr.ttl, rr.rdtype, *rr.rdatas)
        for (name, rdtype), ttl, rdatas in d.add:
            upd.add(name, ttl, rdtype, *rdatas)
        # UDP first (no handshake: a lost SYN would cost a 1 s retransmit), TCP when the
        # UPDATE or its answer does not fit (RFC 2136 §3.8 allows either).
        if len(upd.to_wire()) <= 1232:
            resp, _ = await dns.asyncquery.udp_with_fallback(upd, self.host, port=self.port,
                                                             timeout=self.timeout_s)
        else:
            resp = await dns.asyncquery.tcp(upd, self.host, port=self.port,
                                            timeout=self.timeout_s)
        return resp.rcode()

    async def _soa_rdataset(self) -> dns.rdataset.Rdataset | None:
        return self._soa

    async def _read_serial(self) -> int:
        q = dns.message.make_query(self.origin, dns.rdatatype.SOA)
        resp = await dns.asyncquery.udp(q, self.host, port=self.port, timeout=self.timeout_s)
        rrs = resp.find_rrset(resp.answer, self.origin, dns.rdataclass.IN, dns.rdatatype.SOA)
        self._soa = rrs.to_rdataset()
        return int(rrs[0].serial)

    async def _read_zone(self) -> tuple[dict[Key, RRset], int]:
        def xfr() -> dns.zone.Zone:
            zone = dns.zone.Zone(self.origin, relativize=False)
            query, _ = dns.xfr.make_query(zone, serial=None, keyring=self.keyring,
                                          keyname=self._keyname,
                                          keyalgorithm=self.algorithm)
            dns.query.inbound_xfr(self.host, zone, query, port=self.port,
                                  timeout=self.timeout_s, lifetime=self.timeout_s * 2)
            return zone

        try:
            zone = await asyncio.to_thread(xfr)
        except dns.xfr.TransferError as exc:
            if exc.rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
                raise CommitError(f"AXFR from {self.where} refused: allow 'transfer' for "
                                  "the key in the primary's ACL") from exc
            raise
        out: dict[Key, RRset] = {}
        serial = 0
        origin = self.origin.to_text()
        for name, rdataset in zone.iterate_rdatasets():
            key = (name.to_text().lower(), dns.rdatatype.to_text(rdataset.rdtype))
            if key[0] == origin and key[1] in ("SOA", "NS"):
                if key[1] == "SOA":
                    serial = int(rdataset[0].serial)
                    self._soa = rdataset
                continue
            out[key] = RRset(key[0], key[1], rdataset.ttl,
                             tuple(sorted(r.to_text() for r in rdataset)))
        return out, serial

    _soa: dns.rdataset.Rdataset | None = None


class _Transient(Exception):
    pass


class MemoryPublisher:
    """In-process target holding the published RRsets (reference backend for the
    contract suite and for callers that want the zone without a primary)."""

    def __init__(self) -> None:
        self.held: dict[Key, RRset] = {}
        self.serial = 1
        self.updates = 0

    async def sync(self, zone: Zone) -> PublishResult:
        t0 = time.perf_counter()
        want = managed(zone)
        d = diff(self.held, want)
        if d.empty:
            return PublishResult(0, 0, 1, self.serial, time.perf_counter() - t0, skipped=True)
        self.held = dict(want)
        self.serial += 1
        self.updates += 1
        added, removed = d.counts()
        return PublishResult(added, removed, 1, self.serial, time.perf_counter() - t0)

    async def records(self) -> dict[Key, RRset]:
        return dict(self.held)
