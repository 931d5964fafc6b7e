"""A confirmed commit awaiting its confirmation (RFC 6241 §8.4), and what undoing it means.

Rules:
- A confirmed commit remembers only ITS OWN changes: per object, the value before the
  first confirmed commit and the value the confirmed commit(s) last wrote. Running is
  shared with REST and other writers, so a rollback never restores a whole snapshot
  (that reverted REST writes made meanwhile, #15): it reverts exactly these objects.
- An object another writer changed after the confirmed commit wrote it is left as that
  writer made it (theirs is newer); so is an object whose revert would leave a
  reference dangling or refer to something gone. Each such object is named in the
  outcome, with the reason, so the operator sees what the rollback kept.
- Follow-up confirmed commits accumulate into the same pending commit (§8.4.1): the
  rollback goes back to the state before the first one.
- Without ``persist`` only the issuing session may confirm, extend or cancel, and the
  pending commit is rolled back when that session ends; with ``persist`` any session
  may, by giving the same ``persist-id`` (§8.4.5.1), and session ends do not matter.
- An unconfirmed commit never becomes permanent by a restart: the pending commit is
  saved in the store's metadata (``to_json``) at every change, and the controller rolls
  it back when it stops or, after a crash, when the NETCONF server starts again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pydantic

from controller.models import Entity
from controller.store.base import Change

log = logging.getLogger("cpn.netconf")

Ident = tuple[str, str]


@dataclass
class PendingCommit:
    """The confirmed commit in progress: ``session`` that issued it, its ``persist``
    token (None: bound to the session), its ``timer`` and its own changes ``own``:
    (kind, key) -> (value before it, value it wrote; None = absent)."""

    session: int
    persist: str | None
    timer: asyncio.TimerHandle | None = None
    own: dict[Ident, tuple[Entity | None, Entity | None]] = field(default_factory=dict)

    def record(self, changes: Iterable[Change]) -> None:
        """Add a confirmed commit's committed changes (keeping the earliest 'before')."""
        for ch in changes:
            ident = (ch.kind, ch.key)
            before = self.own[ident][0] if ident in self.own else ch.previous
            self.own[ident] = (before, ch.value)

    def may_act(self, session: int, persist_id: str | None) -> str | None:
        """Why ``session`` (giving ``persist_id``) may NOT confirm, extend or cancel this
        commit; None when it may."""
        if self.persist is not None:
            if persist_id is None:
                return ("a persistent confirmed commit is pending; give its persist-id to "
                        "confirm or cancel it (RFC 6241 §8.4.5.1)")
            if persist_id != self.persist:
                return f"persist-id {persist_id!r} does not match the pending confirmed commit"
            return None
        if persist_id is not None:
            return "the pending confirmed commit was not given a persist token"
        if session != self.session:
            return (f"a confirmed commit by session {self.session} is pending; only that "
                    "session may commit, confirm or cancel it until it is confirmed or "
                    "rolled back (RFC 6241 §8.4.5.1)")
        return None

    def to_json(self) -> str:
        """What a restart needs to roll this commit back."""
        return json.dumps({"session": self.session, "persist": self.persist, "own": [
            {"kind": kind, "key": key,
             "before": before.model_dump(mode="json") if before is not None else None,
             "written": written.model_dump(mode="json") if written is not None else None}
            for (kind, key), (before, written) in self.own.items()]})

    @classmethod
    def from_json(cls, text: str, kinds: dict[str, type[Entity]]) -> PendingCommit:
        """The saved commit; an entry whose kind or model no longer reads is left out
        (logged), the rest is kept."""
        raw = json.loads(text)
        p = cls(int(raw["session"]), raw.get("persist"))
        for item in raw["own"]:
            kind, key = item["kind"], item["key"]
            try:
                model = kinds[kind]
                before = model.model_validate(item["before"]) if item["before"] else None
                written = model.model_validate(item["written"]) if item["written"] else None
            except (KeyError, pydantic.ValidationError) as exc:
                log.warning("unconfirmed commit: %s %r cannot be read back (%s); left as it "
                            "is", kind, key, exc)
                continue
            p.own[(kind, key)] = (before, written)
        return p

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass(frozen=True)
class Revert:
    """One object to put back: ``target`` is its value before the confirmed commit
    (None: it did not exist)."""

    kind: str
    key: str
    target: Entity | None


def plan_rollback(pending: PendingCommit, current: Callable[[str, str], Entity | None]
                  ) -> tuple[list[Revert], dict[Ident, str]]:
    """What to revert (objects still as the confirmed commit left them) and what to keep,
    with the reason (another writer changed it since). Pure: ``current(kind, key)`` reads
    the running value."""
    reverts: list[Revert] = []
    kept: dict[Ident, str] = {}
    for (kind, key), (before, written) in pending.own.items():
        now = current(kind, key)
        if now != written:
            kept[(kind, key)] = "changed by another writer after the confirmed commit"
            continue
        if now != before:
            reverts.append(Revert(kind, key, before))
    return reverts, kept
