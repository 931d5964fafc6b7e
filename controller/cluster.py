"""Leadership of a cluster of controllers (issue 16): one leader programs the network.

Rules:
- A component that writes to the network declares ``leader_only = True`` (one line).
  With one controller (SQLite store) it simply runs; in a cluster it runs only on the
  replica holding the leader lease, and every replica runs everything else (REST reads
  and writes, the embedded DNS responder, NETCONF).
- Election on an etcd lease (TTL ``ttl_s``): the replica that creates ``P/leader``
  (create-if-absent, attached to its lease) leads; the same txn raises ``P/epoch`` by
  one, so each leadership has its own epoch. Followers campaign as soon as the watch
  shows the key gone (lease expired or revoked).
- Fencing, lease-guarded: the leader refreshes its lease every ``ttl_s/4``; a refresh
  sent at ``t`` proves the lease lives until at least ``t + ttl``. It stops acting at
  ``t + ttl - margin_s`` unless a later refresh succeeded — before etcd can expire the
  lease and let a successor start. A separate guard task enforces that deadline, so
  an election-loop call stuck on an unreachable etcd cannot delay the step-down.
  Store writes carry the epoch (``Fence``) and fail once the leader key is someone
  else's, so nothing lands under a stale epoch.
- Each replica keeps ``P/members/<name>`` (on its lease) with its API address, its
  applied revision and role: ``cpn cluster status`` and ``/healthz`` read it.
- All etcd I/O runs on the store's own loop; role changes are handed to the
  runtime's loop, which starts and stops the leader-only components in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.logs import key_event
from controller.store.base import Fence, StoreUnavailable

if TYPE_CHECKING:
    from controller.store.etcd import EtcdStore

log = logging.getLogger("cpn.cluster")


def leader_only(component: object) -> bool:
    """Does ``component`` write to the network (run only on the leader)?"""
    return bool(getattr(component, "leader_only", False))


@dataclass
class Role:
    """What this replica is now: ``leader`` flag, ``epoch`` (0: never led), ``since``
    (wall clock of the last change), ``leader_member`` (who leads, "" when nobody)."""

    leader: bool = False
    epoch: int = 0
    since: float = 0.0
    leader_member: str = ""


class SoleLeader:
    """One controller on its own store: always the leader, no election, epoch 0."""

    elected = False

    def __init__(self, member: str = "") -> None:
        self.member = member
        self.role = Role(leader=True, since=time.time(), leader_member=member)

    def acting(self) -> bool:
        return True

    async def start(self, on_change: Callable[[bool], None]) -> None:
        return None

    async def stop(self) -> None:
        return None

    def local(self) -> dict[str, Any]:
        return {"mode": "single", "member": self.member, "leader": self.member,
                "is_leader": True, "acting": True, "epoch": 0, "lag_entries": 0}

    def status(self) -> dict[str, Any]:
        return {**self.local(), "members": []}


class EtcdLeadership:
    """Lease election + member heartbeat on an ``EtcdStore``."""

    elected = True

    def __init__(self, store: EtcdStore, member: str, api: str, *, ttl_s: int = 2,
                 margin_s: float = 0.6) -> None:
        self.store = store
        self.member = member
        self.api = api
        self.ttl_s = ttl_s
        self.margin_s = margin_s
        self.role = Role()
        self.lease_id = 0
        self.deadline = 0.0           # monotonic: stop acting at this instant
        self.elections = 0
        self.cluster_seq = 0          # the cluster's journal head at the last heartbeat
        self._on_change: Callable[[bool], None] | None = None
        self._rt_loop: asyncio.AbstractEventLoop | None = None
        self._task: Any = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._started = time.time()

    # -- called from the runtime loop ------------------------------------------------
    async def start(self, on_change: Callable[[bool], None]) -> None:
        self._on_change = on_change
        self._rt_loop = asyncio.get_running_loop()
        self.store.watch_hooks.append(self._on_watch)
        self._task = asyncio.run_coroutine_threadsafe(self._run(), self.store._loop)

    async def stop(self) -> None:
        """Step down (revoke the lease: a successor starts at once) and stop."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        fut = asyncio.run_coroutine_threadsafe(self._resign(), self.store._loop)
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(fut)

    def acting(self) -> bool:
        """True while this replica leads and its lease is certainly alive."""
        return self.role.leader and time.monotonic() < self.deadline

    # -- on the store's loop -----------------------------------------------------------
    def _on_watch(self, sub: bytes, value: bytes | None, rev: int) -> None:
        if sub == b"leader" and self._wake is not None and (
                value is None
                or (self.role.leader and json.loads(value).get("member") != self.member)):
            self._wake.set()

    async def _guard(self) -> None:
        """The lease guard, on its own: steps down at the deadline even while a call of
        the election loop is stuck on an unreachable etcd."""
        while not self._stopping:
            if self.role.leader:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    self._step_down("lease not renewed in time (cut off from etcd?)")
                    continue
                await asyncio.sleep(min(left, 0.25))
            else:
                await asyncio.sleep(0.1)

    async def _run(self) -> None:
        guard = asyncio.create_task(self._guard())
        try:
            await self._elect()
        finally:
            guard.cancel()

    async def _elect(self) -> None:
        self._wake = asyncio.Event()
        period = self.ttl_s / 4
        last_beat = 0.0
        while not self._stopping:
            try:
                if not self.lease_id:
                    await self._grant()
                sent = time.monotonic()
                alive = await self._refresh()
                if alive:
                    if self.role.leader:
                        self.deadline = sent + self.ttl_s - self.margin_s
                else:
                    self.lease_id = 0
                    self._step_down("lease expired")
                if self.role.leader and not self._holds_key():
                    self._step_down("the leader key belongs to another replica")
                if not self.role.leader and self.lease_id and self.store.leader_raw is None:
                    await self._campaign(sent)
                if time.monotonic() - last_beat > 1.0 and self.lease_id:
                    await self._beat()
                    last_beat = time.monotonic()
            except StoreUnavailable as exc:
                log.debug("etcd unreachable: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leader election step failed")
            if self.role.leader and time.monotonic() >= self.deadline:
                self._step_down("lease not renewed in time (cut off from etcd?)")
            self._wake.clear()
            wait = period
            if self.role.leader:
                wait = max(0.01, min(period, self.deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _holds_key(self) -> bool:
        raw = self.store.leader_raw
        if raw is None:
            return True  # watch lag; the lease guard and the fence still hold
        return bool(json.loads(raw).get("member") == self.member)

    async def _grant(self) -> None:
        from aetcd import rpc

        resp = await self.store.call("leasestub", "LeaseGrant",
                                     rpc.LeaseGrantRequest(TTL=self.ttl_s), timeout=1.0)
        self.lease_id = resp.ID
        self.ttl_s = max(self.ttl_s, int(resp.TTL))

    async def _refresh(self) -> bool:
        from aetcd import rpc

        await self.store.client.connect()
        stub = self.store.client.leasestub
        try:
            call = stub.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=self.lease_id)]),
                                       timeout=self.ttl_s / 4 + 0.2,
                                       metadata=self.store.client.metadata)
            async for reply in call:
                return bool(reply.TTL > 0)
        except rpc.AioRpcError as exc:
            raise StoreUnavailable(f"lease keepalive: {exc.code().name}") from exc
        return False

    async def _campaign(self, sent: float) -> None:
        from aetcd.transactions import Create, Get, Mod, Put

        r = await self.store.range(self.store.key("epoch"), timeout=self.ttl_s / 4)
        epoch, epoch_rev = (int(r.kvs[0].value), r.kvs[0].mod_revision) if r.kvs else (0, 0)
        new = epoch + 1
        value = json.dumps({"member": self.member, "epoch": new, "api": self.api,
                            "since": time.time()}).encode()
        resp = await self.store.txn(
            [Create(self.store.key("leader")) == 0, Mod(self.store.key("epoch")) == epoch_rev],
            [Put(self.store.key("epoch"), str(new).encode()),
             Put(self.store.key("leader"), value, lease=self.lease_id)],
            [Get(self.store.key("leader"))], timeout=self.ttl_s / 4)
        if not resp.succeeded:
            return
        self.elections += 1
        self.deadline = sent + self.ttl_s - self.margin_s
        self.store.fence = Fence(epoch=new, member=self.member, token=resp.header.revision)
        self.role = Role(leader=True, epoch=new, since=time.time(), leader_member=self.member)
        key_event(log, "elected leader", member=self.member, epoch=new)
        self._announce(True)

    def _step_down(self, why: str) -> None:
        if not self.role.leader:
            return
        self.store.fence = None
        self.role = Role(leader=False, epoch=self.role.epoch, since=time.time())
        key_event(log, "stepped down", member=self.member, epoch=self.role.epoch, why=why)
        self._announce(False)

    def _announce(self, leader: bool) -> None:
        if self._on_change is not None and self._rt_loop is not None:
            with contextlib.suppress(RuntimeError):
                self._rt_loop.call_soon_threadsafe(self._on_change, leader)

    async def _beat(self) -> None:
        from aetcd.transactions import Get, Put

        value = json.dumps({
            "member": self.member, "api": self.api, "leader": self.role.leader,
            "epoch": self.role.epoch, "applied_rev": self.store.applied_rev,
            "last_seq": self.store.last_seq(), "started": self._started, "ts": time.time(),
        }).encode()
        resp = await self.store.txn([], [Put(self.store.key("members", self.member), value,
                                             lease=self.lease_id),
                                         Get(self.store.key("seq"))], [],
                                    timeout=self.ttl_s / 4)
        kvs = resp.responses[1].response_range.kvs
        self.cluster_seq = int(kvs[0].value.split()[0]) if kvs else 0

    async def _resign(self) -> None:
        from aetcd import rpc

        was = self.role.leader
        self._step_down("controller stopping")
        if self.lease_id:
            with contextlib.suppress(Exception):
                await self.store.call("leasestub", "LeaseRevoke",
                                      rpc.LeaseRevokeRequest(ID=self.lease_id), timeout=1.0)
            self.lease_id = 0
        if was:
            log.info("leadership released")

    def local(self) -> dict[str, Any]:
        """This replica's view, without I/O (``/healthz``, ``/metrics``)."""
        raw = self.store.leader_raw
        leader = json.loads(raw) if raw else None
        return {"mode": "cluster", "member": self.member,
                "leader": leader["member"] if leader else None,
                "is_leader": self.role.leader, "acting": self.acting(),
                "epoch": leader["epoch"] if leader else self.role.epoch,
                "lag_entries": max(0, self.cluster_seq - self.store.last_seq()),
                "elections_won": self.elections}

    def status(self) -> dict[str, Any]:
        return cluster_status(self.store, self.member, self.role)


def cluster_status(store: EtcdStore, member: str = "", role: Role | None = None
                   ) -> dict[str, Any]:
    """Members, leader, epoch and each member's lag: journal entries behind the
    cluster's head (from its heartbeat, at most ~1 s old: ``heartbeat_age_s``)."""
    async def read() -> tuple[Any, Any, Any, Any]:
        prefix = store.key("members", "")
        m = await store.range(prefix, prefix[:-1] + b"0")
        lead = await store.range(store.key("leader"))
        ep = await store.range(store.key("epoch"))
        seq = await store.range(store.key("seq"))
        return m, lead, ep, seq
    m, lead, ep, seq = store.run(read())
    head = int(seq.kvs[0].value.split()[0]) if seq.kvs else 0
    members = []
    for kv in m.kvs:
        row = json.loads(kv.value)
        row["lag_entries"] = max(0, head - int(row.get("last_seq", head)))
        row["heartbeat_age_s"] = round(time.time() - float(row.get("ts", 0)), 3)
        members.append(row)
    leader = json.loads(lead.kvs[0].value) if lead.kvs else None
    out: dict[str, Any] = {
        "mode": "cluster", "store": store.url, "journal_seq": head,
        "leader": leader["member"] if leader else None,
        "leader_api": leader["api"] if leader else None,
        "epoch": int(ep.kvs[0].value) if ep.kvs else 0,
        "members": sorted(members, key=lambda r: r["member"]),
    }
    if member:
        out["member"] = member
        out["is_leader"] = bool(role and role.leader)
        out["lag_entries"] = max(0, head - store.last_seq())
    return out
