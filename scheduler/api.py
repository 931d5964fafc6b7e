"""REST edge of the scheduler: GBT-7.5 pool interfaces and GBT-9.2.4 metrics.

Rules:
- Thin: load the pool from the store, run the pure ``Pool`` operation, write every
  changed object in ONE transaction (atomic multi-allocation / release stay atomic
  in the store too), journal reason = what was done.
- ``PoolError`` → 409 (the state forbids it) or 404 (unknown card/instance), with
  the message naming the object.
- Reads need a caller; writes need an operator.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import Field

from controller.api.deps import RT, Caller, Operator
from controller.errors import ConflictError, NotFoundError
from controller.models import ComputeInstance, Job, ResourceType
from controller.models.base import Strict
from controller.store import Store
from scheduler.gbt import UtilisationRecorder
from scheduler.pool import AcceleratorCard, DeletedInstance, Pool, PoolError, PoolNotFound


class _B(Strict):
    """Refuses unknown keys and non-finite numbers (``Strict``)."""


class InstanceTemplate(_B):
    """GBT-7.5 create-instance template: ``card`` (device id), ``chip`` (checked if
    given), ``fraction`` or ``profile``, optional ``id``."""

    card: str
    chip: str | None = None
    fraction: float | None = Field(default=None, gt=0, le=1)
    profile: str | None = None
    id: str | None = None


class PoolEventBody(_B):
    event: Literal["occupy", "release", "damage", "repair", "delete", "recover", "purge"]
    task: str | None = None


class AllocateBody(_B):
    task: str
    count: int = Field(default=1, ge=1, le=1024)
    type: ResourceType | None = None
    min_tflops: float = Field(default=0, ge=0)
    min_memory_gib: float = Field(default=0, ge=0)
    scopes: list[Literal["server", "switch", "cluster"]] = Field(
        default_factory=lambda: ["server", "switch", "cluster"])  # type: ignore[arg-type]
    split_tflops: float | None = Field(default=None, gt=0)


class ReleaseBody(_B):
    task: str
    instances: list[str] = Field(min_length=1)


def load_pool(store: Store) -> Pool:
    return Pool.load(store.list(AcceleratorCard), store.list(ComputeInstance),
                     [d.instance for d in store.list(DeletedInstance)])


def _err(exc: PoolError) -> Exception:
    if isinstance(exc, PoolNotFound):
        return NotFoundError(exc.kind, exc.key)
    return ConflictError(str(exc))


def _save(store: Store, pool: Pool, before: Pool, reason: str) -> None:
    with store.transaction("scheduler", reason) as txn:
        for iid, inst in pool.instances.items():
            if before.instances.get(iid) != inst:
                txn.put(inst)
            if iid in before.deleted:
                txn.delete(DeletedInstance, iid)
        for iid, inst in pool.deleted.items():
            if iid not in before.deleted:
                txn.put(DeletedInstance(instance=inst))
                if iid in before.instances:
                    txn.delete(ComputeInstance, iid)
        for iid in before.deleted:
            if iid not in pool.deleted and iid not in pool.instances:
                txn.delete(DeletedInstance, iid)


def pool_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1/pool", tags=["pool (GB/T 45401)"])

    @r.post("/cards", summary="Register an accelerator card")
    def add_card(rt: RT, who: Operator, card: AcceleratorCard) -> dict[str, Any]:
        rt.writer.put(card, actor=who.name, reason=f"pool: add card {card.id}")
        return card.model_dump(mode="json")

    @r.get("/cards/{card_id}", summary="GBT-7.5 card information")
    def card_info(rt: RT, who: Caller, card_id: str) -> dict[str, Any]:
        try:
            return load_pool(rt.store).card_info(card_id)
        except PoolError as exc:
            raise _err(exc) from None

    @r.post("/instances", summary="GBT-7.5 create an instance from a template")
    def create(rt: RT, who: Operator, t: InstanceTemplate) -> dict[str, Any]:
        pool = load_pool(rt.store)
        before = load_pool(rt.store)
        card = pool.cards.get(t.card)
        if card is not None and t.chip is not None and card.chip != t.chip:
            raise ConflictError(f"card {t.card!r} has chip {card.chip!r}, not {t.chip!r}")
        try:
            inst = pool.carve(t.card, fraction=t.fraction, profile=t.profile,
                              instance_id=t.id)
        except PoolError as exc:
            raise _err(exc) from None
        _save(rt.store, pool, before, f"pool: add {inst.id} on {t.card}")
        return inst.model_dump(mode="json")

    @r.get("/instances/{iid}/spec", summary="GBT-7.5 instance specification")
    def spec(rt: RT, who: Caller, iid: str) -> dict[str, Any]:
        inst = rt.store.get(ComputeInstance, iid)
        if inst is None:
            raise NotFoundError("instance", iid)
        return {"id": iid, "type": inst.type.value, "spec": inst.spec.model_dump(mode="json"),
                "topology": inst.topology.model_dump(mode="json")}

    @r.get("/instances/{iid}/state", summary="GBT-7.5 instance state")
    def state(rt: RT, who: Caller, iid: str) -> dict[str, Any]:
        inst = rt.store.get(ComputeInstance, iid)
        if inst is None:
            gone = rt.store.get(DeletedInstance, iid)
            if gone is None:
                raise NotFoundError("instance", iid)
            return {"id": iid, "state": "deleted", "task": None}
        return {"id": iid, "state": inst.state.value, "task": inst.task}

    @r.post("/instances/{iid}/events", summary="GBT-6.2.8 state transition")
    def event(rt: RT, who: Operator, iid: str, body: PoolEventBody) -> dict[str, Any]:
        pool, before = load_pool(rt.store), load_pool(rt.store)
        affected: str | None = None
        try:
            if body.event == "occupy":
                if not body.task:
                    raise PoolError("occupy needs the task")
                pool.occupy(iid, body.task)
            elif body.event == "release":
                pool.release(iid)
            elif body.event == "damage":
                affected = pool.damage(iid)
            elif body.event == "repair":
                pool.repair(iid)
            elif body.event == "delete":
                pool.soft_delete(iid)
            elif body.event == "recover":
                pool.recover(iid)
            else:
                pool.purge(iid)
        except PoolError as exc:
            raise _err(exc) from None
        _save(rt.store, pool, before, f"pool: {body.event} {iid}")
        return {"id": iid, "event": body.event, "affected_task": affected}

    @r.post("/allocate", summary="Atomic, topology-aware multi-instance allocation")
    def allocate(rt: RT, who: Operator, body: AllocateBody) -> dict[str, Any]:
        pool, before = load_pool(rt.store), load_pool(rt.store)
        try:
            if body.split_tflops is not None:
                alloc = pool.allocate_split(body.task, body.split_tflops, type_=body.type)
            else:
                alloc = pool.allocate(body.task, body.count, type_=body.type,
                                      min_tflops=body.min_tflops,
                                      min_memory_gib=body.min_memory_gib, scopes=body.scopes)
        except PoolError as exc:
            raise _err(exc) from None
        if alloc is None:
            raise ConflictError(f"no {body.count} free instance(s) for task {body.task!r} "
                                f"within scopes {body.scopes}; nothing allocated")
        _save(rt.store, pool, before,
              f"pool: allocate {','.join(alloc.instances)} to {body.task} ({alloc.scope})")
        return {"task": alloc.task, "instances": list(alloc.instances), "scope": alloc.scope}

    @r.post("/release", summary="Atomic multi-instance release")
    def release(rt: RT, who: Operator, body: ReleaseBody) -> dict[str, Any]:
        pool, before = load_pool(rt.store), load_pool(rt.store)
        try:
            pool.release_many(body.task, body.instances)
        except PoolError as exc:
            raise _err(exc) from None
        _save(rt.store, pool, before, f"pool: release {','.join(body.instances)}")
        return {"task": body.task, "released": body.instances}

    return r


def pool_shares(store: Store) -> dict[str, float]:
    """card → share currently in use (instantaneous q of each card)."""
    pool = load_pool(store)
    out = dict.fromkeys(pool.cards, 0.0)
    for iid, inst in pool.instances.items():
        if inst.state.value == "in-use" and inst.topology.card in out:
            out[inst.topology.card] += pool.fraction.get(iid, 0.0)
    return out


def metrics_router(recorder: UtilisationRecorder, counters: dict[str, int]) -> APIRouter:
    r = APIRouter(prefix="/api/v1/scheduler", tags=["scheduler"])

    @r.get("/metrics", summary="GBT-9.2.4 metrics: Q, per-card q, success rate, …")
    def metrics(rt: RT, who: Caller) -> dict[str, Any]:
        import time

        now = time.time()
        for card, share in pool_shares(rt.store).items():
            recorder.set_share(card, share, now)
        rep = recorder.report(now)
        att = counters.get("attempts", 0)
        return {**rep, "card_utilisation": recorder.card_utilisation(now),
                "current_card_share": {c: recorder.share(c) for c in
                                       recorder.card_utilisation(now)},
                "scheduler_attempts": att,
                "scheduler_success_rate": counters.get("success", 0) / att if att else 1.0,
                "jobs": {s: sum(1 for j in rt.store.list(Job) if j.state.value == s)
                         for s in ("submitted", "queued", "running", "failed", "finished")}}

    return r


class FlowBody(_B):
    """One flow/service/job to place: ``id``, ``origin`` (router or site), ``cpu``,
    ``memory_gib``, ``gpu``, ``bandwidth_mbps``, ``max_delay_ms``, ``slice``,
    ``allowed_sites``, ``sticky``, ``service`` (the service it reaches: its DNS answers
    from the origin follow the placement)."""

    id: str = Field(min_length=1, max_length=128)
    origin: str
    service: str | None = Field(default=None, min_length=1, max_length=63)
    # Upper bounds far above any real flow (a million cores, 10 PiB, 100 Tbit/s, an
    # hour): a demand near 1e308 overflowed the solver's integer costs, so it is refused
    # here with the field named instead of reaching the planner.
    cpu: float = Field(default=0, ge=0, le=1e6)
    memory_gib: float = Field(default=0, ge=0, le=1e7)
    gpu: float = Field(default=0, ge=0, le=1e5)
    bandwidth_mbps: float = Field(default=0, ge=0, le=1e8)
    max_delay_ms: float | None = Field(default=None, gt=0, le=3.6e6)
    slice: str | None = None
    allowed_sites: list[str] | None = None
    sticky: bool = False


class PlacementBody(_B):
    """``flows``; ``slices`` (name → Mbit/s reserved per link); ``k`` paths; ``full``
    (re-optimise every flow, migration cost still applies)."""

    flows: list[FlowBody] = Field(min_length=1, max_length=20_000)
    slices: dict[str, Annotated[float, Field(ge=0, le=1e8)]] = Field(default_factory=dict)
    k: int = Field(default=3, ge=1, le=10)
    full: bool = False


def plan_from_store(store: Store, body: PlacementBody, shared: dict[str, Any],
                    time_limit_s: float) -> dict[str, Any]:
    """Build the placement problem from the stored topology and re-plan incrementally
    (the planner in ``shared`` keeps the previous inputs and assignment)."""
    import time

    from controller.models import ComputeMetrics, ComputeNode, ComputeResource, Link, Site
    from controller.models import Router as RouterModel
    from scheduler.paths import k_paths
    from scheduler.placement import PFlow, PlacementProblem, PSite
    from scheduler.replan import IncrementalPlanner
    from scheduler.state import build_snapshot

    sites, links, routers = store.list(Site), store.list(Link), store.list(RouterModel)
    snap = build_snapshot(sites=sites, nodes=store.list(ComputeNode),
                          resources=store.list(ComputeResource),
                          metrics=store.list(ComputeMetrics), links=links, routers=routers,
                          jobs=store.list(Job), now=time.time())
    cap: dict[str, dict[str, float]] = {}
    used: dict[str, dict[str, float]] = {}
    for n in snap.nodes.values():
        for res, v in n.capacity.items():
            cap.setdefault(n.site, {})[res] = cap.get(n.site, {}).get(res, 0.0) + v
        for res, v in n.used.items():
            used.setdefault(n.site, {})[res] = used.get(n.site, {}).get(res, 0.0) + v
    psites = [PSite(name=s.name, kind=s.kind, capacity=cap.get(s.name, {}),
                    used=used.get(s.name, {}), price=s.price_per_hour or 1.0,
                    energy_w=(s.energy_w or 1000.0) / 1000.0) for s in sites]
    flows = [PFlow(f.id, f.origin, {k: v for k, v in (("cpu", f.cpu),
                                                       ("memory", f.memory_gib),
                                                       ("gpu", f.gpu)) if v > 0},
                   f.bandwidth_mbps, f.max_delay_ms, f.slice,
                   tuple(f.allowed_sites) if f.allowed_sites is not None else None,
                   f.sticky) for f in body.flows]
    paths, engine = k_paths(links, routers, sites,
                            [(f.origin, s.name) for f in flows for s in sites], body.k)
    prob = PlacementProblem(psites, flows, paths, {ln.key: ln.available for ln in links},
                            slices=body.slices)
    planner: IncrementalPlanner = shared.setdefault(
        "planner", IncrementalPlanner(time_limit_s=time_limit_s))
    plan = planner.update(prob, full=body.full)
    out = {"assign": {f: ({"site": a[0], "links": list(a[1])} if a else None)
                      for f, a in plan.assign.items()},
           "unplaced": plan.unplaced, "moved": plan.moved, "objective": plan.objective,
           "bound": plan.bound, "gap": plan.gap, "solver": plan.solver,
           "status": plan.status, "greedy_objective": plan.greedy_objective,
           "paths_engine": engine, "planned_at": time.time()}
    from scheduler.decisions import SchedulingDecision, flow_decisions

    services = {f.id: f.service for f in body.flows}
    decs = [d.model_copy(update={"service": services.get(d.subject)})
            for d in flow_decisions(prob, plan.assign, plan.solver)]
    with store.transaction("scheduler", f"placement: {len(decs)} flow decision(s), "
                           f"{len(plan.unplaced)} unplaced") as txn:
        now = {d.key for d in decs}
        for gone in store.list(SchedulingDecision):  # flows no longer in the request
            if gone.subject_kind == "flow" and gone.decided_by == "placement" and \
                    gone.key not in now:
                txn.delete(SchedulingDecision, gone.key)
        for d in decs:
            old = txn.get(type(d), d.key)
            if old is not None and old.site == d.site:  # same place: its intent stays
                d = d.model_copy(update={"intent": old.intent, "network": old.network})
            if old is None or old.model_copy(update={"decided_at": d.decided_at}) != d:
                txn.put(d)
    shared["placement_request"] = body.model_copy(update={"full": False})
    shared["placement"] = out
    return out


def placement_router(shared: dict[str, Any], time_limit_s: float) -> APIRouter:
    r = APIRouter(prefix="/api/v1/scheduler", tags=["scheduler"])

    @r.post("/placement", summary="Joint compute + network placement (incremental re-plan)")
    def placement(rt: RT, who: Operator, body: PlacementBody) -> dict[str, Any]:
        return plan_from_store(rt.store, body, shared, time_limit_s)

    @r.delete("/placement/{flow_id}",
              summary="A flow ends: its decision, intent and DNS pin are released")
    def release(flow_id: str, rt: RT, who: Operator) -> dict[str, Any]:
        return release_flow(rt.store, flow_id, shared, time_limit_s, who.name)

    @r.get("/placement", summary="The current plan (re-planned on topology events)",
           responses={404: {"description": "No plan yet: POST /api/v1/scheduler/placement"}})
    def current(rt: RT, who: Caller) -> dict[str, Any]:
        got: dict[str, Any] | None = shared.get("placement")
        if got is None:
            raise NotFoundError("placement", "current")
        return got

    return r


def release_flow(store: Store, flow_id: str, shared: dict[str, Any], time_limit_s: float,
                 actor: str = "scheduler") -> dict[str, Any]:
    """The flow ``flow_id`` ended: drop it from the placement request and delete its
    decision (the placement-intents component then releases its SR policy intent and
    DNS stops following it); the other flows are re-planned incrementally (unchanged
    input moves nothing)."""
    from scheduler.decisions import SchedulingDecision

    key = f"flow:{flow_id}"
    body: PlacementBody | None = shared.get("placement_request")
    known = body is not None and any(f.id == flow_id for f in body.flows)
    if not known and store.get(SchedulingDecision, key) is None:
        raise NotFoundError("flow", flow_id)
    rest = [f for f in body.flows if f.id != flow_id] if body is not None else []
    if store.get(SchedulingDecision, key) is not None:
        with store.transaction(actor, f"placement: flow {flow_id} ended, released") as txn:
            txn.delete(SchedulingDecision, key)
    if rest and body is not None:
        out = plan_from_store(store, body.model_copy(update={"flows": rest}), shared,
                              time_limit_s)
        return {"released": flow_id, "flows": len(rest), "plan": out}
    shared.pop("placement_request", None)
    shared.pop("placement", None)
    planner = shared.get("planner")
    if planner is not None:
        planner.current.pop(flow_id, None)
        planner.previous.pop(flow_id, None)
    return {"released": flow_id, "flows": 0, "plan": None}
