"""The optical controller: topology from NEs, path provisioning, protection, restoration.

Rules:
- All NE interaction goes through ``OpticalDevice`` (NETCONF in production).
- Topology = what NEs report (``discover``); a snapshot an NE sends that does not parse
  is logged and ignored — the previous snapshot of that NE is kept.
- A path is provisioned all-or-nothing (``optical.provision``). Unreachable NE ⇒ the
  path is ``pending`` and retried with exponential backoff; rejected ⇒ ``failed`` with
  the NE's rpc-error, nothing left on any NE.
- Faults (GBA-6.4.2 WSON/OMSP): a fiber whose OMSP group switched to protect keeps its
  paths up (the switch is recorded); a 1+1 path switches to its protect lightpath; any
  other path on a cut fiber is restored: re-planned avoiding down fibers, provisioned,
  the old cross-connects removed.
- Cross-layer (GBA-6.4.2e): IP ``Link`` records riding on a path get the path's SRLGs
  and its up/down state through the store, so IP/SRv6 path computation reacts.
- On reconnect an NE is reconciled: desired cross-connects missing on it are re-sent,
  ones of ours it holds but we no longer want are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from controller.errors import CommitError, ConnectionError, CpnError, RemoteProtocolError
from controller.logs import key_event
from optical.codec import Notice
from optical.device import OpticalDevice
from optical.models import (
    CHANNELS,
    Alarm,
    Fiber,
    Lightpath,
    NeEdit,
    NeSnapshot,
    OchXc,
    Odu,
    OpticalPath,
    PathState,
)
from optical.provision import provision
from optical.rwa import Network, OsnrModel, Request, RwaStatus, plan

log = logging.getLogger("cpn.optical")


def fibers_from(snaps: Mapping[str, NeSnapshot]) -> list[Fiber]:
    """Fibers as the NEs describe them (each link is seen from both ends; first wins)."""
    protect_of = {g.protect_link: g.working_link for s in snaps.values()
                  for g in s.config.groups.values() if not g.path}
    out: dict[str, Fiber] = {}
    for ne, s in sorted(snaps.items()):
        for lk in s.config.links.values():
            if lk.id not in out:
                a, b = sorted((ne, lk.remote_ne))
                out[lk.id] = Fiber(lk.id, a, b, lk.length_km, lk.attenuation_db,
                                   lk.delay_ms, lk.srlgs, protect_of.get(lk.id))
    return list(out.values())


def edits_for(path_id: str, lp: Lightpath, snaps: Mapping[str, NeSnapshot],
              odu: Odu | None = None, port: str = "p1",
              only: str | None = None) -> dict[str, NeEdit]:
    """Per-NE cross-connects of lightpath ``lp`` (add/drop ``port`` at both ends); with
    ``only``, that NE's alone (the others' snapshots are not needed)."""
    out = {}
    for i, ne in enumerate(lp.nodes):
        if only is not None and ne != only:
            continue
        cfg = snaps[ne].config
        a_deg = cfg.degree_of(lp.fibers[i - 1]) if i > 0 else None
        z_deg = cfg.degree_of(lp.fibers[i]) if i < len(lp.fibers) else None
        xc = OchXc(lp.id, path_id, lp.channel, lp.rate.value, a_deg,
                   port if i == 0 else None, z_deg, port if i == len(lp.fibers) else None)
        odus: tuple[Odu, ...] = ()
        if odu is not None and i in (0, len(lp.fibers)):
            odus = (odu,)
        out[ne] = NeEdit(xcs=(xc,), odus=odus)
    return out


def removal_for(lp: Lightpath, odu: str | None = None,
                groomed: bool = False) -> dict[str, NeEdit]:
    """Deletes for lightpath ``lp`` (and ODU ``odu``); a ``groomed`` ODU rides another
    path's lightpath, so only the ODU goes, at the two ends."""
    if groomed and odu:
        return {ne: NeEdit(delete=(("odu", odu),)) for ne in (lp.nodes[0], lp.nodes[-1])}
    dels: list[tuple[str, str]] = [("odu", odu)] if odu else []
    return {ne: NeEdit(delete=(*dels, ("och-xc", lp.id))) for ne in lp.nodes}


class OpticalController:
    def __init__(self, devices: Mapping[str, OpticalDevice], *, k: int = 3,
                 osnr: OsnrModel | None = None, on_ip_link: Callable[[str, bool, list[str]],
                                                                      None] | None = None,
                 retry_base_s: float = 0.5, retry_max_s: float = 30.0,
                 confirm_timeout_s: int = 30,
                 on_path: Callable[[OpticalPath, str | None], None] | None = None) -> None:
        self.devices = dict(devices)
        self.k, self.osnr = k, osnr or OsnrModel()
        self.snaps: dict[str, NeSnapshot] = {}
        self.paths: dict[str, OpticalPath] = {}
        self.events: list[dict[str, Any]] = []
        self.on_ip_link = on_ip_link
        #: called with (path, event) on every recorded event, (path, None) on deletion
        self.on_path = on_path
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self.confirm_timeout_s = confirm_timeout_s
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reachable: dict[str, bool] = {}
        self.changed = asyncio.Condition()

    # --- topology --------------------------------------------------------------------
    async def start(self, paths: Iterable[OpticalPath] = ()) -> None:
        """Attach every NE; ``paths`` (stored by a previous run) are ours again: each NE
        is reconciled against them and pending ones resume their retries."""
        self._loop = asyncio.get_running_loop()
        for path in paths:
            self.paths[path.id] = path
        await asyncio.gather(*(self._attach(ne) for ne in self.devices))
        if self.paths:
            for ne in sorted(ne for ne in self.snaps if self._reachable.get(ne)):
                try:
                    await self.reconcile(ne)
                except CpnError as exc:
                    log.warning("NE %s not reconciled at start: %s", ne, exc)
        for path in self.paths.values():
            if path.state is PathState.PENDING:
                self._spawn(self._retry(path))
        self._spawn(self._resync_loop())

    async def _attach(self, ne: str) -> None:
        try:
            await self.devices[ne].subscribe(self._on_notice)
            await self.refresh(ne)
        except CpnError as exc:
            log.warning("NE %s not attached: %s", ne, exc)
            self._reachable[ne] = False
            self._spawn(self._reattach(ne))

    async def _reattach(self, ne: str) -> None:
        delay = self.retry_base_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.devices[ne].subscribe(self._on_notice)
                await self.refresh(ne)
                await self.reconcile(ne)
                return
            except CpnError:
                delay = min(delay * 2, self.retry_max_s)

    def _on_notice(self, n: Notice) -> None:  # any thread
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._mark, n)

    def _mark(self, n: Notice) -> None:
        if n.kind == "session-lost":
            self._reachable[n.ne] = False
            self._spawn(self._reattach(n.ne))
            return
        self._dirty.add(n.ne)
        self._wake.set()

    async def _resync_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for ne in sorted(dirty):
                with contextlib.suppress(CpnError):
                    await self.refresh(ne)
            await self.evaluate()

    async def refresh(self, ne: str) -> NeSnapshot | None:
        """Re-read one NE; bad data ⇒ logged, previous snapshot kept."""
        try:
            snap = await self.devices[ne].discover()
        except RemoteProtocolError as exc:
            log.warning("ignored invalid data from NE %s (kept previous view): %s", ne, exc)
            return self.snaps.get(ne)
        except ConnectionError:
            self._reachable[ne] = False
            raise
        self._reachable[ne] = True
        self.snaps[ne] = snap
        return snap

    def down_fibers(self) -> set[str]:
        """Fibers down and not carried by an OMSP group that switched to protect."""
        down = {lk for s in self.snaps.values() for lk, st in s.state.links.items()
                if st == "down"}
        return down - self.omsp_covered()

    def omsp_covered(self) -> set[str]:
        return {g.working_link for s in self.snaps.values() for g in s.config.groups.values()
                if s.state.active.get(g.name) == "protect"}

    def network(self) -> Network:
        down = self.down_fibers()
        lps = [lp for p in self.paths.values() if p.state is not PathState.FAILED
               for lp in (p.working, p.protect) if lp is not None]
        net = Network.build(fibers_from(self.snaps), lps, down)
        # channels lit by cross-connects that are not our lightpaths (made on the NE by
        # hand, or left by a clean-up that failed) are taken too
        for s in self.snaps.values():
            for x in s.config.xcs.values():
                if x.name in net.lightpaths or not 1 <= x.channel <= CHANNELS:
                    continue
                for deg in (x.a_degree, x.z_degree):
                    fid = s.config.degrees.get(deg) if deg is not None else None
                    if fid is not None:
                        net.used[fid] = net.used.get(fid, 0) | (1 << (x.channel - 1))
        return net

    def alarms(self) -> list[Alarm]:
        return [a for s in self.snaps.values() for a in s.state.alarms]

    # --- provisioning ----------------------------------------------------------------
    async def create_path(self, req: Request, ip_links: tuple[str, ...] = ()) -> OpticalPath:
        p = plan(self.network(), req, self.k, self.osnr)
        if p.status not in (RwaStatus.OK, RwaStatus.GROOMED) or p.working is None:
            raise CommitError(f"path {req.id}: {p.status.value}: {p.reason}")
        path = OpticalPath(req.id, req.src, req.dst, p.working, p.protect, p.odu,
                           ip_links=ip_links, groomed=p.status is RwaStatus.GROOMED)
        self.paths[req.id] = path
        await self._provision(path)
        return path

    def _edits(self, path: OpticalPath) -> dict[str, NeEdit]:
        """What provisioning ``path`` writes on each NE (from the path alone, so a path
        resumed after a restart is provisioned exactly as planned)."""
        w, o = path.working, path.odu
        odu = (Odu(o.id, path.id, o.odu_type, o.och, o.slots, o.bandwidth_gbps or None)
               if o else None)
        if path.groomed and odu is not None:
            return {ne: NeEdit(odus=(odu,)) for ne in (w.nodes[0], w.nodes[-1])}
        edits = edits_for(path.id, w, self.snaps, odu)
        if path.protect is not None:
            for ne, e in edits_for(path.id, path.protect, self.snaps, port="p2").items():
                cur = edits.get(ne, NeEdit())
                edits[ne] = NeEdit(xcs=cur.xcs + e.xcs, odus=cur.odus)
        return edits

    async def _provision(self, path: OpticalPath) -> None:
        edits = self._edits(path)
        try:
            await provision(self.devices, edits, self.confirm_timeout_s)
        except ConnectionError as exc:
            path.state, path.error = PathState.PENDING, str(exc)
            self._record(path, f"pending: {exc}")
            self._spawn(self._retry(path))
            return
        except CommitError as exc:
            path.state, path.error = PathState.FAILED, str(exc)
            self._record(path, f"failed: {exc}")
            raise
        path.state, path.error = PathState.ACTIVE, ""
        self._record(path, f"active on channel {path.working.channel} via "
                           f"{'-'.join(path.working.nodes)}")
        self._ip(path, up=True)

    async def _retry(self, path: OpticalPath) -> None:
        delay = self.retry_base_s
        while path.state is PathState.PENDING:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)
            with contextlib.suppress(CommitError):
                await self._provision_once(path)

    async def _provision_once(self, path: OpticalPath) -> None:
        try:
            await provision(self.devices, self._edits(path), self.confirm_timeout_s)
        except ConnectionError as exc:
            path.error = str(exc)
            return
        path.state, path.error = PathState.ACTIVE, ""
        self._record(path, "active after retry")
        self._ip(path, up=True)

    async def delete_path(self, path_id: str) -> None:
        """Remove the path's cross-connects (and ODU) from its NEs, then forget it; if
        the NEs refuse or cannot be reached, the path stays (error raised)."""
        path = self.paths[path_id]
        edits: dict[str, NeEdit] = {}
        lps = (path.working, path.protect) if path.state is not PathState.FAILED else ()
        for lp in lps:  # a failed path left nothing on any NE
            if lp is None:
                continue
            for ne, e in removal_for(lp, path.odu.id if path.odu else None,
                                     path.groomed).items():
                cur = edits.get(ne, NeEdit())
                edits[ne] = NeEdit(delete=cur.delete + e.delete)
        await provision(self.devices, edits, self.confirm_timeout_s)
        del self.paths[path_id]
        if self.on_path is not None:
            self.on_path(path, None)

    # --- faults ----------------------------------------------------------------------
    async def evaluate(self) -> None:
        """React to the NEs' current state: record switches, restore broken paths."""
        omsp = self.omsp_covered()
        down = self.down_fibers() | omsp
        for path in list(self.paths.values()):
            if path.state not in (PathState.ACTIVE, PathState.DOWN):
                continue
            live = path.working if path.active == "working" else path.protect
            assert live is not None
            hit = [f for f in live.fibers if f in down and f not in omsp]
            covered = [f for f in live.fibers if f in down and f in omsp]
            if covered and f"omsp:{covered[0]}" not in path.history:
                path.history.append(f"omsp:{covered[0]}")
                self._record(path, f"OMSP 1+1 switched to protect fiber on {covered[0]}; "
                                   "path stays up")
            if not hit:
                continue
            if path.active == "working" and path.protect is not None and not (
                    set(path.protect.fibers) & down):
                path.active = "protect"
                self._record(path, f"1+1 switch to protect: working cut at {hit}")
                continue
            await self.restore(path, hit)
        async with self.changed:
            self.changed.notify_all()

    async def restore(self, path: OpticalPath, cut: list[str]) -> None:
        """WSON-style restoration: new route avoiding down fibers, then remove the old."""
        path.state = PathState.RESTORING
        self._ip(path, up=False)
        self._record(path, f"LOS on {cut}: restoring")
        t0 = time.monotonic()
        old = path.working
        net = self.network()
        net.remove(old.id)
        req = Request(path.id + "-r", path.src, path.dst, old.rate)
        p = plan(net, req, self.k, self.osnr)
        if p.status is not RwaStatus.OK or p.working is None:
            path.state, path.error = PathState.DOWN, f"no restoration route: {p.reason}"
            self._record(path, path.error)
            return
        new = Lightpath(f"{path.id}-r{len(path.history)}", p.working.nodes, p.working.fibers,
                        p.working.channel, p.working.rate, p.working.osnr_db)
        try:
            await provision(self.devices, edits_for(path.id, new, self.snaps),
                            self.confirm_timeout_s)
        except CpnError as exc:
            path.state, path.error = PathState.DOWN, f"restoration failed: {exc}"
            self._record(path, path.error)
            return
        path.working, path.active, path.protect = new, "working", None
        path.state, path.error = PathState.ACTIVE, ""
        self._record(path, f"restored in {time.monotonic() - t0:.2f}s on channel "
                           f"{new.channel} via {'-'.join(new.nodes)}")
        self._ip(path, up=True)
        reachable = {ne: e for ne, e in removal_for(old).items()
                     if self._reachable.get(ne, True)}
        try:
            await provision(self.devices, reachable, self.confirm_timeout_s)
        except CpnError as exc:
            log.warning("old cross-connects of %s not removed: %s", path.id, exc)

    async def reconcile(self, ne: str) -> NeEdit:
        """Make NE ``ne`` hold exactly our desired cross-connects."""
        snap = self.snaps[ne]
        want: dict[str, NeEdit] = {}
        for path in self.paths.values():
            if path.state is PathState.ACTIVE:
                for lp in (path.working, path.protect):
                    if lp is not None and ne in lp.nodes:
                        want[lp.id] = edits_for(path.id, lp, self.snaps, only=ne)[ne]
        # cross-connects of our active paths that we no longer want (e.g. left by a
        # restoration whose clean-up failed); a down path's are left alone
        ours = {x.name for x in snap.config.xcs.values() if x.path in self.paths
                and self.paths[x.path].state is PathState.ACTIVE}
        missing = tuple(x for name, e in want.items() if name not in snap.config.xcs
                        for x in e.xcs)
        stale = tuple(("och-xc", n) for n in sorted(ours - set(want)))
        edit = NeEdit(xcs=missing, delete=stale)
        if not edit.empty():
            await provision(self.devices, {ne: edit}, self.confirm_timeout_s)
            key_event(log, "optical NE reconciled", ne=ne, added=len(missing),
                      removed=len(stale))
        return edit

    # --- helpers ---------------------------------------------------------------------
    def srlgs_of(self, path: OpticalPath) -> list[str]:
        fibers = {f.id: f for f in fibers_from(self.snaps)}
        live = path.working if path.active == "working" else (path.protect or path.working)
        return sorted({s for fid in live.fibers if fid in fibers for s in fibers[fid].srlgs})

    def _ip(self, path: OpticalPath, up: bool) -> None:
        if self.on_ip_link is not None:
            for key in path.ip_links:
                self.on_ip_link(key, up, self.srlgs_of(path))

    def _record(self, path: OpticalPath, what: str) -> None:
        path.history.append(what)
        self.events.append({"path": path.id, "event": what, "at": time.time()})
        key_event(log, "optical path", path=path.id, state=path.state.value, event=what)
        if self.on_path is not None and path.id in self.paths:
            try:
                self.on_path(path, what)
            except CpnError as exc:  # the NE state is the truth; the record catches up
                log.error("optical path %s not stored: %s", path.id, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_for(self, pred: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            async with self.changed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, 0.2)):
                        await self.changed.wait()
        return True

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await asyncio.gather(*(d.close() for d in self.devices.values()),
                             return_exceptions=True)
