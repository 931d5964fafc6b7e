"""Workload simulator for the GBT-9.2 test method (``cpn sim --workload FILE``).

Rules:
- Pure and seeded: the same file gives the same numbers. Discrete events (arrival,
  finish) on a simulated clock; nothing sleeps.
- Arrivals: ``offline`` (all at t=0), ``uniform`` (every 1/rate s), ``poisson``
  (exponential gaps, mean 1/rate). Each task asks for ``count`` instances
  (from ``counts``, default 1, 2, 4, 8, 16) of a class: ``vision`` (a small share
  of a card) or ``nlp`` (a whole card); ``mix`` picks vision / nlp / mixed.
- Each policy set carves the cluster its own way (``profile``: a fixed profile name
  for every instance, or ``mixed``) and allocates with its topology ``scopes``;
  ``split`` lets a task that cannot get ``count`` instances run on fewer, larger
  ones (GBT-7.2). A task not started within ``max_wait_s`` counts as failed.
- A multi-instance task runs 10 % longer across servers and 30 % longer across
  switches (communication cost), so topology-aware placement shows in the numbers.
- Metrics per policy set are those of ``scheduler.gbt`` (GBT-9.2.4).
- ``profiles`` (site level): the same seeded job stream through the real scheduler
  once per named plug-in profile (``scheduler.sitesim``); rows carry ``level: site``.
"""

from __future__ import annotations

import heapq
import math
import random
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator
from pydantic import ValidationError as PydanticError

from controller.errors import Issue, ValidationError
from controller.models import ResourceType
from scheduler.gbt import UtilisationRecorder, performance
from scheduler.pool import PROFILES, AcceleratorCard, Pool, PoolError
from scheduler.profiles import ProfileConfig
from scheduler.sitesim import (
    _M,  # one strict base for every workload-file model
    JobsSpec,
    SitesSpec,
    simulate_profile,
)


class ClusterSpec(_M):
    servers: int = Field(default=4, ge=1, le=1000)
    cards_per_server: int = Field(default=8, ge=1, le=64)
    servers_per_switch: int = Field(default=2, ge=1)
    card_tflops: float = Field(default=312.0, gt=0)
    card_memory_gib: float = Field(default=80.0, gt=0)
    card_throughput: float = Field(default=1000.0, gt=0)
    card_cores: float = Field(default=108.0, gt=0)


class WorkloadSpec(_M):
    arrival: Literal["offline", "uniform", "poisson"] = "poisson"
    rate_per_s: float = Field(default=0.2, gt=0)
    tasks: int = Field(default=200, ge=1, le=1_000_000)
    counts: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16])
    mix: Literal["vision", "nlp", "mixed"] = "mixed"
    vision_share: float = Field(default=0.25, gt=0, le=1)
    vision_s: float = Field(default=60.0, gt=0)
    nlp_s: float = Field(default=300.0, gt=0)
    max_wait_s: float = Field(default=600.0, ge=0)
    seed: int = 1


Scope = Literal["server", "switch", "cluster"]


class PolicySet(_M):
    profile: str = "7g"
    scopes: list[Scope] = Field(
        default_factory=lambda: list[Scope](["server", "switch", "cluster"]))
    split: bool = False


class WorkloadFile(_M):
    """Pool level: ``cluster``, ``workload``, ``policies`` (GBT-9.2 pool policy sets).
    Site level (``scheduler.sitesim``): ``sites``, ``jobs`` and ``profiles`` (named
    scheduler plug-in profiles, as in the ``scheduler:`` config section). A file with
    ``profiles`` but no ``policies`` runs the site level only."""

    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    policies: dict[str, PolicySet] = Field(default_factory=lambda: {"default": PolicySet()})
    sites: SitesSpec = Field(default_factory=SitesSpec)
    jobs: JobsSpec = Field(default_factory=JobsSpec)
    profiles: dict[str, ProfileConfig] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _site_only(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "profiles" in raw and "policies" not in raw:
            return {**raw, "policies": {}}
        return raw


def load(path: Path) -> WorkloadFile:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(Issue(str(path), f"cannot read workload: {exc}")) from None
    try:
        return WorkloadFile.model_validate(raw or {})
    except PydanticError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ValidationError(Issue(f"{path}:{where}", err["msg"])) from None


MIXED = ("4g", "2g", "1g")  # 4/7 + 2/7 + 1/7 = one card


def build_pool(c: ClusterSpec, profile: str) -> Pool:
    if profile != "mixed" and profile not in PROFILES:
        raise ValueError(f"policy profile {profile!r}: use mixed or one of {list(PROFILES)}")
    pool = Pool()
    for s in range(c.servers):
        for k in range(c.cards_per_server):
            card = AcceleratorCard(id=f"s{s}c{k}", server=f"s{s}", cluster="c0",
                                   switch=f"sw{s // c.servers_per_switch}", slot=k,
                                   compute_tflops=c.card_tflops,
                                   memory_gib=c.card_memory_gib, type=ResourceType.GPU)
            pool.add_card(card)
            profiles = MIXED if profile == "mixed" else (profile,) * math.floor(
                1 / PROFILES[profile] + 1e-9)
            for p in profiles:
                pool.carve(card.id, profile=p)
    return pool


def arrivals(w: WorkloadSpec) -> list[tuple[float, str, int]]:
    rng = random.Random(w.seed)
    out = []
    t = 0.0
    for i in range(w.tasks):
        if w.arrival == "uniform":
            t = i / w.rate_per_s
        elif w.arrival == "poisson":
            t += rng.expovariate(w.rate_per_s)
        cls = w.mix if w.mix != "mixed" else rng.choice(["vision", "nlp"])
        out.append((t, cls, rng.choice(w.counts)))
    return out


def simulate(wf: WorkloadFile, name: str, ps: PolicySet) -> dict[str, Any]:
    c, w = wf.cluster, wf.workload
    pool = build_pool(c, ps.profile)
    rec = UtilisationRecorder()
    for card in pool.cards:
        rec.add_card(card)
    card_tf = c.card_tflops
    events: list[tuple[float, int, str, Any]] = []
    seq = 0
    for i, (t, cls, count) in enumerate(arrivals(w)):
        heapq.heappush(events, (t, seq, "arrive", (f"t{i}", cls, count, t)))
        seq += 1
    waiting: list[tuple[str, str, int, float]] = []
    running: dict[str, tuple[tuple[str, ...], float]] = {}
    rng = random.Random(w.seed + 1)
    now = 0.0

    def share_of(iid: str) -> float:
        return pool.fraction[iid]

    def try_start(task: tuple[str, str, int, float]) -> bool:
        tid, cls, count, _ = task
        need = w.vision_share if cls == "vision" else 1.0
        min_tf = card_tf * need * 0.999
        alloc = pool.allocate(tid, count, min_tflops=min_tf, scopes=ps.scopes)
        if alloc is None and ps.split:
            alloc = pool.allocate_split(tid, card_tf * need * count, max_parts=count * 4)
        if alloc is None:
            return False
        dur = w.vision_s if cls == "vision" else w.nlp_s
        # Multi-card jobs slow down when their cards talk across servers / switches
        # (GBT-7.4 topology affinity): +10 % across servers, +30 % across switches.
        topo = [pool.instances[i].topology for i in alloc.instances]
        if len({t.position for t in topo}) > 1:
            dur *= 1.3
        elif len({t.server for t in topo}) > 1:
            dur *= 1.1
        allocated = sum(share_of(i) for i in alloc.instances)
        for iid in alloc.instances:
            card = pool.instances[iid].topology.card
            rec.set_share(card, rec.share(card) + share_of(iid), now)
        rec.task_done(allocated, need * count, dur)
        running[tid] = (alloc.instances, now + dur)
        nonlocal seq
        heapq.heappush(events, (now + dur, seq, "finish", tid))
        seq += 1
        return True

    while events:
        now, _, kind, data = heapq.heappop(events)
        if kind == "arrive":
            task = data
            if not waiting and try_start(task):
                rec.attempt(True)
            else:
                waiting.append(task)
        else:
            ids, _ = running.pop(data)
            pool.release_many(data, ids)
            for iid in ids:
                card = pool.instances[iid].topology.card
                rec.set_share(card, rec.share(card) - share_of(iid), now)
        still = []
        for task in waiting:  # FIFO with skipping (small tasks may pass a stuck big one)
            if now - task[3] > w.max_wait_s:
                rec.attempt(False)
            elif try_start(task):
                rec.attempt(True)
            else:
                still.append(task)
        waiting = still
    for _task in waiting:
        rec.attempt(False)
    rep: dict[str, Any] = dict(rec.report(now))
    # performance from simulated measured throughputs of one card's instances
    card0 = next(iter(pool.cards))
    insts = {i: (pool.fraction[i], c.card_cores * pool.fraction[i],
                 c.card_throughput * pool.fraction[i] * rng.uniform(0.93, 0.99))
             for i, x in pool.instances.items() if x.topology.card == card0}
    rep.update(performance(c.card_throughput, c.card_cores, insts))
    rep.update({"policy": name, "level": "pool", "makespan_s": now, "tasks": float(w.tasks)})
    return rep


def run_file(path: Path) -> list[dict[str, Any]]:
    wf = load(path)
    out = []
    for name, ps in wf.policies.items():
        try:
            out.append(simulate(wf, name, ps))
        except (PoolError, ValueError) as exc:
            raise ValidationError(Issue(f"{path}:policies.{name}", str(exc))) from None
    for name, prof in wf.profiles.items():
        try:
            out.append(simulate_profile(wf.sites, wf.jobs, name, prof))
        except ValueError as exc:
            raise ValidationError(Issue(f"{path}:profiles.{name}", str(exc))) from None
    return out
