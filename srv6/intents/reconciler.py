"""The SR policy reconciler: desired intents in, reconciled network out, status written
back (GBA-6.4.3c; DESIGN §1; Kubernetes controller style).

Rules:
- Level-triggered: every pass reads the whole desired state (intents, topology, SIDs)
  and the whole actual state (each node's CPN routes through its ``PolicyProgrammer``),
  plans (``srv6.intents.planner``, pure) and applies the difference. A pass runs on any
  change of an intent or of the topology (links, routers, sites, locators, local SIDs,
  affinities) and every ``readback_s`` (drift repair); bursts coalesce into one pass.
- Delay and available bandwidth that moved less than ``hysteresis_pct`` since the last
  plan are planned with the old value (no flapping re-plans); link state always counts.
- Every change goes through the one make-before-break implementation
  (``srv6.dataplane.mbb``): new SIDs everywhere, read back, headends switched by atomic
  replace, then old routes removed.
- A node that refuses a commit or cannot be reached: MBB undoes the pass (previous
  paths kept); the node is then frozen for the pass (its routes stay as they are), the
  intents that needed a change on it are held on their previous routes and reported
  ``degraded`` naming the device, the error and the fix; no SID is removed anywhere in
  such a pass (a held path may still use it); every other intent is programmed. The
  next pass retries.
- A pass for an event takes the routers as the last pass read them and reads back only
  the ones it changes; the periodic read-back is spread out: every ``readback_s / 4``
  a pass reads the quarter of the routers read longest ago (each router at least every
  ``readback_s``), so a pass for an event never waits behind a read of all of them.
- Drift: a pass whose plan equals the last applied plan but finds ops to do repaired
  drift (a route deleted or altered by hand restored, a stale one removed); each
  repaired op counts in ``cpn_srv6_intent_repairs_total``.
- In a cluster (issue 16) a follower opens its netlink / node-agent programmers ahead
  of an election (``standby``), so taking over costs the first pass only.
- Restart: SIDs are persisted (``srv6.sid``) and planning is deterministic, so the first
  pass after a restart finds the network already right and changes nothing.
- Status (``SrPolicyIntentStatus``) is written only when it changes; statuses of deleted
  intents are removed after their routes are.
- All dataplane I/O runs on one worker thread (pyroute2 sockets are not shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.errors import CpnError
from controller.events import StateChanged
from controller.logs import key_event
from controller.models import Link, LinkState, Router, Site
from controller.models.job import utcnow
from srv6.dataplane.mbb import execute, plan_switch
from srv6.dataplane.programmer import MemoryProgrammer, PolicyProgrammer
from srv6.dataplane.state import NodeState, Route, Seg6LocalRoute, Seg6Route, SrPolicyRoute
from srv6.intents.bindings import locators_by_node, make_programmer
from srv6.intents.crosslayer import TRANSPORT_KEY, CrossLayer, Transport, awaiting_transport
from srv6.intents.models import (
    IntentsSection,
    IntentState,
    SrPolicyIntentStatus,
)
from srv6.intents.planner import Binding, Egress, Plan, plan_intents, reconcile
from srv6.intents.status import intent_status, material, spec_digest
from srv6.models import LinkAffinity, LocalSid, Locator, SrPolicyIntent
from srv6.paths import Topology

if TYPE_CHECKING:
    from controller.runtime import Runtime
    from controller.store.base import Store

log = logging.getLogger("cpn.srv6.intents")

#: programmers a follower opens ahead of an election (no effect visible to the router)
STANDBY_PROGRAMMERS = frozenset({"netlink", "agent"})
WATCHED = {SrPolicyIntent.KIND, Link.KIND, Router.KIND, Site.KIND, Locator.KIND,
           LocalSid.KIND, LinkAffinity.KIND}
DX4_OWNER, DX6_OWNER = "dx4:{}", "dx6:{}"
#: the periodic read-back reads 1/READBACK_SLICES of the routers every
#: readback_s / READBACK_SLICES (each router at least every readback_s)
READBACK_SLICES = 4


@dataclass
class PassReport:
    """One pass: ``ops`` applied, ``repairs`` (drift ops), ``frozen`` (node → error),
    ``elapsed_ms``, ``changed`` intents; where the time went: ``plan_ms`` (topology,
    CSPF, SIDs), ``program_ms`` (make-before-break on the devices), ``readback_ms``
    (reading back the devices the pass changed); ``started_ns``/``status_ns``: monotonic
    ns at the pass's start and its status commit (lab stage measurements)."""

    ops: int = 0
    repairs: int = 0
    frozen: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    plan_ms: float = 0.0
    program_ms: float = 0.0
    readback_ms: float = 0.0
    changed: list[str] = field(default_factory=list)
    #: the make-before-break steps run: "phase:node ms"
    steps: list[str] = field(default_factory=list)
    started_ns: int = 0
    status_ns: int = 0
    #: CPU time the pass's thread spent (wall minus this: waiting for a core or the GIL)
    cpu_ms: float = 0.0


class IntentReconciler:
    """The component (``name`` = ``srv6-intents``); usable without a runtime through
    ``reconcile_once(store)`` (tests, benches)."""

    name = "srv6-intents"
    #: programs the routers: in a cluster only the leader runs it (issue 16); it stops
    #: and starts again as leadership comes and goes, tearing nothing down on stop
    leader_only = True

    def __init__(self, sec: IntentsSection,
                 programmers: Mapping[str, PolicyProgrammer] | None = None) -> None:
        self.sec = sec
        self.programmers: dict[str, PolicyProgrammer] = dict(programmers or {})
        self.rt: Runtime | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srv6-intents")
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unsub: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._applied: Mapping[str, NodeState] | None = None
        self._used_links: dict[str, Link] = {}
        self._sids: tuple[str, dict[str, Any]] | None = None
        self.repairs_total = 0
        self.passes = 0
        self.last: PassReport | None = None
        self.first: PassReport | None = None  # a restart's first pass (0 ops: nothing torn)
        self.listeners: list[Callable[[list[SrPolicyIntentStatus]], None]] = []
        self.verifier: Any = None
        self._metrics: dict[str, Any] = {}
        self._memo: dict[str, Any] = {}
        self._watch: Any = None
        self._ifpoll: Any = None
        self._probed: dict[tuple[str, tuple[str, ...]], float] = {}
        self._verify_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srv6-probe")
        self._verifying = False
        self._seen: dict[str, NodeState] = {}  # routers as the last pass read them
        self._open_failed: set[str] = set()
        self._seen_at: dict[str, float] = {}  # node -> when it was last read
        self._ends: dict[tuple[str, str], bool] = {}
        self._owned: set[str] = set()  # routers whose programmer this component opened
        #: the optical layer's on-demand links (set here, or registered by the optical
        #: plug-in as rt.settings.extra[TRANSPORT_KEY]); see srv6.intents.crosslayer
        self.transport: Transport | None = None
        self.crosslayer: CrossLayer | None = None
        self._awaiting: dict[str, float] = {}  # when passes began to wait for it

    # ------------------------------------------------------------------ component
    def _fresh_pools(self) -> None:
        if self._pool._shutdown:  # started again after a stop (leadership regained)
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srv6-intents")
            self._verify_pool = ThreadPoolExecutor(max_workers=1,
                                                   thread_name_prefix="srv6-probe")

    async def standby(self, rt: Runtime) -> None:
        """A follower of a cluster gets ready to lead (issue 16): it opens the netlink
        and node-agent programmers now — sockets and sessions only (a netlink node is
        also prepared: interfaces read, SRH processing enabled, no route), nothing is
        read into a plan or written — so an election costs the first pass, not opening every
        router (seconds on a loaded host). BGP SR Policy sessions are opened only when
        leading (a session is itself visible to the router)."""
        self._fresh_pools()
        await asyncio.get_running_loop().run_in_executor(
            self._pool, self._open_programmers, STANDBY_PROGRAMMERS)

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        rt.settings.extra["srv6-intents"] = self
        self._fresh_pools()
        self._seen.clear()  # another leader may have changed the routers meanwhile
        if not self._metrics:
            self._register_metrics(rt)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._open_programmers)
        self._unsub = rt.bus.on(StateChanged, self._on_change)
        if self.sec.watch_links:
            self._start_linkwatch(loop)
        if self.sec.ifstate:
            from srv6.intents.ifpoll import InterfacePoller

            self._ifpoll = InterfacePoller(self.sec.ifstate, self.sec.ifstate_s,
                                           self.link_event)
            self._ifpoll.start()
        await self.run_pass()
        self._task = asyncio.create_task(self._loop(), name="srv6-intents")

    def _open_programmers(self, kinds: frozenset[str] | None = None) -> dict[str, str]:
        """Open the backend of every bound router not open yet (only those of ``kinds``
        when given); a router that cannot be opened (namespace missing, agent down) is
        reported (→ frozen for this pass) and retried at the next pass — it never stops
        the controller from starting."""
        failed: dict[str, str] = {}
        for node, b in self.sec.nodes.items():
            if node in self.programmers or (kinds is not None and b.programmer not in kinds):
                continue
            try:
                self.programmers[node] = make_programmer(node, b)
                self._owned.add(node)
            except (CpnError, OSError) as exc:
                failed[node] = f"unreachable: {exc}"
                if node not in self._open_failed:
                    log.error("cannot open the %s programmer of %s: %s; fix: check "
                              "intents.nodes.%s (namespace, agent URL, certificates); "
                              "retried every pass", b.programmer, node, exc, node)
        self._open_failed = set(failed)
        return failed

    # ------------------------------------------------------------------ link state
    def _start_linkwatch(self, loop: asyncio.AbstractEventLoop) -> None:
        from srv6.intents.linkwatch import LinkWatcher

        nodes = {n: b for n, b in self.sec.nodes.items() if b.programmer == "netlink"
                 and (not b.netns or os.path.exists(f"/var/run/netns/{b.netns}"))}
        for n in sorted(set(self.sec.nodes) - set(nodes)):
            if self.sec.nodes[n].programmer == "netlink":
                log.error("link watch: namespace %s of %s does not exist; its carrier is "
                          "not followed", self.sec.nodes[n].netns, n)
        if not nodes:
            return

        def changed(node: str, dev: str, up: bool) -> None:
            loop.call_soon_threadsafe(self.link_event, node, dev, up)
        self._watch = LinkWatcher({n: b.netns for n, b in nodes.items()},
                                  {n: set(b.devs.values()) for n, b in nodes.items()},
                                  changed)
        self._watch.start()

    def link_event(self, node: str, dev: str, up: bool) -> None:
        """An interface of ``node`` went up or down (kernel carrier, or RFC 8343
        oper-status over NETCONF): write the link's state (up iff every end we watch is
        up); the store change triggers the re-plan."""
        assert self.rt is not None
        b = self.sec.nodes.get(node)
        keys = [k for k, d in (b.devs.items() if b else ()) if d == dev]
        for key in keys:
            self._ends[(key, node)] = up
            link_up = all(v for (k, _n), v in self._ends.items() if k == key)
            link = self.rt.store.get(Link, key)
            want = LinkState.UP if link_up else LinkState.DOWN
            if link is None or link.state is want:
                continue
            with self.rt.store.transaction("srv6.linkwatch",
                                           f"{node} {dev} carrier {'up' if up else 'down'}"
                                           ) as txn:
                txn.put(link.model_copy(update={"state": want}))
            key_event(log, "link " + want.value, link=key, node=node, dev=dev)

    async def stop(self) -> None:
        if self._unsub is not None:
            self._unsub()
        if self._watch is not None:
            self._watch.stop()
        if self._ifpoll is not None:
            await self._ifpoll.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        loop = asyncio.get_running_loop()
        for node, prog in list(self.programmers.items()):
            if isinstance(prog, MemoryProgrammer):
                continue  # an in-memory programmer is the device itself: nothing to release
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._pool, prog.close)
            if node in self._owned:  # reopened by the next start (leadership regained)
                del self.programmers[node]
        self._owned.clear()
        self._pool.shutdown(wait=False)
        self._verify_pool.shutdown(wait=False)

    def _on_change(self, ev: StateChanged) -> None:
        if ev.actor == self.name:
            return
        if any(c.kind in WATCHED for c in ev.changes):
            self._wake.set()

    def kick(self) -> None:
        """Ask for a pass now (e.g. after a link event)."""
        self._wake.set()

    def program_now(self, wait_s: float) -> bool:
        """Run an ordinary event pass now on the dataplane thread, holding the caller
        (the event loop) up to ``wait_s`` for it: a flow move (``srv6.flows``) is then
        not queued behind loop work its metrics change woke, which would also take the
        GIL from it. Not with the cross-layer step (the optical transport answers on
        the loop). False: not run, or still running (its status event follows)."""
        if self.rt is None or wait_s <= 0 or self._pool._shutdown or \
                self._crosslayer() is not None:
            return False
        try:
            fut = self._pool.submit(self.reconcile_once, self.rt.store, False, 0)
        except RuntimeError:  # stopping (leadership lost): the pool takes no more work
            return False
        try:
            fut.result(timeout=wait_s)
        except TimeoutError:
            return False
        except Exception:
            log.exception("srv6 intents: pass failed; network left as it was")
            return False
        return True

    async def _loop(self) -> None:
        # the read-back is spread over READBACK_SLICES ticks per readback_s: each tick
        # reads the routers read longest ago, so every router is read at least every
        # readback_s and a pass for an event never waits behind a read of all of them
        tick = self.sec.readback_s / READBACK_SLICES
        next_tick = time.monotonic() + tick
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_tick - time.monotonic())):
                    await self._wake.wait()
            self._wake.clear()
            slice_ = time.monotonic() >= next_tick
            if slice_:
                next_tick = time.monotonic() + tick
            try:
                await self.run_pass(False, READBACK_SLICES if slice_ else 0)
            except Exception:
                log.exception("srv6 intents: pass failed; network left as it was")

    async def run_pass(self, full: bool = True, slices: int = 0) -> PassReport:
        assert self.rt is not None
        store = self.rt.store
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.reconcile_once, store, full, slices)

    # ------------------------------------------------------------------ metrics
    def _register_metrics(self, rt: Runtime) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        reg = rt.metrics
        self._metrics = {
            "repairs": Counter("cpn_srv6_intent_repairs_total",
                               "Routes the intent reconciler restored or removed after drift",
                               registry=reg),
            "ops": Counter("cpn_srv6_intent_ops_total", "Route ops the reconciler applied",
                           registry=reg),
            "pass": Histogram("cpn_srv6_intent_pass_seconds", "Reconciler pass duration",
                              buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5),
                              registry=reg),
            "state": Gauge("cpn_srv6_intents", "SR policy intents by state", ["state"],
                           registry=reg),
        }

    def _observe(self, rep: PassReport, states: Mapping[str, IntentState]) -> None:
        m = self._metrics
        if not m:
            return
        m["repairs"].inc(rep.repairs)
        m["ops"].inc(rep.ops)
        m["pass"].observe(rep.elapsed_ms / 1e3)
        for st in IntentState:
            m["state"].labels(st.value).set(sum(1 for s in states.values() if s is st))

    # ------------------------------------------------------------------ inputs
    def _topology(self, store: Store, down: Collection[str] = ()) -> Topology:
        links = []
        h = self.sec.hysteresis_pct / 100.0
        used: dict[str, Link] = {}
        for link in store.list(Link):
            old = self._used_links.get(link.key)
            if old is not None and old.state == link.state:
                upd: dict[str, Any] = {}
                if abs(link.delay_ms - old.delay_ms) <= h * max(old.delay_ms, 1e-9):
                    upd["delay_ms"] = old.delay_ms
                if abs(link.available - old.available) <= h * max(old.available, 1e-9):
                    upd["available_mbps"] = old.available_mbps
                if upd:
                    link = link.model_copy(update=upd)
            used[link.key] = link
            if link.key in down:  # unavailable for this plan only (srv6.intents.crosslayer)
                link = link.model_copy(update={"state": LinkState.DOWN})
            links.append(link)
        self._used_links = used
        return Topology.build(links, store.list(Router), store.list(Site),
                              affinities=store.list(LinkAffinity),
                              locators=store.list(Locator), local_sids=store.list(LocalSid))

    def _allocate(self, store: Store, topo: Topology) -> tuple[dict[str, Egress],
                                                              dict[str, str]]:
        """Node End SIDs and egress End.DX4/DX6 SIDs through the persisted allocator."""
        from srv6.sid import END_FUNCTION, SidAllocator

        locs = locators_by_node(store)
        sig = json.dumps(sorted((n, str(loc.prefix)) for n, loc in locs.items())
                         + sorted(self.sec.endpoints))
        if self._sids is not None and self._sids[0] == sig:
            cached = self._sids[1]
            self._apply_node_sids(topo, cached["nodes"])
            return cached["egress"], cached["errors"]
        errors: dict[str, str] = {}
        node_sids: dict[str, str] = {}
        for node in self.sec.nodes:
            loc = locs.get(node)
            if loc is None:
                continue
            try:
                node_sids[node] = str(SidAllocator(store, loc, actor=self.name).allocate(
                    f"node:{node}", function=END_FUNCTION))
            except CpnError as exc:
                errors[node] = str(exc)
        egress: dict[str, Egress] = {}
        for node, eb in self.sec.endpoints.items():
            loc = locs.get(node)
            sid4 = sid6 = None
            if loc is not None and node not in errors:
                alloc = SidAllocator(store, loc, actor=self.name)
                try:
                    if eb.nh4 is not None:
                        sid4 = str(alloc.allocate(DX4_OWNER.format(node)))
                    if eb.nh6 is not None:
                        sid6 = str(alloc.allocate(DX6_OWNER.format(node)))
                except CpnError as exc:
                    errors[node] = str(exc)
            egress[node] = Egress(eb.dev, dict(eb.prefixes),
                                  str(eb.nh4) if eb.nh4 else None,
                                  str(eb.nh6) if eb.nh6 else None, sid4, sid6)
        self._sids = (sig, {"nodes": node_sids, "egress": egress, "errors": errors})
        self._apply_node_sids(topo, node_sids)
        return egress, errors

    @staticmethod
    def _apply_node_sids(topo: Topology, node_sids: Mapping[str, str]) -> None:
        from ipaddress import IPv6Address

        for node, sid in node_sids.items():
            u = topo.index.get(node)
            if u is not None:
                topo.node_sids[u] = IPv6Address(sid)

    def plan(self, store: Store, down: Collection[str] = ()
             ) -> tuple[Plan, list[SrPolicyIntent]]:
        """The plan for the stored intents; ``down`` links are planned as down."""
        topo = self._topology(store, down)
        egress, errors = self._allocate(store, topo)
        binding = Binding({n: dict(b.devs) for n, b in self.sec.nodes.items()}, egress,
                          errors, routers=tuple(sorted(
                              n for n, b in self.sec.nodes.items()
                              if b.programmer == "bgp-sr-policy")),
                          addresses={r.name: str(r.loopback) for r in store.list(Router)
                                     if r.loopback is not None})
        intents = store.list(SrPolicyIntent)
        return plan_intents(topo, intents, binding, strict=self.sec.segments == "strict",
                            protect=self.sec.protect, memo=self._memo), intents

    # ------------------------------------------------------------------ the pass
    def reconcile_once(self, store: Store, full: bool = True, slices: int = 0
                       ) -> PassReport:
        """One pass. ``full`` reads every router back; otherwise routers are taken as
        the last pass left them, except the 1/``slices`` read longest ago (the periodic
        read-back, drift repair) — and the ones the pass changes are read back."""
        with self._lock:
            return self._pass(store, full, slices)

    def _stale(self, slices: int) -> set[str]:
        if slices <= 0:
            return set()
        n = max(1, -(-len(self.programmers) // slices))
        return set(sorted(self.programmers, key=lambda x: self._seen_at.get(x, 0.0))[:n])

    def _pass(self, store: Store, full: bool = True, slices: int = 0) -> PassReport:
        t0 = time.perf_counter()
        rep = PassReport(started_ns=time.monotonic_ns())
        c0 = time.thread_time()
        if self.transport is None and self.rt is not None and \
                awaiting_transport(self.rt, self._awaiting):
            return rep  # routes over on-demand OTN links wait for the optical layer
        plan, intents = self.plan(store)
        xl = self._crosslayer()
        if xl is not None:  # on-demand OTN links up (read back) before steering onto them
            plan = xl.before(plan, lambda down: self.plan(store, down)[0])
        rep.plan_ms = (time.perf_counter() - t0) * 1e3
        actual: dict[str, NodeState] = {}
        if self.rt is not None:  # a router that could not be opened: try again
            rep.frozen.update(self._open_programmers())
        stale = self._stale(slices)
        for node, prog in self.programmers.items():
            if not full and node in self._seen and node not in stale:
                actual[node] = self._seen[node]
                continue
            try:
                actual[node] = prog.read_actual()
                self._seen_at[node] = time.monotonic()
            except (CpnError, OSError) as exc:
                rep.frozen[node] = f"unreachable: {exc}"
        held: dict[str, tuple[str, str]] = {}  # intent -> (device, error)
        target = self._target(plan, actual, rep.frozen, held)
        drift = self._applied is not None and _same(self._applied, plan.nodes)
        for _ in range(len(self.programmers) + 1):
            todo = reconcile(target, {n: actual[n] for n in target})
            if not todo:
                break
            heads = sorted(n for n, ops in todo.items()
                           if any(isinstance(o.route, Seg6Route | SrPolicyRoute)
                                  for o in ops))
            sub_actual = {n: actual[n] for n in todo}
            sw = plan_switch(sub_actual, {n: target[n] for n in todo}, heads or sorted(todo))
            t_exec = time.perf_counter()
            res = execute(sw, {n: self.programmers[n] for n in todo})
            t_read = time.perf_counter()
            rep.program_ms += (t_read - t_exec) * 1e3
            rep.steps += [f"{s.phase}:{s.node} {s.elapsed_ms:.2f}" for s in res.steps]
            if res.ok:
                n_ops = sum(len(o) for o in todo.values())
                rep.ops += n_ops
                if drift and not held and not rep.frozen:
                    rep.repairs += n_ops
                for n in todo:  # read back what the routers now hold
                    try:
                        actual[n] = self.programmers[n].read_actual()
                        self._seen_at[n] = time.monotonic()
                    except (CpnError, OSError) as exc:
                        rep.frozen[n] = f"unreachable: {exc}"
                        actual.pop(n, None)
                rep.readback_ms += (time.perf_counter() - t_read) * 1e3
                break
            node = res.failed_step.split(":", 1)[1]
            rep.frozen[node] = f"refused: {res.error}"
            key_event(log, "device refused SR policy commit; pass rolled back", device=node,
                      step=res.failed_step, error=res.error)
            for n in todo:  # MBB undid what it applied: re-read what is there now
                with contextlib.suppress(CpnError, OSError):
                    actual[n] = self.programmers[n].read_actual()
            target = self._target(plan, actual, rep.frozen, held)
        if not rep.frozen and not held:
            self._applied = plan.nodes
        self._seen = {n: st for n, st in actual.items() if n not in rep.frozen}
        rep.elapsed_ms = (time.perf_counter() - t0) * 1e3
        rep.cpu_ms = (time.thread_time() - c0) * 1e3
        states = self._write_status(store, plan, intents, actual, held, rep)
        if xl is not None:  # OTN paths no routed intent needs any more are released
            xl.after(plan, settled=not rep.frozen and not held)
        if self.passes == 0:
            self.first = rep
            key_event(log, "first intent pass after start", ops=rep.ops,
                      frozen=len(rep.frozen), ms=round(rep.elapsed_ms, 1))
        self.passes += 1
        self.repairs_total += rep.repairs
        self.last = rep
        if rep.repairs:
            key_event(log, "drift repaired", ops=rep.repairs)
        if self.sec.verify and self.rt is not None and not self._verifying:
            # probes run beside the passes (up to 0.5 s each when a probe is lost):
            # a re-path never waits for a verification
            self._verifying = True
            self._verify_pool.submit(self._verify_bg, store)
        self._observe(rep, states)
        return rep

    def _crosslayer(self) -> CrossLayer | None:
        """The cross-layer step, once a ``Transport`` is set or the optical plug-in has
        registered one (``srv6.intents.crosslayer``)."""
        t = self.transport
        if t is None and self.rt is not None:
            t = self.rt.settings.extra.get(TRANSPORT_KEY)
        if not isinstance(t, Transport):
            return None
        if self.crosslayer is None or self.crosslayer.transport is not t:
            self.crosslayer = CrossLayer(t)
        return self.crosslayer

    # ------------------------------------------------------------------ verification
    def _probeable(self, node: str) -> bool:
        b = self.sec.nodes.get(node)
        return b is not None and b.programmer == "netlink" and bool(b.netns)

    def _verify_bg(self, store: Store) -> None:
        try:
            self._verify(store)
        except Exception:
            log.exception("intent verification failed to run")
        finally:
            self._verifying = False

    def _verify(self, store: Store, limit: int = 16, retry_s: float = 10.0) -> None:
        """Probe programmed, unverified intents (headend and egress in namespaces):
        captured at the egress with the computed list ⇒ ``verified``."""
        from srv6.intents.verify import probe_intent

        now = time.monotonic()
        todo = [s for s in store.list(SrPolicyIntentStatus)
                if s.state is IntentState.PROGRAMMED and s.active is not None
                and now - self._probed.get((s.key, tuple(s.active.segments)), -1e9) > retry_s
                and all(self._probeable(n) for n in (s.key.split("~")[0],
                                                     s.key.split("~")[2]))][:limit]
        for st in todo:
            assert st.active is not None
            self._probed[(st.key, tuple(st.active.segments))] = now
            try:
                res = probe_intent(self, st.key, timeout=0.5)
            except (CpnError, OSError) as exc:
                log.warning("probe of %s failed to run: %s", st.key, exc)
                continue
            with store.transaction(self.name, f"probe {st.key}") as txn:
                cur = txn.get(SrPolicyIntentStatus, st.key)  # a pass may have moved it
                if cur is None or cur.active != st.active or \
                        cur.state is not IntentState.PROGRAMMED:
                    continue
                if res.ok:
                    new = cur.model_copy(update={"state": IntentState.VERIFIED,
                                                 "verified_at": utcnow(),
                                                 "changed_at": utcnow(), "reason": res.detail})
                else:
                    new = cur.model_copy(update={"reason": f"programmed; not verified: "
                                                           f"{res.detail}"})
                if new != cur:
                    txn.put(new)
            key_event(log, "intent verified" if res.ok else "intent probe failed",
                      intent=st.key, detail=res.detail)

    def _target(self, plan: Plan, actual: Mapping[str, NodeState], frozen: Mapping[str, str],
                held: dict[str, tuple[str, str]]) -> dict[str, NodeState]:
        """Desired state with frozen nodes left as they are and the intents that needed
        them held on their previous routes (see the module rules)."""
        if not frozen:
            return {n: s for n, s in plan.nodes.items() if n in actual}
        for ip in plan.intents.values():
            if not ip.ok or ip.key in held:
                continue
            for node in frozen:
                if node in ip.routes and (node not in actual or any(
                        r not in actual[node] for r in ip.routes[node])):
                    held[ip.key] = (node, frozen[node])
                    break
        out: dict[str, dict[Any, Route]] = {n: {} for n in actual if n not in frozen}
        for ip in plan.intents.values():
            if not ip.ok:
                continue
            for node, mine in ip.routes.items():
                if node not in out:
                    continue
                for r in mine:
                    if ip.key in held:
                        old = actual[node].routes.get(r.key)
                        if old is not None and isinstance(old, Seg6Route):
                            out[node][r.key] = old
                    else:
                        out[node].setdefault(r.key, r)
        for node, routes in out.items():  # no SID removed while a path is held
            for r in actual[node]:
                if isinstance(r, Seg6LocalRoute):
                    routes.setdefault(r.key, r)
        return {n: NodeState(rs) for n, rs in out.items()} | {
            n: actual[n] for n in frozen if n in actual}

    # ------------------------------------------------------------------ status
    def _write_status(self, store: Store, plan: Plan, intents: list[SrPolicyIntent],
                      actual: Mapping[str, NodeState], held: Mapping[str, tuple[str, str]],
                      rep: PassReport) -> dict[str, IntentState]:
        now = utcnow()
        old = {s.key: s for s in store.list(SrPolicyIntentStatus)}
        specs = {i.key: i for i in intents}
        new: dict[str, SrPolicyIntentStatus] = {}
        for key, ip in plan.intents.items():
            digest = spec_digest(specs[key])
            new[key] = intent_status(ip, old.get(key), digest, actual, held, rep.frozen, now,
                                     self.sec.readback_s)
        changed = [s for k, s in new.items() if material(old.get(k)) != material(s)]
        gone = [k for k in old if k not in new]
        if changed or gone:
            with store.transaction(self.name, "SR policy intent status") as txn:
                for s in changed:
                    txn.put(s)
                for k in gone:
                    txn.delete(SrPolicyIntentStatus, k)
            rep.status_ns = time.monotonic_ns()
            rep.changed = [s.key for s in changed]
            for s in changed:
                prev = old.get(s.key)
                if prev is None or prev.state != s.state:
                    key_event(log, "intent " + s.state.value, intent=s.key, reason=s.reason,
                              device=s.device, fix=s.fix, plan_ms=round(rep.plan_ms, 2),
                              program_ms=round(rep.program_ms, 2),
                              readback_ms=round(rep.readback_ms, 2),
                              pass_ms=round(rep.elapsed_ms, 2), steps=rep.steps,
                              started_ns=rep.started_ns, status_ns=rep.status_ns,
                              cpu_ms=round(rep.cpu_ms, 2))
            for fn in self.listeners:
                try:
                    fn(changed)
                except Exception:
                    log.exception("intent status listener failed")
        return {k: s.state for k, s in new.items()}


def _same(a: Mapping[str, NodeState], b: Mapping[str, NodeState]) -> bool:
    keys = set(a) | set(b)
    return all(a.get(k, NodeState()) == b.get(k, NodeState()) for k in keys)
