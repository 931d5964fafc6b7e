"""``PolicyProgrammer``: the one contract every SRv6 dataplane backend implements.

Rules (NAPALM-style lifecycle, GBA-6.4.3c):
- ``read_actual()`` → the CPN-owned routes the node holds now;
- ``load(desired)`` stages a candidate (nothing touches the node);
- ``diff()`` → the ops a commit would apply (empty ⇒ commit changes nothing);
- ``commit()`` applies them in make-before-break order; if any op fails, every op
  already applied is undone in reverse and the result says ``failed`` — never a
  half-programmed node; the pre-commit state is kept for ``rollback()``;
- ``rollback()`` restores the state before the last successful commit.
- Results are values (``Result``), not exceptions; only misuse raises.
- Reconcile = ``load(desired); commit()``: it reads the node each time, so a route
  deleted by hand is restored and a stale CPN route is removed.

``TransactionalProgrammer`` implements the lifecycle on top of two primitives a backend
supplies: ``_dump()`` and ``_apply(op)``. ``MemoryProgrammer`` is the in-memory backend
used by unit tests and the controller's dry-run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from controller.errors import CpnError, LocalProtocolError

from .state import NodeState, Route, RouteKey, RouteOp, plan, render_diff

log = logging.getLogger("cpn.srv6.dataplane")


@dataclass(frozen=True, slots=True)
class Result:
    """Outcome of a commit/rollback: ``changed`` (something was applied and kept),
    ``diff`` (text of the ops), ``failed``/``error`` (and everything was undone),
    ``ops`` applied count, ``elapsed_ms``."""

    changed: bool
    diff: str = ""
    failed: bool = False
    error: str = ""
    ops: int = 0
    elapsed_ms: float = 0.0


@runtime_checkable
class PolicyProgrammer(Protocol):
    """One node's SRv6 dataplane, driven transactionally."""

    node: str

    def read_actual(self) -> NodeState: ...

    def load(self, desired: NodeState) -> None: ...

    def diff(self) -> list[RouteOp]: ...

    def commit(self) -> Result: ...

    def rollback(self) -> Result: ...

    def close(self) -> None: ...


@dataclass
class TransactionalProgrammer:
    """Lifecycle over ``_dump``/``_apply``; subclasses are the transport."""

    node: str
    _candidate: NodeState | None = field(default=None, init=False)
    _before_commit: NodeState | None = field(default=None, init=False)

    # -- transport primitives ------------------------------------------------------
    def _dump(self) -> NodeState:
        raise NotImplementedError

    def _apply(self, op: RouteOp) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None

    # -- lifecycle -------------------------------------------------------------------
    def read_actual(self) -> NodeState:
        return self._dump()

    def load(self, desired: NodeState) -> None:
        self._candidate = desired

    def diff(self) -> list[RouteOp]:
        if self._candidate is None:
            raise LocalProtocolError(f"{self.node}: diff() before load()")
        return plan(self._candidate, self._dump())

    def commit(self) -> Result:
        if self._candidate is None:
            raise LocalProtocolError(f"{self.node}: commit() before load()")
        t0 = time.perf_counter()
        before = self._dump()
        ops = plan(self._candidate, before)
        res = self._apply_all(ops, t0)
        if res.changed:
            self._before_commit = before
        return res

    def rollback(self) -> Result:
        if self._before_commit is None:
            return Result(changed=False)
        t0 = time.perf_counter()
        target, self._before_commit = self._before_commit, None
        self._candidate = target
        return self._apply_all(plan(target, self._dump()), t0)

    def _apply_all(self, ops: list[RouteOp], t0: float) -> Result:
        done: list[RouteOp] = []
        text = render_diff(ops)
        try:
            for op in ops:
                self._apply(op)
                done.append(op)
        except (CpnError, OSError, ValueError) as exc:
            undo_errors = []
            for op in reversed(done):
                try:
                    self._apply(op.inverse())
                except (CpnError, OSError, ValueError) as undo_exc:  # pragma: no cover
                    undo_errors.append(f"{op.inverse()}: {undo_exc}")
            err = f"{self.node}: {ops[len(done)]} failed: {exc}"
            if undo_errors:
                err += "; undo failed for " + "; ".join(undo_errors)
            log.warning("commit rolled back: %s", err)
            return Result(changed=False, diff=text, failed=True, error=err, ops=len(done),
                          elapsed_ms=(time.perf_counter() - t0) * 1e3)
        return Result(changed=bool(ops), diff=text, ops=len(ops),
                      elapsed_ms=(time.perf_counter() - t0) * 1e3)


class MemoryProgrammer(TransactionalProgrammer):
    """In-memory 'kernel': for unit tests and dry runs. ``fail_on`` makes applying a
    route with that key raise (to test mid-commit rollback)."""

    def __init__(self, node: str = "mem") -> None:
        super().__init__(node)
        self.kernel: dict[RouteKey, Route] = {}
        self.fail_on: set[RouteKey] = set()

    def _dump(self) -> NodeState:
        return NodeState(dict(self.kernel))

    def _apply(self, op: RouteOp) -> None:
        key = op.route.key
        if key in self.fail_on and op.kind != "delete":
            raise OSError(f"injected failure for {key}")
        if op.kind == "add":
            if key in self.kernel:
                raise OSError(17, f"File exists: {key}")
            self.kernel[key] = op.route
        elif op.kind == "replace":
            self.kernel[key] = op.route
        else:
            if key not in self.kernel:
                raise OSError(3, f"No such route: {key}")
            del self.kernel[key]
