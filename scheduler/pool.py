"""The GB/T 45401 accelerator instance pool (GBT-6.2.7, GBT-6.2.8, GBT-7.1–7.4).

Rules:
- A physical card (``AcceleratorCard``) is virtualised into ``ComputeInstance``s,
  either by fraction (0 < f ≤ 1) or by a fixed profile (``PROFILES``, MIG-like
  sevenths). The fractions of a card's live instances never sum above 1.
- State changes are the GBT-6.2.8 events, checked against ``TRANSITIONS``:
  add (→ available), occupy (available → in-use, names the task), release
  (in-use → available), enqueue (task waits for an instance), damage (→ unavailable;
  an occupying task is reported as affected), repair (unavailable → available),
  soft delete (hidden, capacity kept reserved until purge) and recover.
- Multi-instance allocation is atomic (all instances or none) and topology-aware:
  the same server first, then the same switch, then anywhere if allowed (GBT-7.4).
  Multi-instance release is atomic too: either every named instance is in use by the
  task and all are released, or none is.
- Task splitting (GBT-7.2): a task needing T TFLOPS may be split over instances whose
  TFLOPS sum to ≥ T (largest first, fewest parts). Model switching changes the model
  loaded on an instance that is not busy with another task.
- Pure and in memory; the REST edge loads from and saves to the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import Field

from controller.models import (
    ComputeInstance,
    InstanceSpec,
    InstanceState,
    InstanceTopology,
    Precision,
    ResourceType,
)
from controller.models.base import Entity, Name, register


@register
class AcceleratorCard(Entity):
    """A physical accelerator (GBT-7.5 card info): ``id`` (device id), ``chip``,
    ``type``, ``server``, ``switch``, ``cluster``, ``slot``, ``compute_tflops``,
    ``memory_gib``, ``bandwidth_gbps``, ``precisions``, ``damaged``."""

    KIND = "card"
    id: Name
    chip: str = ""
    type: ResourceType = ResourceType.GPU
    server: Name
    switch: str = ""
    cluster: Name
    slot: int = Field(default=0, ge=0)
    compute_tflops: float = Field(gt=0)
    memory_gib: float = Field(gt=0)
    bandwidth_gbps: float = Field(default=0, ge=0)
    precisions: list[Precision] = Field(default_factory=lambda: [Precision.FP16])
    damaged: bool = False

    @property
    def key(self) -> str:
        return self.id


@register
class DeletedInstance(Entity):
    """A soft-deleted instance (GBT-6.2.8), recoverable until purged: ``instance``."""

    KIND = "instance-deleted"
    instance: ComputeInstance

    @property
    def key(self) -> str:
        return self.instance.id


#: Fixed profiles: name → share of one card (MIG-like sevenths).
PROFILES: dict[str, float] = {"1g": 1 / 7, "2g": 2 / 7, "3g": 3 / 7, "4g": 4 / 7, "7g": 1.0}


class PoolEvent(StrEnum):
    ADD = "add"
    OCCUPY = "occupy"
    RELEASE = "release"
    ENQUEUE = "enqueue"
    DAMAGE = "damage"
    REPAIR = "repair"
    DELETE = "delete"
    RECOVER = "recover"


A, U, N = InstanceState.AVAILABLE, InstanceState.IN_USE, InstanceState.UNAVAILABLE
#: GBT-6.2.8: event → states it may be applied in.
TRANSITIONS: dict[PoolEvent, frozenset[InstanceState]] = {
    PoolEvent.OCCUPY: frozenset({A}),
    PoolEvent.RELEASE: frozenset({U}),
    PoolEvent.DAMAGE: frozenset({A, U}),
    PoolEvent.REPAIR: frozenset({N}),
    PoolEvent.DELETE: frozenset({A, N}),
}


class PoolError(ValueError):
    """A refused pool operation; the message names the instance/card and why."""


class PoolNotFound(PoolError):
    """An unknown card or instance: ``kind``, ``key``."""

    def __init__(self, kind: str, key: str, extra: str = "") -> None:
        self.kind, self.key = kind, key
        super().__init__(f"unknown {kind} {key!r}{extra}")


@dataclass(frozen=True, slots=True)
class Allocation:
    """``task``, ``instances`` (ids), ``scope`` (server / switch / cluster / split)."""

    task: str
    instances: tuple[str, ...]
    scope: str


@dataclass(slots=True)
class Pool:
    """Cards, instances, the wait queue, soft-deleted instances and loaded models."""

    cards: dict[str, AcceleratorCard] = field(default_factory=dict)
    instances: dict[str, ComputeInstance] = field(default_factory=dict)
    fraction: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, ComputeInstance] = field(default_factory=dict)
    queue: list[tuple[str, int]] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (event, id, detail)

    @classmethod
    def load(cls, cards: Iterable[AcceleratorCard], instances: Iterable[ComputeInstance],
             deleted: Iterable[ComputeInstance] = ()) -> Pool:
        """Rebuild from stored objects; an instance's share = its TFLOPS / the card's."""
        pool = cls()
        for c in cards:
            pool.cards[c.id] = c
        for bucket, items in ((pool.instances, instances), (pool.deleted, deleted)):
            for i in items:
                bucket[i.id] = i
                card = pool.cards.get(i.topology.card)
                pool.fraction[i.id] = (i.spec.compute_tflops / card.compute_tflops
                                       if card is not None else 0.0)
        return pool

    # ------------------------------------------------------------ virtualise
    def add_card(self, card: AcceleratorCard) -> None:
        if card.id in self.cards:
            raise PoolError(f"card {card.id!r} already in the pool")
        self.cards[card.id] = card

    def card_used(self, card_id: str) -> float:
        live = [i for i, inst in self.instances.items() if inst.topology.card == card_id]
        live += [i for i, inst in self.deleted.items() if inst.topology.card == card_id]
        return sum(self.fraction.get(i, 0.0) for i in live)

    def carve(self, card_id: str, *, fraction: float | None = None,
              profile: str | None = None, instance_id: str | None = None) -> ComputeInstance:
        """GBT-7.5 create instance from a template: a share of one card (``add``)."""
        card = self.cards.get(card_id)
        if card is None:
            raise PoolNotFound("card", card_id)
        if (fraction is None) == (profile is None):
            raise PoolError("give exactly one of fraction or profile")
        if profile is not None:
            if profile not in PROFILES:
                raise PoolError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
            fraction = PROFILES[profile]
        assert fraction is not None
        if not 0 < fraction <= 1:
            raise PoolError(f"fraction {fraction} must be in (0, 1]")
        if self.card_used(card_id) + fraction > 1 + 1e-9:
            raise PoolError(f"card {card_id!r} has only {1 - self.card_used(card_id):.3f} "
                            f"left, asked {fraction:.3f}")
        n = sum(1 for i in self.instances.values() if i.topology.card == card_id)
        iid = instance_id or f"{card_id}-i{n}"
        while iid in self.instances or iid in self.deleted:
            n += 1
            iid = f"{card_id}-i{n}"
        inst = ComputeInstance(
            id=iid, type=card.type,
            spec=InstanceSpec(compute_tflops=card.compute_tflops * fraction,
                              memory_gib=card.memory_gib * fraction,
                              bandwidth_gbps=card.bandwidth_gbps * fraction,
                              precisions=list(card.precisions)),
            topology=InstanceTopology(card=card.id, server=card.server, slot=card.slot,
                                      cluster=card.cluster, position=card.switch),
            state=InstanceState.UNAVAILABLE if card.damaged else InstanceState.AVAILABLE)
        self.instances[iid] = inst
        self.fraction[iid] = fraction
        self.log.append((PoolEvent.ADD, iid, f"{fraction:.3f} of {card_id}"))
        return inst

    # ------------------------------------------------------------ transitions
    def _get(self, iid: str) -> ComputeInstance:
        inst = self.instances.get(iid)
        if inst is None:
            raise PoolNotFound("instance", iid,
                               " (soft-deleted)" if iid in self.deleted else "")
        return inst

    def _move(self, iid: str, event: PoolEvent, state: InstanceState,
              task: str | None) -> ComputeInstance:
        inst = self._get(iid)
        allowed = TRANSITIONS[event]
        if inst.state not in allowed:
            raise PoolError(f"instance {iid!r}: cannot {event.value} when {inst.state.value}")
        new = inst.model_copy(update={"state": state, "task": task})
        self.instances[iid] = new
        self.log.append((event, iid, task or ""))
        return new

    def occupy(self, iid: str, task: str) -> ComputeInstance:
        return self._move(iid, PoolEvent.OCCUPY, U, task)

    def release(self, iid: str) -> ComputeInstance:
        return self._move(iid, PoolEvent.RELEASE, A, None)

    def damage(self, iid: str) -> str | None:
        """Mark broken; returns the task that was running on it (to reschedule)."""
        task = self._get(iid).task
        self._move(iid, PoolEvent.DAMAGE, N, None)
        return task

    def repair(self, iid: str) -> ComputeInstance:
        return self._move(iid, PoolEvent.REPAIR, A, None)

    def enqueue(self, task: str, count: int) -> None:
        self.queue.append((task, count))
        self.log.append((PoolEvent.ENQUEUE, task, str(count)))

    def soft_delete(self, iid: str) -> None:
        inst = self._get(iid)
        if inst.state not in TRANSITIONS[PoolEvent.DELETE]:
            raise PoolError(f"instance {iid!r}: cannot delete when {inst.state.value}")
        self.deleted[iid] = self.instances.pop(iid)
        self.log.append((PoolEvent.DELETE, iid, ""))

    def recover(self, iid: str) -> ComputeInstance:
        inst = self.deleted.pop(iid, None)
        if inst is None:
            raise PoolError(f"instance {iid!r} is not soft-deleted")
        self.instances[iid] = inst
        self.log.append((PoolEvent.RECOVER, iid, ""))
        return inst

    def purge(self, iid: str) -> None:
        if self.deleted.pop(iid, None) is None:
            raise PoolError(f"instance {iid!r} is not soft-deleted")
        self.fraction.pop(iid, None)

    # ------------------------------------------------------------ allocation
    def available(self, type_: ResourceType | None = None, min_tflops: float = 0.0,
                  min_memory_gib: float = 0.0) -> list[ComputeInstance]:
        return sorted((i for i in self.instances.values()
                       if i.state is A and (type_ is None or i.type is type_)
                       and i.spec.compute_tflops >= min_tflops - 1e-9
                       and i.spec.memory_gib >= min_memory_gib - 1e-9),
                      key=lambda i: i.id)

    def allocate(self, task: str, count: int, *, type_: ResourceType | None = None,
                 min_tflops: float = 0.0, min_memory_gib: float = 0.0,
                 scopes: Sequence[str] = ("server", "switch", "cluster"),
                 queue_if_short: bool = False) -> Allocation | None:
        """Atomic, topology-aware: ``count`` instances in the tightest scope that has
        them, or nothing (optionally enqueueing the task)."""
        if count < 1:
            raise PoolError("count must be >= 1")
        cands = self.available(type_, min_tflops, min_memory_gib)
        for scope in scopes:
            groups: dict[str, list[ComputeInstance]] = {}
            for i in cands:
                key = {"server": i.topology.server,
                       "switch": i.topology.position or f"~{i.topology.server}",
                       "cluster": i.topology.cluster}.get(scope)
                if key is None:
                    raise PoolError(f"unknown topology scope {scope!r}")
                groups.setdefault(key, []).append(i)
            fitting = [g for g in groups.values() if len(g) >= count]
            if fitting:
                # best fit: the group with the fewest spare instances keeps big groups whole
                group = min(fitting, key=lambda g: (len(g), g[0].id))
                return self._take(task, [i.id for i in group[:count]], scope)
        if queue_if_short:
            self.enqueue(task, count)
        return None

    def allocate_split(self, task: str, tflops: float, *, max_parts: int = 16,
                       type_: ResourceType | None = None) -> Allocation | None:
        """GBT-7.2 task splitting: fewest instances (largest first) summing ≥ ``tflops``."""
        chosen: list[str] = []
        total = 0.0
        for i in sorted(self.available(type_), key=lambda i: (-i.spec.compute_tflops, i.id)):
            if total >= tflops - 1e-9 or len(chosen) == max_parts:
                break
            chosen.append(i.id)
            total += i.spec.compute_tflops
        if total < tflops - 1e-9:
            return None
        return self._take(task, chosen, "split")

    def _take(self, task: str, ids: list[str], scope: str) -> Allocation:
        done: list[str] = []
        try:
            for iid in ids:
                self.occupy(iid, task)
                done.append(iid)
        except PoolError:
            for iid in done:  # all or nothing
                self.release(iid)
            raise
        return Allocation(task, tuple(ids), scope)

    def release_many(self, task: str, ids: Iterable[str]) -> list[ComputeInstance]:
        """Atomic multi-instance release: every id must be in use by ``task``."""
        ids = list(ids)
        for iid in ids:
            inst = self._get(iid)
            if inst.state is not U or inst.task != task:
                raise PoolError(f"instance {iid!r} is not in use by {task!r} "
                                f"({inst.state.value}); nothing released")
        return [self.release(iid) for iid in ids]

    def switch_model(self, iid: str, model: str, task: str | None = None) -> None:
        """GBT-7.2 model switching on an idle instance or one held by ``task``."""
        inst = self._get(iid)
        if inst.state is N:
            raise PoolError(f"instance {iid!r} is unavailable")
        if inst.state is U and inst.task != task:
            raise PoolError(f"instance {iid!r} is busy with {inst.task!r}")
        self.models[iid] = model
        self.log.append(("switch-model", iid, model))

    # ------------------------------------------------------------ views
    def card_info(self, card_id: str) -> dict[str, object]:
        card = self.cards.get(card_id)
        if card is None:
            raise PoolNotFound("card", card_id)
        insts = sorted(i for i, x in self.instances.items() if x.topology.card == card_id)
        return {**card.model_dump(mode="json"), "allocated_fraction": self.card_used(card_id),
                "instances": insts}
