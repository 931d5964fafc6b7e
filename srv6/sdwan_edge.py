"""SD-WAN policies pushed to Linux branch edges, kept on the underlay meeting their SLA
(GBA-6.4.3e, issue 14).

Rules:
- An edge (``sdwan_edges:`` section) is a Linux router (namespace ``netns``) with two or
  more underlays, each bound to a transport kind (``ip-private``, ``internet``, ``otn``):
  its interface ``dev``, next hop ``gateway`` and a ``probe`` address reached over it.
- Push: for every stored ``SdwanPolicy`` naming the edge among its headends, an
  nftables rule (table ``inet cpn_sdwan``, output and prerouting) marks the app's
  traffic (protocol, ports, DSCP of the resolved match) with the policy's colour, an
  ``ip rule fwmark <colour> lookup <colour>`` sends it to the policy's table, whose
  default route points at the chosen underlay. A switch is one ``ip route replace``
  (make-before-break: the new route replaces the old atomically).
- An underlay may be carried by an on-demand OTN link (``transport``: a key of
  ``optical.otn_links``): while a pushed policy lists its kind, its OTN path is asked of
  the optical layer through the reconciler's ``Transport`` extension point
  (``srv6.intents.crosslayer``) and the underlay carries nothing until that path is up
  and read back from its NEs; a refusal keeps it out (the status names it, the policy
  uses its other underlays) and is retried after ``RETRY_S``; when no pushed policy lists
  the kind any more, the OTN path is released (deleted on the NEs, read back).
- A policy naming a transport the edge has no underlay for is refused as a whole
  (state ``failed``, constraint ``transports``); nothing of it is pushed.
- SLA probes: every ``probe_interval_s`` one ICMP echo per underlay, sent from a socket
  bound to its interface; delay = mean RTT, jitter = mean |ΔRTT|, loss = unanswered
  share of the last ``window`` probes (a probe is lost once ``probe_timeout_s`` passed).
  A probe that cannot be *sent* (interface gone, no address) marks the probe source
  ``down``: reported in the status, never counted as loss, never a breach.
- ``choose`` (pure): the active underlay breaching the SLA → the most preferred other
  underlay meeting it (none meeting it: stay). Fallback with hysteresis: a more
  preferred underlay that has met the SLA for ``recover_s`` without a break takes the
  traffic back. Each switch is journaled (status put, reason with the probe figures).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import socket
import struct
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from pydantic import Field

from controller.logs import key_event
from controller.models import InterconnectKind, Model, Name
from controller.models.base import Entity, register
from controller.models.job import utcnow
from srv6.intents.crosslayer import RETRY_S, TRANSPORT_KEY, Transport
from srv6.sdwan import SdwanPolicy, SlaClass

if TYPE_CHECKING:
    from controller.runtime import Runtime
    from controller.store import Store

log = logging.getLogger("cpn.srv6.sdwan")
NFT_TABLE = "cpn_sdwan"


class UnderlayBinding(Model):
    """``dev``, ``gateway`` (next hop), ``probe`` (address answering ICMP echo),
    ``transport`` (on-demand OTN link carrying it: a key of ``optical.otn_links``)."""

    dev: str
    gateway: IPv4Address
    probe: IPv4Address
    transport: str | None = Field(default=None, min_length=1)


class EdgeBinding(Model):
    """A branch edge: ``netns`` and its ``underlays`` (transport kind → binding)."""

    netns: str | None = None
    underlays: dict[InterconnectKind, UnderlayBinding] = Field(min_length=2)


class SdwanEdgesSection(Model):
    """``sdwan_edges:``: ``edges`` (node name → binding), ``probe_interval_s``,
    ``window`` (probes per figure), ``probe_timeout_s``, ``recover_s`` (fallback
    hysteresis)."""

    edges: dict[Name, EdgeBinding] = Field(default_factory=dict)
    probe_interval_s: float = Field(default=0.1, ge=0.01, le=60)
    window: int = Field(default=10, ge=3, le=1000)
    probe_timeout_s: float = Field(default=0.25, gt=0, le=60)
    recover_s: float = Field(default=2.0, ge=0, le=3600)


class Figures(Model):
    """Probe figures of one underlay: ``delay_ms``, ``jitter_ms``, ``loss_pct``,
    ``samples``, ``source`` (``ok`` / ``down``: the probe could not be sent), ``error``."""

    delay_ms: float | None = None
    jitter_ms: float | None = None
    loss_pct: float = 0.0
    samples: int = 0
    source: str = "ok"
    error: str = ""


class Switch(Model):
    """One switch: ``from_``, ``to``, ``at``, ``why``, ``figures`` (per underlay)."""

    from_: str | None = None
    to: str
    at: datetime
    why: str
    figures: dict[str, Figures] = Field(default_factory=dict)


@register
class SdwanEdgeStatus(Entity):
    """Per (edge, policy): ``state`` (programmed / failed), ``active`` underlay,
    ``sla_met``, ``figures`` per underlay, ``constraint``/``reason``/``fix`` (failed),
    ``last_switch``, ``switches`` (count)."""

    KIND = "sdwan-edge-status"
    edge: str
    policy: str
    state: str = "pending"
    active: str | None = None
    sla_met: bool = False
    figures: dict[str, Figures] = Field(default_factory=dict)
    constraint: str | None = None
    reason: str = ""
    fix: str = ""
    last_switch: Switch | None = None
    switches: int = 0

    @property
    def key(self) -> str:
        return f"{self.edge}~{self.policy}"


# ------------------------------------------------------------------ pure: figures, choice
@dataclass(slots=True)
class Probes:
    """The last ``window`` probes of one underlay: seq → (sent, rtt ms or None)."""

    window: int
    sent: deque[tuple[int, float, float | None]] = field(default_factory=deque)
    source_error: str = ""

    def record_sent(self, seq: int, t: float) -> None:
        self.source_error = ""
        self.sent.append((seq, t, None))
        while len(self.sent) > self.window:
            self.sent.popleft()

    def record_reply(self, seq: int, t: float) -> None:
        for i, (s, ts, _) in enumerate(self.sent):
            if s == seq:
                self.sent[i] = (s, ts, (t - ts) * 1e3)
                return

    def figures(self, now: float, timeout: float) -> Figures:
        if self.source_error:
            return Figures(source="down", error=self.source_error)
        done = [(s, ts, r) for s, ts, r in self.sent if r is not None or now - ts >= timeout]
        rtts = [r for _, _, r in done if r is not None]
        if not done:
            return Figures()
        jit = [abs(b - a) for a, b in itertools.pairwise(rtts)]
        return Figures(delay_ms=sum(rtts) / len(rtts) if rtts else None,
                       jitter_ms=sum(jit) / len(jit) if jit else 0.0,
                       loss_pct=100.0 * (len(done) - len(rtts)) / len(done),
                       samples=len(done))


def meets(f: Figures, sla: SlaClass) -> bool:
    if f.source != "ok" or f.samples < 3 or f.delay_ms is None:
        return False
    return not ((sla.max_delay_ms is not None and f.delay_ms > sla.max_delay_ms)
                or (sla.max_jitter_ms is not None and (f.jitter_ms or 0) > sla.max_jitter_ms)
                or (sla.max_loss_pct is not None and f.loss_pct > sla.max_loss_pct))


def choose(prefs: list[str], figs: dict[str, Figures], sla: SlaClass, active: str | None,
           good_since: dict[str, float], now: float, recover_s: float
           ) -> tuple[str | None, str]:
    """(underlay to use, why). See the module rules."""
    ok = {u: meets(figs[u], sla) for u in prefs if u in figs}
    if active is None:
        best = next((u for u in prefs if ok.get(u)), prefs[0])
        return best, "first placement"
    f = figs.get(active, Figures())
    if f.source == "ok" and f.samples >= 3 and not ok.get(active):
        alt = next((u for u in prefs if u != active and ok.get(u)), None)
        if alt is not None:
            return alt, f"{active} breaches the SLA"
        return active, f"{active} breaches the SLA and no other underlay meets it"
    for u in prefs:
        if u == active:
            break
        if ok.get(u) and now - good_since.get(u, now) >= recover_s:
            return u, f"{u} met the SLA for {recover_s:g} s: fallback"
    why = f"{active} probe source down: not judged" if f.source == "down" else "holds"
    return active, why


# ------------------------------------------------------------------ I/O at the edge
def _checksum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return int(~s & 0xFFFF)


def _echo(ident: int, seq: int) -> bytes:
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    body = b"cpn-sdwan-probe!"
    return struct.pack("!BBHHH", 8, 0, _checksum(hdr + body), ident, seq) + body


def _run(netns: str | None, argv: list[str], stdin: str | None = None) -> None:
    full = ["ip", "netns", "exec", netns, *argv] if netns else argv
    res = subprocess.run(full, capture_output=True, text=True, timeout=10, input=stdin)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")


def nft_rules(policies: list[SdwanPolicy]) -> str:
    """The edge's nftables table: each policy's app traffic marked with its colour."""
    lines = [f"table inet {NFT_TABLE} {{"]
    for chain, hook in (("out", "type route hook output priority mangle;"),
                        ("pre", "type filter hook prerouting priority mangle;")):
        lines.append(f"  chain {chain} {{ {hook}")
        for p in policies:
            m = p.resolved_match()
            parts = []
            if m.dscp is not None:
                parts.append(f"ip dscp {m.dscp}")
            if m.protocol in ("udp", "tcp"):
                if m.dst_ports:
                    parts.append(f"{m.protocol} dport {m.dst_ports}")
                else:
                    parts.append(f"meta l4proto {m.protocol}")
            if m.dst is not None:
                parts.append(f"ip daddr {m.dst}")
            lines.append(f"    {' '.join(parts)} meta mark set {p.color}")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


class EdgeRunner:
    """Probes, decides and steers for one edge (a thread; see the module rules)."""

    def __init__(self, name: str, b: EdgeBinding, sec: SdwanEdgesSection,
                 on_switch: Any = None) -> None:
        from srv6.dataplane.rtnl import in_netns

        self.name, self.b, self.sec = name, b, sec
        self.on_switch = on_switch
        self.probes = {k.value: Probes(sec.window) for k in b.underlays}
        self.good_since: dict[str, float] = {}
        self.active: dict[str, str | None] = {}
        self.policies: list[SdwanPolicy] = []
        #: underlay → why it may not carry traffic (its OTN path is not up)
        self.unavailable: dict[str, str] = {
            k.value: f"OTN path of {ub.transport} not provisioned yet"
            for k, ub in b.underlays.items() if ub.transport}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._ident = (os.getpid() ^ id(self)) & 0xFFFF
        self.socks: dict[str, socket.socket] = {}
        for k, ub in b.underlays.items():
            def make(dev: str = ub.dev) -> socket.socket:
                s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
                s.setblocking(False)
                return s
            self.socks[k.value] = in_netns(b.netns, make)
        self._thread = threading.Thread(target=self._loop, name=f"sdwan-{name}", daemon=True)

    def push(self, policies: list[SdwanPolicy]) -> dict[str, str]:
        """Install classification for ``policies`` (those this edge can carry); returns
        policy → refusal for the others."""
        have = {k.value for k in self.b.underlays}
        bad = {p.name: ", ".join(t.value for t in p.transports if t.value not in have)
               for p in policies if any(t.value not in have for t in p.transports)}
        good = [p for p in policies if p.name not in bad]
        _run(self.b.netns, ["nft", "-f", "-"],
             f"table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n" + nft_rules(good))
        for p in good:
            with contextlib.suppress(RuntimeError):  # already there
                _run(self.b.netns, ["ip", "rule", "add", "fwmark", str(p.color), "lookup",
                                    str(p.color), "priority", str(10000 + p.priority)])
        with self.lock:
            self.policies = good
        return bad

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for s in self.socks.values():
            s.close()

    def steer(self, p: SdwanPolicy, underlay: str) -> None:
        ub = self.b.underlays[InterconnectKind(underlay)]
        _run(self.b.netns, ["ip", "route", "replace", "default", "via", str(ub.gateway),
                            "dev", ub.dev, "table", str(p.color)])

    def figures(self) -> dict[str, Figures]:
        now = time.monotonic()
        with self.lock:
            off = dict(self.unavailable)
        return {u: Figures(source="down", error=off[u]) if u in off
                else pr.figures(now, self.sec.probe_timeout_s)
                for u, pr in self.probes.items()}

    def _loop(self) -> None:
        seq = 0
        nxt = time.monotonic()
        while not self._stop.is_set():
            seq = (seq + 1) & 0xFFFF
            for u, s in self.socks.items():
                ub = self.b.underlays[InterconnectKind(u)]
                try:
                    s.sendto(_echo(self._ident, seq), (str(ub.probe), 0))
                    self.probes[u].record_sent(seq, time.monotonic())
                except OSError as exc:
                    self.probes[u].source_error = f"{ub.dev}: {exc.strerror or exc}"
            nxt += self.sec.probe_interval_s
            while (left := nxt - time.monotonic()) > 0:
                ready, _, _ = select.select(list(self.socks.values()), [], [], left)
                now = time.monotonic()
                for u, s in self.socks.items():
                    if s in ready:
                        with contextlib.suppress(BlockingIOError, OSError):
                            while True:
                                pkt = s.recv(2048)
                                ihl = (pkt[0] & 0x0F) * 4
                                typ, _, _, ident, rseq = struct.unpack(
                                    "!BBHHH", pkt[ihl:ihl + 8])
                                if typ == 0 and ident == self._ident:
                                    self.probes[u].record_reply(rseq, now)
            self._evaluate()

    def _evaluate(self) -> None:
        now = time.monotonic()
        figs = self.figures()
        with self.lock:
            policies = list(self.policies)
        for p in policies:
            for u, f in figs.items():
                if meets(f, p.sla):
                    self.good_since.setdefault(f"{p.name}/{u}", now)
                else:
                    self.good_since.pop(f"{p.name}/{u}", None)
            with self.lock:
                off = dict(self.unavailable)
            prefs = [t.value for t in p.transports if t.value not in off]
            if not prefs:
                continue
            prev = cur = self.active.get(p.name)
            if cur is not None and cur in off:  # its OTN path went away: re-place now
                cur = None
            since = {u: self.good_since[f"{p.name}/{u}"] for u in prefs
                     if f"{p.name}/{u}" in self.good_since}
            new, why = choose(prefs, figs, p.sla, cur, since, now, self.sec.recover_s)
            if prev is not None and cur is None:
                why = f"{prev} unavailable: {off[prev]}"
            if new is not None and new != prev:
                try:
                    self.steer(p, new)
                except RuntimeError as exc:
                    log.error("sdwan %s %s: steering to %s failed: %s", self.name, p.name,
                              new, exc)
                    continue
                self.active[p.name] = new
                if self.on_switch is not None:
                    self.on_switch(self, p, prev, new, why, figs)


class SdwanEdges:
    """The component: pushes stored SD-WAN policies to the configured edges, runs their
    probes, journals every switch in ``SdwanEdgeStatus``."""

    name = "sdwan-edges"
    leader_only = True  # writes nftables, rules and routes at the edges

    def __init__(self, sec: SdwanEdgesSection) -> None:
        self.sec = sec
        self.runners: dict[str, EdgeRunner] = {}
        self.store: Store | None = None
        self.rt: Runtime | None = None
        #: the optical layer (set here, or registered by the optical plug-in)
        self.transport: Transport | None = None
        self.otn_events: list[Any] = []  # ensure/release results, newest last
        self._tried: dict[str, tuple[float, str]] = {}  # link → (when, why) it failed
        self._wanted: set[tuple[str, str]] = set()  # (edge, underlay) needed, not up
        self._sync_lock = threading.Lock()

    def sync(self, store: Store) -> None:
        """(Re)push the stored policies to every edge; failed ones get their status."""
        with self._sync_lock:
            self._sync(store)

    def _sync(self, store: Store) -> None:
        self.store = store
        pols = store.list(SdwanPolicy)
        for name, b in self.sec.edges.items():
            r = self.runners.get(name)
            if r is None:
                r = self.runners[name] = EdgeRunner(name, b, self.sec, self._switched)
                r.start()
            mine = [p for p in pols if name in p.headends]
            bad = r.push(mine)
            self._otn(r, [p for p in mine if p.name not in bad])
            with store.transaction("sdwan", f"sdwan: {name} policies pushed") as txn:
                for p in mine:
                    key = f"{name}~{p.name}"
                    cur = txn.get(SdwanEdgeStatus, key)
                    if p.name in bad:
                        st = SdwanEdgeStatus(
                            edge=name, policy=p.name, state="failed",
                            constraint="transports",
                            reason=f"{name} has no underlay for {bad[p.name]}",
                            fix=f"add the underlay under sdwan_edges.edges.{name}.underlays "
                                "or drop it from the policy's transports")
                        if cur != st:
                            txn.put(st)
                    elif cur is None or cur.state != "programmed":
                        txn.put(SdwanEdgeStatus(edge=name, policy=p.name,
                                                state="programmed",
                                                reason="pushed; waiting for probes"))

    def _transport(self) -> Transport | None:
        t = self.transport
        if t is None and self.rt is not None:
            t = self.rt.settings.extra.get(TRANSPORT_KEY)
        return t if isinstance(t, Transport) else None

    def _otn(self, r: EdgeRunner, good: list[SdwanPolicy]) -> None:
        """The OTN paths of ``r``'s transport-backed underlays: ensured while a pushed
        policy lists the kind, released when none does (see the module rules)."""
        used = {t.value for p in good for t in p.transports}
        t = self._transport()
        for kind, ub in r.b.underlays.items():
            link, u = ub.transport, kind.value
            if not link:
                continue
            why: str | None
            if u not in used:
                why = f"no policy uses {u}: its OTN path ({link}) is released"
                with r.lock:
                    r.unavailable[u] = why
                    self._wanted.discard((r.name, u))
                if t is not None and link in t.provisioned():
                    res = t.release(link)
                    self._note(res)
                    key_event(log, "sdwan OTN underlay released" if res.ok else
                              "sdwan OTN underlay not released (retried)", edge=r.name,
                              link=link, reason=res.reason)
                continue
            if t is None:
                why = (f"no optical transport is registered for {link} (give it under "
                       "optical.otn_links)")
            elif t.up(link):
                why = None
            elif (last := self._tried.get(link)) and time.monotonic() - last[0] < RETRY_S:
                why = last[1]
            else:
                res = t.ensure(link)
                self._note(res)
                why = None if res.ok else (f"OTN path of {link}: {res.constraint}: "
                                           f"{res.reason}")
                if why is None:
                    self._tried.pop(link, None)
                else:
                    self._tried[link] = (time.monotonic(), why)
                key_event(log, "sdwan OTN underlay up" if res.ok else
                          "sdwan OTN underlay unavailable", edge=r.name, link=link,
                          path=res.path, ms=round(res.elapsed_ms, 1), reason=res.reason)
            with r.lock:
                if why is None:
                    r.unavailable.pop(u, None)
                    self._wanted.discard((r.name, u))
                else:
                    r.unavailable[u] = why
                    self._wanted.add((r.name, u))

    def _note(self, res: Any) -> None:
        self.otn_events.append(res)
        del self.otn_events[:-50]

    def _switched(self, r: EdgeRunner, p: SdwanPolicy, old: str | None, new: str, why: str,
                  figs: dict[str, Figures]) -> None:
        if self.store is None:
            return
        text = ", ".join(f"{u}: delay {f.delay_ms if f.delay_ms is None else round(f.delay_ms, 2)}"
                         f" ms, jitter {round(f.jitter_ms or 0, 2)} ms, loss "
                         f"{round(f.loss_pct, 1)} %, source {f.source}"
                         for u, f in figs.items())
        key = f"{r.name}~{p.name}"
        with self.store.transaction("sdwan", f"sdwan {key}: {old} -> {new}: {why}; {text}"
                                    ) as txn:
            cur = txn.get(SdwanEdgeStatus, key) or SdwanEdgeStatus(edge=r.name,
                                                                    policy=p.name)
            txn.put(cur.model_copy(update={
                "state": "programmed", "active": new, "sla_met": meets(figs[new], p.sla),
                "figures": figs, "reason": why, "switches": cur.switches + 1,
                "last_switch": Switch(from_=old, to=new, at=utcnow(), why=why,
                                      figures=figs)}))
        key_event(log, "sdwan switch", edge=r.name, policy=p.name, to=new, why=why)

    async def start(self, rt: Runtime) -> None:
        import asyncio

        from controller.events import StateChanged

        self.rt = rt
        await asyncio.to_thread(self.sync, rt.store)

        loop = asyncio.get_running_loop()

        def changed(ev: StateChanged) -> None:  # may be called from a writer's thread
            if SdwanPolicy.KIND in ev.kinds():
                loop.call_soon_threadsafe(
                    lambda: loop.run_in_executor(None, self.sync, rt.store))

        self._unsub = rt.bus.on(StateChanged, changed)
        if any(ub.transport for b in self.sec.edges.values() for ub in b.underlays.values()):
            self._retry = asyncio.create_task(self._retry_loop(rt), name="sdwan-otn")

    async def _retry_loop(self, rt: Runtime) -> None:
        """OTN underlays that a policy needs but are not up (refused, or the optical
        plug-in registered after this component started) are tried again."""
        import asyncio

        while True:
            await asyncio.sleep(RETRY_S / 2)
            if self._wanted:
                await asyncio.to_thread(self.sync, rt.store)

    async def stop(self) -> None:
        import asyncio

        task = getattr(self, "_retry", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if getattr(self, "_unsub", None) is not None:
            self._unsub()
        for r in self.runners.values():
            r.stop()
