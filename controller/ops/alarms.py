"""The alarm store (GBA-6.7, GBT-8.2): raise, clear, acknowledge, shelve — all journaled.

Rules:
- Alarms are ``Alarm`` objects in the state store; every change goes through one
  store transaction, so the journal records who raised, cleared, acknowledged or
  shelved what, when and why.
- ``raise_alarm`` is idempotent: raising an active alarm with the same severity and
  text writes nothing (level-triggered sources call it on every pass). A changed
  severity or text updates the alarm; raising a cleared one re-activates it.
- ``clear`` of an alarm that is not active writes nothing.
- Acknowledging or shelving an unknown alarm is a 404 naming the id and how to list
  alarms; shelving needs a positive duration of at most 30 days.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from controller.errors import NotFoundError, ValidationError
from controller.logs import key_event
from controller.ops.models import Alarm, Severity, alarm_id
from controller.store.base import Transaction

log = logging.getLogger("cpn.alarms")

MAX_SHELVE_S = 30 * 86400


def _now() -> datetime:
    return datetime.now(UTC)


def unknown(aid: str) -> NotFoundError:
    exc = NotFoundError("alarm", aid)
    exc.args = (f"alarm {aid!r} not found: list alarms with GET /api/v1/alarms?state=all "
                "(ids look like A0123456789ab)",)
    return exc


class AlarmBook:
    """Alarm operations on top of a store (any ``controller.store.base.Store``)."""

    def __init__(self, store: object) -> None:
        self.store = store
        self._lock = threading.Lock()

    def _txn(self, actor: str, reason: str) -> AbstractContextManager[Transaction]:
        cm: AbstractContextManager[Transaction] = self.store.transaction(  # type: ignore[attr-defined]
            actor, reason)
        return cm

    def get(self, aid: str) -> Alarm:
        a = self.store.get(Alarm, aid)  # type: ignore[attr-defined]
        if a is None:
            raise unknown(aid)
        assert isinstance(a, Alarm)
        return a

    def list(self) -> list[Alarm]:
        out: list[Alarm] = self.store.list(Alarm)  # type: ignore[attr-defined]
        return out

    def raise_alarm(self, type_: str, resource: str, severity: Severity, text: str, *,
                    source: str, tenant: str | None = None) -> Alarm | None:
        """Raise (or keep) the alarm; returns it when something was written."""
        if severity is Severity.CLEARED:
            raise ValueError("raise_alarm needs critical, major, minor or warning")
        aid = alarm_id(type_, resource)
        with self._lock, self._txn(f"alarm:{source}", f"raise {type_} {resource}") as txn:
            old = txn.get(Alarm, aid)
            now = _now()
            if old is None:
                new = Alarm(id=aid, type=type_, resource=resource, source=source,
                            severity=severity, raised_severity=severity, text=text,
                            tenant=tenant, first_seen=now, last_seen=now)
            elif old.active and old.severity is severity and old.text == text:
                return None
            elif old.active:  # severity or text changed: same occurrence
                new = old.model_copy(update={"severity": severity, "raised_severity": severity,
                                             "text": text, "last_seen": now})
            else:
                new = old.model_copy(update={
                    "severity": severity, "raised_severity": severity, "text": text,
                    "source": source, "last_seen": now, "cleared_at": None,
                    "count": old.count + 1, "acknowledged": False, "acked_by": None,
                    "acked_at": None, "ack_note": ""})
            txn.put(new)
        if old is None or not old.active:
            key_event(log, "alarm raised", id=aid, type=type_, resource=resource,
                      severity=severity.value, text=text)
        return new

    def clear(self, type_: str, resource: str, text: str = "", *, source: str) -> Alarm | None:
        """Clear the alarm if it is active; returns it when something was written."""
        return self._clear(alarm_id(type_, resource), text, f"alarm:{source}",
                           f"clear {type_} {resource}")

    def clear_by_id(self, aid: str, who: str, note: str = "") -> Alarm:
        self.get(aid)
        return self._clear(aid, note or f"cleared by {who}", f"api:{who}",
                           "clear alarm by hand") or self.get(aid)

    def _clear(self, aid: str, text: str, actor: str, reason: str) -> Alarm | None:
        with self._lock, self._txn(actor, reason) as txn:
            old = txn.get(Alarm, aid)
            if old is None or not old.active:
                return None
            new = old.model_copy(update={"severity": Severity.CLEARED, "cleared_at": _now(),
                                         "text": text or old.text})
            txn.put(new)
        key_event(log, "alarm cleared", id=aid, type=old.type, resource=old.resource)
        return new

    def acknowledge(self, aid: str, who: str, note: str = "") -> Alarm:
        with self._lock, self._txn(f"api:{who}", f"acknowledge alarm {aid}") as txn:
            old = txn.get(Alarm, aid)
            if old is None:
                raise unknown(aid)
            new = old.model_copy(update={"acknowledged": True, "acked_by": who,
                                         "acked_at": _now(), "ack_note": note})
            txn.put(new)
        key_event(log, "alarm acknowledged", id=aid, by=who)
        return new

    def shelve(self, aid: str, who: str, seconds: float) -> Alarm:
        if not 0 < seconds <= MAX_SHELVE_S:
            raise ValidationError.single(
                "body.seconds", f"cannot shelve for {seconds:g} s",
                f"give a duration above 0 and at most {MAX_SHELVE_S} s (30 days)")
        with self._lock, self._txn(f"api:{who}", f"shelve alarm {aid} for {seconds:g} s") \
                as txn:
            old = txn.get(Alarm, aid)
            if old is None:
                raise unknown(aid)
            new = old.model_copy(update={"shelved_until": _now() + timedelta(seconds=seconds),
                                         "shelved_by": who})
            txn.put(new)
        return new

    def unshelve(self, aid: str, who: str) -> Alarm:
        with self._lock, self._txn(f"api:{who}", f"unshelve alarm {aid}") as txn:
            old = txn.get(Alarm, aid)
            if old is None:
                raise unknown(aid)
            new = old.model_copy(update={"shelved_until": None, "shelved_by": None})
            txn.put(new)
        return new
