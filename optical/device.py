"""The ``OpticalDevice`` Protocol — one NE as the controller sees it — and an in-memory
backend with the same contract (``tests/optical/contract.py``).

Rules:
- Transactional lifecycle as in NAPALM: ``prepare`` (lock candidate → edit → validate →
  confirmed-commit) then ``confirm`` (confirming commit, unlock) or ``cancel``
  (cancel-commit / discard, unlock). ``cancel`` is safe to call in any state.
- Errors are our own: ``ConnectionError`` (unreachable), ``CommitError`` (the NE refused;
  the message names the NE and the rpc-error), ``RemoteProtocolError`` (bad data).
- ``subscribe`` calls back from any thread; callers hop onto their loop themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from controller.errors import CommitError, ConnectionError
from optical.codec import Notice
from optical.models import NeConfig, NeEdit, NeSnapshot, NeState

NoticeHandler = Callable[[Notice], None]


class OpticalDevice(Protocol):
    name: str

    async def discover(self) -> NeSnapshot: ...

    async def subscribe(self, handler: NoticeHandler) -> None: ...

    async def prepare(self, edit: NeEdit, confirm_timeout_s: int = 30) -> None: ...

    async def confirm(self) -> None: ...

    async def cancel(self) -> None: ...

    async def close(self) -> None: ...


def apply_edit(ne: str, cfg: NeConfig, edit: NeEdit) -> NeConfig:
    """Apply ``edit`` to ``cfg`` with the YANG module's rules (leafrefs, ranges, unique
    (a-degree, channel)); raise ``CommitError`` naming the NE like an rpc-error would."""
    xcs, odus, groups = dict(cfg.xcs), dict(cfg.odus), dict(cfg.groups)
    for lst, key in edit.delete:
        if lst == "och-xc":
            xcs.pop(key, None)
        elif lst == "odu":
            odus.pop(key, None)
        else:
            groups.pop(key, None)
    for x in edit.xcs:
        for d in (x.a_degree, x.z_degree):
            if d is not None and d not in cfg.degrees:
                raise CommitError(f"NE {ne}: edit-config rejected: data-missing: "
                                  f"och-xc[{x.name}] degree {d} not found")
        if not 1 <= x.channel <= 96:
            raise CommitError(f"NE {ne}: edit-config rejected: invalid-value: channel "
                              f"{x.channel}")
        xcs[x.name] = x
    seen: dict[tuple[int | None, int], str] = {}
    for x in xcs.values():
        if x.a_degree is not None:
            k = (x.a_degree, x.channel)
            if k in seen:
                raise CommitError(f"NE {ne}: commit rejected: data-not-unique: och-xc "
                                  f"{seen[k]} and {x.name} share degree {k[0]} channel {k[1]}")
            seen[k] = x.name
    for o in edit.odus:
        if o.och not in xcs:
            raise CommitError(f"NE {ne}: edit-config rejected: data-missing: odu[{o.name}] "
                              f"och {o.och} not found")
        odus[o.name] = o
    for g in edit.groups:
        for lk in (g.working_link, g.protect_link):
            if lk not in cfg.links:
                raise CommitError(f"NE {ne}: edit-config rejected: data-missing: "
                                  f"protection-group[{g.name}] link {lk} not found")
        groups[g.name] = g
    return dataclasses.replace(cfg, xcs=xcs, odus=odus, groups=groups)


class FakeDevice:
    """In-memory NE: running config + state; ``reachable``/``reject`` inject faults."""

    def __init__(self, name: str, cfg: NeConfig | None = None) -> None:
        self.name = name
        self.running = cfg or NeConfig(name=name)
        self.state = NeState()
        self.reachable = True
        self.reject: str | None = None
        self._saved: NeConfig | None = None
        self._handlers: list[NoticeHandler] = []
        self.rpcs: list[str] = []

    def _check(self) -> None:
        if not self.reachable:
            raise ConnectionError(f"NE {self.name}: unreachable (fake)")

    async def discover(self) -> NeSnapshot:
        self._check()
        return NeSnapshot(self.name, self.running, self.state)

    async def subscribe(self, handler: NoticeHandler) -> None:
        self._check()
        self._handlers.append(handler)

    def notify(self, notice: Notice) -> None:
        for h in self._handlers:
            h(notice)

    async def prepare(self, edit: NeEdit, confirm_timeout_s: int = 30) -> None:
        self._check()
        if self._saved is not None:
            raise CommitError(f"NE {self.name}: lock rejected: lock-denied")
        self.rpcs += ["lock", "edit-config", "validate"]
        if self.reject:
            raise CommitError(f"NE {self.name}: edit-config rejected: {self.reject}")
        new = apply_edit(self.name, self.running, edit)
        self._saved, self.running = self.running, new
        self.rpcs.append("commit-confirmed")
        self.notify(Notice(self.name, "config-change"))

    async def confirm(self) -> None:
        self._check()
        self.rpcs += ["commit", "unlock"]
        self._saved = None

    async def cancel(self) -> None:
        if self._saved is not None:
            self.rpcs.append("cancel-commit")
            self.running, self._saved = self._saved, None
        self.rpcs.append("unlock")

    async def close(self) -> None:
        self._handlers.clear()
